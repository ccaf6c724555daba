"""Decisions made in the sync console, applied by the next dag.test() sync run (issue 12).

Each decision kind on a real review item of a seeded world: link (then edits sync both ways),
keep apart (never queued again), take a side's value, fixed-retry, dismiss. On SQLite; the email
collision on every dialect too (an email written back, compared case-insensitively by MariaDB). The
decisions' and links' own writes are tested on all three in tests/member_db/test_bookkeeping.py.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from cc_sync.member_db.bookkeeping import Decision, DecisionStatus
from cc_sync.sync.decisions import DECISION_RULE
from tests.dags.conftest import SyncWorld

pytestmark = pytest.mark.slow


@pytest.fixture
def near(world_factory: Any, database_url: str) -> SyncWorld:
    """A world after its first sync, with Anne/Annabelle near matches in the review queue."""
    world = world_factory(database_url, synced=True, renamed_share=0.2)
    assert len(world.reviews("near_match")) > 0
    return world


def _decide(world: SyncWorld, item: Any, decision: Decision, **extra: Any) -> int:
    return world.bookkeeping.record_decision(
        review_id=int(item["id"]),
        decision=decision,
        member_id=item["member_id"],
        contact_id=item["contact_id"],
        decided_by="reviewer",
        why="checked with the member",
        **extra,
    )


def _decisions(world: SyncWorld) -> dict[int, dict[str, Any]]:
    table = world.bookkeeping.decisions
    with world.engine.connect() as conn:
        return {row["id"]: dict(row) for row in conn.execute(table.select()).mappings()}


def test_a_linked_near_match_syncs_edits_both_ways(near: SyncWorld) -> None:
    item = near.reviews("near_match").iloc[0]
    member_id, contact_id = int(item["member_id"]), str(item["contact_id"])
    decision_id = _decide(near, item, Decision.LINK)

    run = near.sync()

    assert run["state"] == "success", run["tasks"]
    links = near.links()
    linked = links[links["member_id"] == str(member_id)]
    assert linked["contact_id"].tolist() == [contact_id]
    assert linked["rule"].tolist() == [DECISION_RULE]
    assert near.bookkeeping.base_of(str(member_id)) is not None  # a link always has a base
    assert int(item["id"]) not in set(near.reviews()["id"])
    decision = _decisions(near)[decision_id]
    assert decision["status"] == DecisionStatus.APPLIED
    assert decision["applied_run_id"] == run["run_id"]
    changes = near.bookkeeping.get_changes(run["run_id"])
    logged = changes[(changes["direction"] == "decision") & (changes["member_id"] == str(member_id))]
    assert logged["reason"].str.startswith("link by reviewer").all()
    assert len(logged) == 1
    # The names differed: merged by the run (one side's name now on both).
    assert near.member(member_id)["first_name"] == near.contact_of(member_id)["first_name"]

    near.edit_member(member_id, city="Brest")
    near.sync()
    assert near.contact_of(member_id)["street_addresses"][0]["city"] == "Brest"
    near.emulator.admin.edit_contact(contact_id, {"job_title": "Organist"})
    near.sync()
    assert near.member(member_id)["job_title"] == "Organist"
    assert int(item["id"]) not in set(near.reviews()["id"])


def test_a_kept_apart_pair_is_never_queued_again(near: SyncWorld) -> None:
    item = near.reviews("near_match").iloc[0]
    member_id, contact_id = str(item["member_id"]), str(item["contact_id"])
    _decide(near, item, Decision.KEEP_APART)
    near.sync()
    assert member_id not in set(near.reviews()["member_id"])

    # Both sides edited: a plain run would queue the pair again.
    near.edit_member(int(member_id), city="Quimper")
    near.emulator.admin.edit_contact(contact_id, {"job_title": "Verger"})
    near.sync(full_reconcile=True)

    reviews = near.reviews()
    assert not ((reviews["member_id"] == member_id) & (reviews["contact_id"] == contact_id)).any()
    assert member_id not in set(near.links()["member_id"])


def test_dismiss_and_retry_close_their_items(near: SyncWorld) -> None:
    first, second = near.reviews("near_match").iloc[0], near.reviews("near_match").iloc[1]
    _decide(near, first, Decision.DISMISS)
    _decide(near, second, Decision.RETRY)
    run = near.sync()
    assert run["state"] == "success", run["tasks"]
    open_ids = set(near.reviews()["id"])
    # A dismissed item is closed; a retried near match is read again, and still a near match.
    assert int(first["id"]) not in open_ids
    assert {d["status"] for d in _decisions(near).values()} == {DecisionStatus.APPLIED}


def test_taking_the_member_value_of_a_conflict_writes_it_to_cc(synced: SyncWorld) -> None:
    member_id = synced.linked_member_ids()[0]
    contact_id = synced.contact_of(member_id)["contact_id"]
    # A value the sync did not pick up (updated_at untouched): only a decision sends it across.
    with synced.engine.begin() as conn:
        conn.execute(sa.text("UPDATE members SET city = 'Vannes' WHERE member_id = :m"), {"m": member_id})
    synced.bookkeeping.add_review_items(
        pd.DataFrame(
            [
                {
                    "kind": "email_collision",
                    "member_id": str(member_id),
                    "contact_id": contact_id,
                    "detail": "x",
                }
            ]
        )
    )
    item = synced.reviews("email_collision").iloc[0]
    _decide(synced, item, Decision.TAKE_MEMBER, field="city")
    calls_before = synced.emulator.admin.counters()["api_calls"]

    run = synced.sync()

    assert synced.contact_of(member_id)["street_addresses"][0]["city"] == "Vannes"
    changes = synced.bookkeeping.get_changes(run["run_id"])
    written = changes[(changes["field"] == "city") & (changes["direction"] == "to_cc")]
    assert written["new_value"].tolist() == ["Vannes"]
    # The run counts every call it made, the decision's (made by the compare step) included.
    assert run["api_calls"] == synced.emulator.admin.counters()["api_calls"] - calls_before


@pytest.mark.all_dialects
def test_taking_cc_value_of_an_email_collision_puts_cc_email_back(synced: SyncWorld) -> None:
    mover, other = synced.linked_member_ids()[:2]
    cc_email = synced.contact_of(mover)["email_address"]["address"]
    synced.edit_member(mover, email=synced.contact_of(other)["email_address"]["address"])
    synced.sync()
    item = synced.reviews("email_collision").iloc[0]
    assert int(item["member_id"]) == mover
    _decide(synced, item, Decision.TAKE_CC, field="email")

    run = synced.sync()

    assert synced.member(mover)["email"] == cc_email
    changes = synced.bookkeeping.get_changes(run["run_id"])
    assert ((changes["field"] == "email") & (changes["direction"] == "to_member_db")).any()
    assert str(mover) not in set(synced.reviews("email_collision")["member_id"])
