"""Every fault the emulator injects is recovered from; what cannot be recovered fails clearly."""

from __future__ import annotations

import pytest

from cc_sync.constant_contact.errors import (
    ConstantContactMalformedResponse,
    ConstantContactTransportError,
)

CONTACTS = 1_000
LIMIT = 100  # 10 pages: enough calls for every fault to strike several times


@pytest.mark.parametrize(
    ("faults", "counter"),
    [
        ({"error_429_rate": 0.3}, "429"),
        ({"error_500_rate": 0.3}, "500"),
        ({"error_503_rate": 0.3}, "503"),
        ({"slow_rate": 0.3, "slow_seconds": 3.0}, None),  # the hook's timeout in tests is 1 s
        ({"drop_rate": 0.3}, "drop"),
        ({"lost_answer_rate": 0.3}, "lost_answer"),
        ({"truncate_rate": 0.3}, "truncate"),
        ({"error_429_rate": 0.1, "error_500_rate": 0.1, "drop_rate": 0.1, "truncate_rate": 0.1}, None),
    ],
    ids=["throttled", "500", "503", "slow", "dropped", "lost-answer", "truncated", "mixed"],
)
def test_reading_recovers_from_each_fault(emulator, make_hook, faults, counter):
    seeded = set(emulator.admin.seed_contacts(count=CONTACTS))
    hook = make_hook(timeout=1, max_attempts=10)
    emulator.admin.set_faults(seed=7, **faults)
    ids = [c["contact_id"] for c in hook.iter_contacts(limit=LIMIT)]
    assert set(ids) == seeded
    assert len(ids) == CONTACTS
    # The faults did strike, and were paid for with retries (each attempt is a counted call).
    injected = emulator.admin.counters()["faults"]
    if counter:
        assert injected.get(counter, 0) > 0
    assert hook.api_calls > CONTACTS // LIMIT


def test_writes_recover_from_faults(emulator, make_hook):
    hook = make_hook(timeout=1, max_attempts=10)
    emulator.admin.set_faults(error_503_rate=0.4, seed=11)
    lst = hook.get_or_create_list("Faulty Weather")
    result = hook.import_contacts([{"email": f"w{i}@example.org"} for i in range(50)], [lst.list_id])
    emulator.admin.clear_faults()
    assert result.ok
    members = next(x for x in emulator.admin.all_lists() if x["list_id"] == lst.list_id)["member_ids"]
    assert len(members) == 50


@pytest.mark.parametrize(
    ("faults", "error", "detail"),
    [
        ({"truncate_rate": 1.0}, ConstantContactMalformedResponse, "not valid JSON"),
        ({"drop_rate": 1.0}, ConstantContactTransportError, "no complete answer"),
    ],
    ids=["malformed-body", "dropped-every-time"],
)
def test_a_fault_that_never_clears_gives_a_clear_error_after_the_retries(
    emulator, make_hook, faults, error, detail
):
    emulator.admin.seed_contacts(count=5)
    hook = make_hook(timeout=1, max_attempts=4)
    emulator.admin.set_faults(**faults)
    with pytest.raises(error) as caught:
        list(hook.iter_contacts())
    assert detail in str(caught.value)
    assert "/v3/contacts" in str(caught.value)
    assert hook.api_calls == 4


def test_a_failed_activity_is_reported_and_a_rerun_converges(emulator, make_hook):
    hook = make_hook()
    lst = hook.get_or_create_list("Members")
    rows = [{"email": f"m{i}@example.org", "first_name": "M"} for i in range(20)]
    emulator.admin.set_faults(activity_fail_rate=1.0)
    failed = hook.import_contacts(rows, [lst.list_id])
    assert not failed.ok
    assert [a.activity_id for a in failed.failed_activities] == [failed.activities[0].activity_id]
    assert any("ended failed" in e.reason for e in failed.errors)
    emulator.admin.clear_faults()
    rerun = hook.import_contacts(rows, [lst.list_id])
    assert rerun.ok
    assert rerun.errors == []
    members = next(x for x in emulator.admin.all_lists() if x["list_id"] == lst.list_id)["member_ids"]
    assert len(members) == 20


def test_a_write_whose_answer_was_lost_is_not_done_twice(emulator, make_hook):
    """CC carried out the POST but the answer never came: the retry meets 409 (the list exists),
    and get_or_create_list finds the list instead of failing or creating a second one."""
    hook = make_hook(timeout=2, max_attempts=6)
    emulator.admin.set_faults(lost_answer_rate=0.5, seed=1)
    lists = [hook.get_or_create_list(f"Lost {i}") for i in range(4)]
    emulator.admin.clear_faults()
    assert emulator.admin.counters()["faults"].get("lost_answer", 0) > 0
    names = [x["name"] for x in emulator.admin.all_lists()]
    for lst in lists:
        assert names.count(lst.name) == 1
