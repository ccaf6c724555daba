"""Consent: an opt-out on either side reaches both, is written to the ledger, and is never reversed."""

from __future__ import annotations

import pytest

from cc_sync.engine import ReviewKind, SyncPlan
from cc_sync.policy import SyncDirection
from tests.engine.world import World


def linked_world() -> World:
    world = World()
    world.add_linked("m1", "c1", email="anne@example.org", first_name="Anne", last_name="Smith", city="Leeds")
    world.add_linked("m2", "c2", email="bob@example.org", first_name="Bob", last_name="Jones", city="York")
    return world


@pytest.mark.parametrize("direction", list(SyncDirection))
@pytest.mark.parametrize("changed_only", [False, True], ids=["full", "incremental"])
def test_member_opt_out_unsubscribes_in_cc(direction: SyncDirection, changed_only: bool) -> None:
    world = linked_world()
    world.edit_member("m1", opted_out=True)
    plan = world.sync(direction=direction, changed_only=changed_only)
    assert plan.cc_puts[["contact_id", "unsubscribe"]].values.tolist() == [["c1", True]]
    assert plan.cc_updates.empty
    assert world.contacts["c1"]["opted_out"] is True
    ledger = plan.consent[["member_id", "contact_id", "source", "direction"]].values.tolist()
    assert ledger == [["m1", "c1", "member_db", "to_cc"]]
    assert plan.summary()["cc_unsubscribes"] == 1


@pytest.mark.parametrize("direction", list(SyncDirection))
def test_cc_opt_out_sets_the_member_flag(direction: SyncDirection) -> None:
    world = linked_world()
    world.edit_contact("c1", opted_out=True)
    plan = world.sync(direction=direction)
    assert plan.member_opt_outs[["member_id", "source"]].values.tolist() == [["m1", "cc"]]
    assert world.members["m1"]["opted_out"] is True
    ledger = plan.consent[["member_id", "source", "direction"]].values.tolist()
    assert ledger == [["m1", "cc", "to_member_db"]]
    assert plan.consent["opted_out_at"].notna().all()


def test_opt_out_on_both_sides_writes_nothing_but_the_ledger() -> None:
    world = linked_world()
    world.edit_member("m1", opted_out=True)
    world.edit_contact("c1", opted_out=True)
    plan = world.sync()
    assert plan.cc_puts.empty
    assert plan.member_opt_outs.empty
    assert sorted(plan.consent["source"]) == ["cc", "member_db"]
    assert world.base["m1"]["opted_out"] is True


def test_cc_resubscribe_is_never_copied_to_the_member() -> None:
    world = linked_world()
    world.edit_contact("c1", opted_out=True)
    world.sync()
    world.edit_contact("c1", opted_out=False)  # the contact re-subscribed themselves in CC
    plan = world.sync()
    assert plan.reviews[["kind", "member_id"]].values.tolist() == [
        [ReviewKind.RESUBSCRIBED_IN_CC.value, "m1"]
    ]
    assert world.members["m1"]["opted_out"] is True
    assert not plan.writes_anything
    assert world.base["m1"]["opted_out"] is True


@pytest.mark.parametrize("changed_only", [False, True], ids=["contact-read", "contact-not-read"])
def test_member_flag_cleared_never_resubscribes_in_cc(changed_only: bool) -> None:
    world = linked_world()
    world.edit_member("m1", opted_out=True)
    world.sync()
    world.edit_member("m1", opted_out=False, city="Hull")
    plan = world.sync(changed_only=changed_only)
    assert plan.reviews["kind"].tolist() == [ReviewKind.RESUBSCRIBED_IN_MEMBER_DB.value]
    contact = world.contacts["c1"]
    assert contact["opted_out"] is True
    assert contact["city"] == "Hull"  # other fields still flow
    assert plan.summary()["cc_unsubscribes"] == 0
    _assert_sent_by_import_only_when_read_unsubscribed(plan, read=not changed_only)


@pytest.mark.parametrize("changed_only", [False, True], ids=["contact-read", "contact-not-read"])
def test_opted_out_contact_field_changes_go_by_import_only_when_read_unsubscribed(changed_only: bool) -> None:
    world = linked_world()
    world.edit_contact("c1", opted_out=True)
    world.sync()
    world.edit_member("m1", city="Hull")
    plan = world.sync(changed_only=changed_only)
    assert world.contacts["c1"]["city"] == "Hull"
    assert world.contacts["c1"]["opted_out"] is True
    _assert_sent_by_import_only_when_read_unsubscribed(plan, read=not changed_only)


def _assert_sent_by_import_only_when_read_unsubscribed(plan: SyncPlan, *, read: bool) -> None:
    """An import never changes a contact's permission nor adds an unsubscribed one to a list, so the
    edit of a contact this run read unsubscribed goes in bulk; one not read (CC may show it
    subscribed again) goes by PUT, which adds it to no list."""
    bulk, put = plan.cc_updates, plan.cc_puts
    if read:
        assert bulk[["contact_id", "city"]].values.tolist() == [["c1", "Hull"]]
        assert put.empty
    else:
        assert bulk.empty
        assert put[["contact_id", "city", "unsubscribe"]].values.tolist() == [["c1", "Hull", False]]


def test_opted_out_member_is_never_created_in_cc() -> None:
    world = World()
    world.add_member("m9", email="new@example.org", first_name="New", last_name="Person", opted_out=True)
    plan = world.sync()
    assert plan.cc_creates.empty
    assert plan.rejected[["member_id", "reason"]].values.tolist() == [["m9", "opted_out"]]


def test_new_link_to_an_opted_out_contact_opts_the_member_out() -> None:
    world = World()
    world.add_member("m1", email="anne@example.org", first_name="Anne", last_name="Smith")
    world.add_contact("c1", email="anne@example.org", first_name="Anne", last_name="Smith", opted_out=True)
    plan = world.sync()
    assert plan.new_links["contact_id"].tolist() == ["c1"]
    assert world.members["m1"]["opted_out"] is True
    assert plan.consent["source"].tolist() == ["cc"]
