"""Reading through the hook over real HTTP: pagination, every filter, lists, custom fields, 4xx."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cc_sync.constant_contact.convert import contacts_to_frame
from cc_sync.constant_contact.errors import ConstantContactApiError
from cc_sync.fields import OPTED_OUT


@pytest.mark.parametrize(("count", "limit"), [(1_234, 100), (1_001, 500), (500, 500), (0, 500)])
def test_pagination_reads_every_contact_once_in_the_minimum_calls(emulator, hook, count, limit):
    seeded = emulator.admin.seed_contacts(count=count) if count else []
    ids = [c["contact_id"] for c in hook.iter_contacts(limit=limit)]
    assert sorted(ids) == sorted(seeded)
    assert len(set(ids)) == len(ids)
    pages = max(1, -(-count // limit))
    assert hook.api_calls == pages
    assert emulator.admin.counters()["endpoints"]["GET /v3/contacts"] == pages


def test_pagination_is_lazy(emulator, hook):
    emulator.admin.seed_contacts(count=1_500)
    first = next(iter(hook.iter_contacts()))
    assert first["contact_id"]
    assert hook.api_calls == 1


def when(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def filter_account(emulator):
    """Six contacts that each filter tells apart; returns the list id of the one listed contact."""
    admin = emulator.admin
    list_a = admin.create_list("List A")
    specs = {
        "old": "2026-01-01",
        "out": "2026-01-10",
        "mid": "2026-02-01",
        "new": "2026-03-01",
    }
    for name, created in specs.items():
        admin.seed_contacts(contacts=[{"email": f"{name}@example.org", "created_at": f"{created}T00:00:00Z"}])
    admin.seed_contacts(
        contacts=[{"email": "listed@example.org", "created_at": "2026-01-15T00:00:00Z"}], list_ids=[list_a]
    )
    admin.seed_contacts(
        contacts=[
            {
                "email": "gone@example.org",
                "created_at": "2026-01-20T00:00:00Z",
                "deleted_at": "2026-02-20T00:00:00Z",
            }
        ]
    )
    out_id = next(
        c["contact_id"] for c in admin.all_contacts() if c["email_address"]["address"] == "out@example.org"
    )
    admin.opt_out(out_id, at=when("2026-02-15T00:00:00"))
    return list_a


ALL = {"old", "out", "mid", "new", "listed", "gone"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ALL),
        ({"status": "unsubscribed"}, {"out"}),
        ({"status": "deleted"}, {"gone"}),
        ({"status": ["unsubscribed", "deleted"]}, {"out", "gone"}),
        ({"email": "mid@example.org"}, {"mid"}),
        ({"lists": "LIST"}, {"listed"}),
        ({"created_after": when("2026-02-15T00:00:00")}, {"new"}),
        ({"created_before": when("2026-01-12T00:00:00")}, {"old", "out"}),
        ({"updated_after": when("2026-02-25T00:00:00")}, {"new"}),
        ({"updated_before": when("2026-01-05T00:00:00")}, {"old"}),
        ({"optout_after": when("2026-02-01T00:00:00")}, {"out"}),
        ({"optout_before": when("2026-02-01T00:00:00")}, set()),
        (
            {"created_after": "2026-01-05T00:00:00Z", "created_before": "2026-01-25T00:00:00Z"},
            {"out", "listed", "gone"},
        ),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, dict) else None,
)
def test_every_filter_reaches_the_api(emulator, hook, filter_account, filters, expected):
    if filters.get("lists") == "LIST":
        filters = {"lists": [filter_account]}
    found = {c["email_address"]["address"].split("@")[0] for c in hook.iter_contacts(**filters)}
    assert found == expected


def test_naive_datetimes_are_refused(hook):
    with pytest.raises(ValueError, match="timezone-aware"):
        list(hook.iter_contacts(updated_after=datetime(2026, 1, 1)))


def test_opt_out_shows_in_the_frame_through_the_hook(emulator, hook):
    ids = emulator.admin.seed_contacts(count=3)
    emulator.admin.opt_out(ids[1])
    frame = contacts_to_frame(hook.iter_contacts(), hook.custom_field_names())
    assert frame.set_index("contact_id")[OPTED_OUT].to_dict() == {ids[0]: False, ids[1]: True, ids[2]: False}


def test_lists_get_or_create_is_idempotent(emulator, hook):
    first = hook.get_or_create_list("Newsletter")
    again = hook.get_or_create_list("Newsletter")
    assert first.list_id == again.list_id
    assert hook.get_list_by_name("Newsletter 2") is None
    assert [lst.name for lst in hook.iter_lists()].count("Newsletter") == 1


def test_custom_fields_create_and_list(hook):
    created = hook.create_custom_field("Member Number")
    names = hook.custom_field_names()
    assert names[created.custom_field_id] == created.name
    assert created.name  # the import's cf: key


@pytest.mark.parametrize(
    ("call", "status"),
    [
        (lambda h: h.get_contact("00000000-0000-4000-8000-000000000000"), 404),
        (lambda h: h.create_list(""), 400),
    ],
    ids=["not-found", "validation"],
)
def test_other_4xx_fail_at_once_without_retry(hook, call, status):
    with pytest.raises(ConstantContactApiError) as caught:
        call(hook)
    assert caught.value.status == status
    assert not caught.value.is_retryable
    assert hook.api_calls == 1
