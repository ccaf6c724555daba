"""Bulk requests the caller can journal and resume, and failed activities sent again, over real HTTP.

The hook hands each request CC accepted to ``on_accepted`` before it polls; given that record back as
``resume``, a later call polls the activity instead of sending the request again. A request whose
activity fails (the emulator's ``activity_fail_count``) is sent again up to ``resubmit_failed`` times.
"""

from __future__ import annotations

from typing import Any

import pytest

from cc_sync.constant_contact import bulk
from cc_sync.constant_contact.hook import IMPORT_PATH
from cc_sync.constant_contact.models import AcceptedActivity, ActivityRequest, ActivityState
from tests.constant_contact.test_bulk_http import members, people

IMPORTS = "POST /v3/activities/contacts_json_import"
REMOVALS = "POST /v3/activities/remove_list_memberships"


def _count(emulator: Any, endpoint: str) -> int:
    return emulator.admin.counters()["endpoints"].get(endpoint, 0)


def test_a_failed_import_activity_is_sent_again_in_the_same_call(emulator, hook):
    lst = hook.get_or_create_list("Members")
    accepted: list[AcceptedActivity] = []
    emulator.admin.set_faults(activity_fail_count=1)

    result = hook.import_contacts(people(20), [lst.list_id], on_accepted=accepted.append, resubmit_failed=2)

    assert result.ok
    assert result.resubmitted == 1
    assert _count(emulator, IMPORTS) == 2
    assert len(members(emulator, lst.list_id)) == 20
    # Both sends were reported, before polling, as the same request (same key, same rows).
    assert [a.send for a in accepted] == [1, 2]
    assert accepted[0].request.key == accepted[1].request.key
    assert accepted[0].activity_id != accepted[1].activity_id
    assert accepted[1].activity_id == result.activities[0].activity_id
    assert accepted[0].request.items == tuple(range(20))
    # Two sends and two polls: what one failed activity costs, and no more.
    assert result.api_calls == 4
    assert result.errors == []


def test_resends_are_bounded_and_what_still_fails_is_reported(emulator, hook):
    lst = hook.get_or_create_list("Members")
    emulator.admin.set_faults(activity_fail_count=5)

    result = hook.import_contacts(people(5), [lst.list_id], resubmit_failed=2)

    assert not result.ok
    assert result.resubmitted == 2
    assert _count(emulator, IMPORTS) == 3
    assert any("ended failed" in e.reason for e in result.errors)
    assert members(emulator, lst.list_id) == []


def test_only_the_failed_part_of_a_split_import_is_sent_again(emulator, hook, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_IMPORT_CONTACTS", 10)
    lst = hook.get_or_create_list("Members")
    accepted: list[AcceptedActivity] = []
    emulator.admin.set_faults(activity_fail_count=1)  # the first of three requests

    result = hook.import_contacts(people(30), [lst.list_id], on_accepted=accepted.append, resubmit_failed=2)

    assert result.ok
    assert _count(emulator, IMPORTS) == 4
    assert [a.request.items[0] for a in accepted] == [0, 10, 20, 0]
    assert len(members(emulator, lst.list_id)) == 30


def test_a_resumed_import_polls_the_accepted_activity_and_sends_nothing(emulator, hook, make_hook):
    emulator.admin.configure(activity_processing_seconds=1.0)
    lst = hook.get_or_create_list("Members")
    journal: dict[str, str] = {}

    def record(accepted: AcceptedActivity) -> None:
        journal[accepted.request.key] = accepted.activity_id

    # The worker stops right after CC accepted the import (nothing polled).
    first = hook.import_contacts(people(25), [lst.list_id], wait=False, on_accepted=record)
    assert first.polls == 0
    assert len(journal) == 1

    retry = make_hook()  # a new process: only the journal survives
    resumed = retry.import_contacts(people(25), [lst.list_id], resume=journal, resubmit_failed=2)

    assert resumed.ok
    assert _count(emulator, IMPORTS) == 1
    assert resumed.activities[0].activity_id == next(iter(journal.values()))
    assert resumed.person_count == 25
    assert retry.api_calls == resumed.polls
    assert len(members(emulator, lst.list_id)) == 25


def test_a_resumed_activity_that_had_failed_is_sent_again(emulator, hook):
    lst = hook.get_or_create_list("Members")
    journal: dict[str, str] = {}
    emulator.admin.set_faults(activity_fail_count=1)
    failed = hook.import_contacts(
        people(5), [lst.list_id], on_accepted=lambda a: journal.update({a.request.key: a.activity_id})
    )
    assert not failed.ok

    resumed = hook.import_contacts(people(5), [lst.list_id], resume=journal, resubmit_failed=2)

    assert resumed.ok
    assert _count(emulator, IMPORTS) == 2
    assert len(members(emulator, lst.list_id)) == 5


def test_different_rows_are_a_different_request(emulator, hook):
    """A key that matched other rows would poll someone else's import: a changed plan sends anew."""
    lst = hook.get_or_create_list("Members")
    journal: dict[str, str] = {}
    hook.import_contacts(
        people(5), [lst.list_id], on_accepted=lambda a: journal.update({a.request.key: a.activity_id})
    )
    edited = people(5)
    edited[2]["first_name"] = "Edited in between"

    hook.import_contacts(edited, [lst.list_id], resume=journal)

    assert _count(emulator, IMPORTS) == 2
    by_email = {c["email_address"]["address"]: c for c in emulator.admin.all_contacts()}
    assert by_email["p2@example.org"]["first_name"] == "Edited in between"


def test_an_activity_cc_no_longer_knows_is_sent_again(emulator, hook):
    lst = hook.get_or_create_list("Members")
    chunks, _ = bulk.plan_import(people(3), [lst.list_id])
    unknown = "00000000-0000-0000-0000-000000000000"
    resume = {ActivityRequest(IMPORT_PATH, chunks[0].body).key: unknown}

    result = hook.import_contacts(people(3), [lst.list_id], resume=resume)

    assert result.ok
    assert result.activities[0].activity_id != unknown
    assert _count(emulator, IMPORTS) == 1
    assert len(members(emulator, lst.list_id)) == 3


@pytest.mark.parametrize("fail", [0, 1], ids=["fault-free", "one-failed-activity"])
def test_a_removal_is_resent_when_its_activity_fails_and_resumed_after_acceptance(emulator, hook, fail):
    lst = hook.get_or_create_list("Members")
    ids = emulator.admin.seed_contacts(count=12, list_ids=[lst.list_id])
    journal: dict[str, str] = {}
    emulator.admin.set_faults(activity_fail_count=fail)

    hook.remove_list_memberships(
        ids[:7],
        [lst.list_id],
        on_accepted=lambda a: journal.update({a.request.key: a.activity_id}),
        resubmit_failed=2,
    )
    again = hook.remove_list_memberships(ids[:7], [lst.list_id], resume=journal, resubmit_failed=2)

    assert _count(emulator, REMOVALS) == 1 + fail
    assert [a.state for a in again] == [ActivityState.COMPLETED]
    assert sorted(members(emulator, lst.list_id)) == sorted(ids[7:])
