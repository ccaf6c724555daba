"""The CC load's journal of bulk requests, and its resends of failed activities: the load against the
emulator over HTTP, its journal in a real (SQLite) bookkeeping database.

A request is journaled when Constant Contact accepts it, so a retried load (a new hook and journal,
as a new task try has) polls that activity instead of sending the request again; a failed activity
is sent again inside the load, at most ``ACTIVITY_RESENDS`` times.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.engine import SyncPlan
from cc_sync.fields import CONTACT_ID, MEMBER_ID
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.member_db.migrate import upgrade
from cc_sync.sync.loading import (
    ACTIVITY_RESENDS,
    ACTIVITY_STEP,
    CALLS_PER_PUT,
    BulkActivityFailed,
    Journal,
    LoadResult,
    item_ranges,
    load_constant_contact,
)

IMPORTS = "POST /v3/activities/contacts_json_import"
REMOVALS = "POST /v3/activities/remove_list_memberships"
MAIN_LIST = "Members"


class WorkerKilled(Exception):
    """Stands for the worker dying at a given point of the load."""


def killed(*args: Any, **kwargs: Any) -> Any:
    raise WorkerKilled("killed while the bulk activity was running")


@pytest.fixture
def bookkeeping(sqlite_url: str) -> Iterator[Bookkeeping]:
    engine = sa.create_engine(sqlite_url)
    upgrade(engine)
    yield Bookkeeping(engine)
    engine.dispose()


def _count(emulator: Any, endpoint: str) -> int:
    return emulator.admin.counters()["endpoints"].get(endpoint, 0)


def _plan(emulator: Any, tag: str, creates: int = 4, updates: int = 6) -> SyncPlan:
    """New members to create and linked contacts to update: one import request."""
    seeded = emulator.admin.seed_contacts(
        contacts=[{"email": f"{tag}.linked{i}@example.org", "first_name": "L"} for i in range(updates)]
    )
    cc_updates = pd.DataFrame(
        {
            CONTACT_ID: seeded,
            MEMBER_ID: [f"{tag}-u{i}" for i in range(updates)],
            "email": [f"{tag}.linked{i}@example.org" for i in range(updates)],
            "job_title": [f"Steward {tag} {i}" for i in range(updates)],
        }
    )
    cc_creates = pd.DataFrame(
        {
            MEMBER_ID: [f"{tag}-c{i}" for i in range(creates)],
            "email": [f"{tag}.new{i}@example.org" for i in range(creates)],
            "first_name": [f"New {i}" for i in range(creates)],
        }
    )
    return SyncPlan(cc_updates=cc_updates, cc_creates=cc_creates)


def _job_titles(emulator: Any, tag: str) -> dict[str, str | None]:
    return {
        c["email_address"]["address"]: c.get("job_title")
        for c in emulator.admin.all_contacts()
        if c["email_address"]["address"].startswith(f"{tag}.linked")
    }


def _load(
    hook: ConstantContactHook, bookkeeping: Bookkeeping, plan: SyncPlan, run_id: str, **kwargs: Any
) -> LoadResult:
    return load_constant_contact(
        hook, plan, main_list_name=MAIN_LIST, journal=Journal(bookkeeping, run_id), **kwargs
    )


def test_an_import_activity_that_fails_once_is_resent_and_costs_two_calls(emulator, make_hook, bookkeeping):
    emulator.admin.create_list(MAIN_LIST)
    clean = _load(make_hook(), bookkeeping, _plan(emulator, "a"), "run-a")
    emulator.admin.set_faults(activity_fail_count=1)
    imports_before = _count(emulator, IMPORTS)

    faulted = _load(make_hook(), bookkeeping, _plan(emulator, "b"), "run-b")

    assert faulted.counts["import_resubmitted"] == 1
    assert _count(emulator, IMPORTS) - imports_before == 2
    assert faulted.failed.empty
    assert len(faulted.created_links) == 4
    assert set(_job_titles(emulator, "b").values()) == {f"Steward b {i}" for i in range(6)}
    # The same load without the fault, plus the resend and one poll of it.
    assert faulted.counts["api_calls"] == clean.counts["api_calls"] + 2
    # The journal keeps both sends of the request, under one key, with the rows it carries.
    steps = [s for s in bookkeeping.done_steps("run-b") if s.startswith(ACTIVITY_STEP)]
    assert len(steps) == 1
    detail = bookkeeping.step_detail("run-b", steps[0])
    assert detail["sends"] == 2
    assert len(detail["earlier_activity_ids"]) == 1
    assert detail["activity_id"] not in detail["earlier_activity_ids"]
    assert detail["items"] == [[0, 9]]
    assert detail["path"] == "activities/contacts_json_import"


def test_a_load_killed_after_the_import_was_accepted_polls_it_on_retry(
    emulator, make_hook, bookkeeping, monkeypatch
):
    emulator.admin.create_list(MAIN_LIST)
    plan = _plan(emulator, "k")
    first = make_hook()
    monkeypatch.setattr(first, "wait_for_activities", killed)
    with pytest.raises(WorkerKilled):
        _load(first, bookkeeping, plan, "run-k")
    assert _count(emulator, IMPORTS) == 1

    retry = make_hook()  # a new try: a new process, only the bookkeeping kept
    result = _load(retry, bookkeeping, plan, "run-k")

    assert _count(emulator, IMPORTS) == 1
    assert result.failed.empty
    assert len(result.created_links) == 4
    assert set(_job_titles(emulator, "k").values()) == {f"Steward k {i}" for i in range(6)}
    # No list or custom-field look-up again: one poll of the accepted activity, one read of the
    # contacts it created.
    assert result.counts["api_calls"] == 2
    assert result.counts["import_polls"] == 1


def test_resends_are_bounded_then_the_task_retry_resends_only_the_failed_request(
    emulator, make_hook, bookkeeping
):
    emulator.admin.create_list(MAIN_LIST)
    plan = _plan(emulator, "f")
    emulator.admin.set_faults(activity_fail_count=1 + ACTIVITY_RESENDS)

    with pytest.raises(BulkActivityFailed, match="did not complete after 2 resend"):
        _load(make_hook(), bookkeeping, plan, "run-f")
    assert _count(emulator, IMPORTS) == 1 + ACTIVITY_RESENDS
    assert set(_job_titles(emulator, "f").values()) == {None}

    result = _load(make_hook(), bookkeeping, plan, "run-f")  # Airflow's retry, the last resort

    assert _count(emulator, IMPORTS) == 2 + ACTIVITY_RESENDS
    assert result.failed.empty
    assert set(_job_titles(emulator, "f").values()) == {f"Steward f {i}" for i in range(6)}
    # It looked at the failed activity once (no resend blind), sent the request, polled it.
    assert result.counts["import_polls"] == 2
    assert result.counts["import_resubmitted"] == 1


@pytest.mark.parametrize("fault", ["activity-fails-once", "killed-after-acceptance"])
def test_the_removal_of_members_leaving_scope_is_journaled_and_resent(
    emulator, make_hook, bookkeeping, monkeypatch, fault
):
    list_id = emulator.admin.create_list(MAIN_LIST)
    contact_ids = emulator.admin.seed_contacts(count=8, list_ids=[list_id])
    leaving = pd.DataFrame({MEMBER_ID: [f"m{i}" for i in range(3)], CONTACT_ID: contact_ids[:3]})
    first = make_hook()
    if fault == "activity-fails-once":
        emulator.admin.set_faults(activity_fail_count=1)
    else:
        monkeypatch.setattr(first, "wait_for_activities", killed)

    try:
        _load(first, bookkeeping, SyncPlan(), "run-l", leaving_scope=leaving)
    except WorkerKilled:
        _load(make_hook(), bookkeeping, SyncPlan(), "run-l", leaving_scope=leaving)

    assert _count(emulator, REMOVALS) == (2 if fault == "activity-fails-once" else 1)
    members = next(x for x in emulator.admin.all_lists() if x["list_id"] == list_id)["member_ids"]
    assert sorted(members) == sorted(contact_ids[3:])
    assert bookkeeping.done_steps("run-l") >= {"cc_leaving_scope"}


def test_a_journaled_removal_that_keeps_failing_fails_the_load(emulator, make_hook, bookkeeping):
    list_id = emulator.admin.create_list(MAIN_LIST)
    contact_ids = emulator.admin.seed_contacts(count=2, list_ids=[list_id])
    leaving = pd.DataFrame({MEMBER_ID: ["m0"], CONTACT_ID: contact_ids[:1]})
    emulator.admin.set_faults(activity_fail_count=1 + ACTIVITY_RESENDS)

    with pytest.raises(BulkActivityFailed, match="removal from the main list"):
        _load(make_hook(), bookkeeping, SyncPlan(), "run-r", leaving_scope=leaving)

    assert "cc_leaving_scope" not in bookkeeping.done_steps("run-r")


def test_item_ranges_keep_a_large_import_small() -> None:
    assert item_ranges([]) == []
    assert item_ranges((0, 1, 2, 4, 5, 9)) == [[0, 2], [4, 5], [9, 9]]
    assert item_ranges(tuple(range(40_000))) == [[0, 39_999]]


def test_the_one_by_one_writes_log_their_progress(emulator, make_hook, bookkeeping, caplog) -> None:
    """Six GET + PUT pairs on a fake clock that moves 4 s at each look: a line about every 10 s,
    each with the calls spent and those still expected, and a last line when the loop ends."""
    seeded = emulator.admin.seed_contacts(
        contacts=[{"email": f"put{i}@example.org", "first_name": "P"} for i in range(6)]
    )
    puts = pd.DataFrame(
        {CONTACT_ID: seeded, MEMBER_ID: [f"p{i}" for i in range(6)], "job_title": ["Warden"] * 6}
    )
    ticks = iter(range(0, 400, 4))

    with caplog.at_level(logging.INFO, logger="cc_sync.sync.loading"):
        result = _load(
            make_hook(), bookkeeping, SyncPlan(cc_puts=puts), "run-p", progress_clock=lambda: next(ticks)
        )

    assert result.counts["cc_puts"] == 6
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Constant Contact contacts")]
    assert 2 <= len(lines) < 6, lines  # not one line per contact
    first_done = int(lines[0].split(": ")[1].split(" of ")[0])
    assert 0 < first_done < 6
    assert f"{CALLS_PER_PUT * first_done} API call(s)" in lines[0]
    assert f"about {CALLS_PER_PUT * (6 - first_done)} more expected" in lines[0]
    assert lines[-1].startswith("Constant Contact contacts written one by one (GET + PUT): 6 of 6 contacts")
    assert lines[-1].endswith("12 API call(s); about 0 more expected")


def test_one_by_one_writes_are_journaled_even_when_the_loop_stops_between_batches(
    emulator, make_hook, bookkeeping, monkeypatch
) -> None:
    """Seven GET + PUTs; the worker dies at the sixth GET. The five written are journaled (the
    batch is flushed on the way out), so the retry writes only the last two."""
    seeded = emulator.admin.seed_contacts(
        contacts=[{"email": f"batch{i}@example.org", "first_name": "B"} for i in range(7)]
    )
    puts = pd.DataFrame(
        {CONTACT_ID: seeded, MEMBER_ID: [f"b{i}" for i in range(7)], "job_title": ["Warden"] * 7}
    )
    hook = make_hook()
    real_get, got = hook.get_contact, []

    def get_until_killed(contact_id: str) -> Any:
        if len(got) == 5:
            raise WorkerKilled("killed in the middle of the one-by-one writes")
        got.append(contact_id)
        return real_get(contact_id)

    monkeypatch.setattr(hook, "get_contact", get_until_killed)
    with pytest.raises(WorkerKilled):
        _load(hook, bookkeeping, SyncPlan(cc_puts=puts), "run-b")
    journaled = {s for s in bookkeeping.done_steps("run-b") if s.startswith("cc_put:")}
    assert journaled == {f"cc_put:{c}" for c in seeded[:5]}

    puts_before = _count(emulator, "PUT /v3/contacts/{contact_id}")
    result = _load(make_hook(), bookkeeping, SyncPlan(cc_puts=puts), "run-b")
    assert result.counts["cc_puts"] == 2
    assert _count(emulator, "PUT /v3/contacts/{contact_id}") - puts_before == 2


@pytest.mark.parametrize(
    ("marks", "seconds_apart", "commits"),
    [(120, 0.0, [50, 50, 20]), (3, 0.0, [3]), (4, 3.0, [3, 1])],
    ids=["by-count", "one-short-batch", "by-time"],
)
def test_soon_marks_are_committed_in_batches(
    bookkeeping, monkeypatch, marks: int, seconds_apart: float, commits: list[int]
) -> None:
    """A commit per BATCH marks, or once the oldest unwritten mark is BATCH_SECONDS old; flush()
    writes the rest. Every mark counts as done at once for this journal."""
    committed: list[int] = []
    real = bookkeeping.mark_steps_done

    def counted(run_id: str, steps: list[str]) -> None:
        committed.append(len(steps))
        real(run_id, steps)

    monkeypatch.setattr(bookkeeping, "mark_steps_done", counted)
    now = [0.0]
    journal = Journal(bookkeeping, "run-s", clock=lambda: now[0])
    for i in range(marks):
        now[0] = i * seconds_apart
        journal.mark_soon(f"cc_put:{i}")
        assert journal.done(f"cc_put:{i}")
    journal.flush()
    assert committed == commits
    assert len(bookkeeping.done_steps("run-s")) == marks
