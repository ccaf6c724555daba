"""The undo's two opt-ins (issue 13), end to end with dag.test() after real sync runs, the emulator
over HTTP and a real member database:

- ``review_edited_since``: each person with a field the undo left alone because it changed since the
  run becomes a review item in the console's queue, and a person's decision on it (the sync's
  review decisions) settles which value stands;
- ``remove_created_from_lists``: the contacts the run created come off the list the run added them
  to, never unsubscribed, never deleted; without it they stay on it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cc_sync.member_db.bookkeeping import Decision
from cc_sync.undo.steps import EDITED_SINCE_REVIEW
from tests.dags.conftest import SyncWorld
from tests.dags.test_undo_dag import _bad_run, _subscribed, undo

pytestmark = pytest.mark.slow

UNDO_DAG_ID = "constant_contact_undo"
MAIN_LIST = "Members"  # include/config/member_mapping.yaml: cc_scope.main_list


@pytest.fixture
def undo_dag(dag_bag: Any) -> Any:
    return dag_bag.get_dag(UNDO_DAG_ID)


def test_fields_edited_since_are_queued_for_review_and_a_decision_settles_them(
    synced: SyncWorld, undo_dag: Any
) -> None:
    people = _subscribed(synced, 2)
    _, run_id = _bad_run(synced, people)
    # The run wrote people[0]'s first name (and email) to CC; CC's first name changes since.
    kept = people[0]
    contact_id = synced.contact_of(kept)["contact_id"]
    synced.emulator.admin.edit_contact(contact_id, {"first_name": "EditedSince"})
    member_first = synced.member(kept)["first_name"]

    dry = undo(synced, undo_dag, run_id, dry_run=True, review_edited_since=True)
    assert dry["state"] == "success", dry["tasks"]
    assert synced.reviews(EDITED_SINCE_REVIEW).empty  # a dry run writes nothing, reviews included
    result = undo(synced, undo_dag, run_id, review_edited_since=True)

    assert result["state"] == "success", result["tasks"]
    assert result["counts"]["skipped_edited_since"] == 1
    assert result["counts"]["reviews_queued"] == 1
    (item,) = synced.reviews(EDITED_SINCE_REVIEW).to_dict("records")
    assert (item["member_id"], item["contact_id"]) == (str(kept), contact_id)
    detail = json.loads(item["detail"])
    assert detail["undo_of"] == run_id
    assert detail["fields"] == ["first_name"]
    assert "@" not in item["detail"]  # fields and sides, never values
    assert synced.contact_of(kept)["first_name"] == "EditedSince"  # left alone by the undo

    # A person chooses CC's value in the console; the next sync applies it and closes the item.
    synced.bookkeeping.record_decision(
        review_id=int(item["id"]),
        decision=Decision.TAKE_CC,
        member_id=str(kept),
        contact_id=contact_id,
        decided_by="uma",
        why="the CC edit is right",
        field="first_name",
    )
    assert synced.sync()["state"] == "success"
    assert synced.member(kept)["first_name"] == "EditedSince" != member_first
    assert synced.reviews(EDITED_SINCE_REVIEW).empty


def test_without_asking_nothing_is_queued(synced: SyncWorld, undo_dag: Any) -> None:
    people = _subscribed(synced, 2)
    _, run_id = _bad_run(synced, people)
    synced.emulator.admin.edit_contact(synced.contact_of(people[0])["contact_id"], {"first_name": "Since"})

    result = undo(synced, undo_dag, run_id)

    assert result["state"] == "success", result["tasks"]
    assert result["counts"]["skipped_edited_since"] == 1
    assert result["counts"]["reviews_queued"] == 0
    assert synced.reviews(EDITED_SINCE_REVIEW).empty


def test_contacts_the_run_created_come_off_its_list_only_when_asked(synced: SyncWorld, undo_dag: Any) -> None:
    first = synced.runs[0]
    assert first["state"] == "success", first["tasks"]
    links = synced.links()
    created = links.loc[links["rule"] == "created", "contact_id"].astype(str).tolist()
    matched = links.loc[links["rule"] != "created", "contact_id"].astype(str).tolist()
    assert created
    assert matched
    main = synced.list_id(MAIN_LIST)
    on_main = {c["contact_id"] for c in synced.list_contacts(MAIN_LIST)}
    assert set(created) <= on_main
    before = {c["contact_id"]: c for c in synced.emulator.admin.all_contacts()}
    mass = {"allow_mass_change": True, "max_change_share": 1.0}

    plain = undo(synced, undo_dag, first["run_id"], dry_run=True, **mass)
    planned = synced.bookkeeping.get_planned_changes(plain["run_id"])
    assert "list_membership" not in set(planned["field"])  # not asked: they stay on the list
    result = undo(synced, undo_dag, first["run_id"], remove_created_from_lists=True, **mass)

    assert result["state"] == "success", result["tasks"]
    assert result["counts"]["list_removals"] == len(created)
    after = {c["contact_id"]: c for c in synced.emulator.admin.all_contacts()}
    for contact_id in created:
        contact = after[contact_id]  # never deleted ...
        assert main not in contact.get("list_memberships", [])  # ... off the list the run added it to
        assert (
            contact["email_address"]["permission_to_send"]
            == before[contact_id]["email_address"]["permission_to_send"]
        )  # ... never unsubscribed
    assert {c for c in matched if c in on_main} <= {c["contact_id"] for c in synced.list_contacts(MAIN_LIST)}
    assert not set(created) & set(synced.links()["contact_id"].astype(str))  # unlinked
    logged = synced.bookkeeping.get_changes(result["run_id"])
    removals = logged[logged["field"] == "list_membership"]
    assert set(removals["contact_id"].astype(str)) == set(created)
    assert set(removals["old_value"]) == {main}
    assert synced.emulator.admin.counters()["resubscribes"] == 0
