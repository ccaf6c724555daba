"""List rules in the scheduled sync (issue 18, part 2), end to end: dag.test(), the emulator over
HTTP, real member databases (the rule's segment query on all three dialects, the rest on SQLite).

The mapping binds the demo's ``runners`` segment to the list "Runners". After the sync's first run
(without rules), the rule fills the list; then members join and leave the segment, a runner opts
out in the member database, another unsubscribes in Constant Contact, a stranger is put on the list:
the next run adds and removes exactly those changes, re-subscribes nobody and never adds an
opted-out person; a rerun writes nothing. A dry run and the guard rail write nothing either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cc_sync.sync.resources import DEFAULT_MAPPING_PATH
from tests.dags.conftest import SyncWorld

pytestmark = pytest.mark.slow

LIST_NAME = "Runners"
RUNNERS = "favourite_activity = 'running' AND membership_status = 'active' AND deleted_at IS NULL"
ADD = "POST /v3/activities/add_list_memberships"
REMOVE = "POST /v3/activities/remove_list_memberships"


@pytest.fixture
def ruled(synced: SyncWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SyncWorld:
    """The synced world, its mapping now with a list rule (runners -> "Runners")."""
    text = DEFAULT_MAPPING_PATH.read_text(encoding="utf-8")
    text += f"\nlist_rules:\n  - {{segment: runners, list: {LIST_NAME}}}\n"
    path = tmp_path / "with_list_rules.yaml"
    path.write_text(text, encoding="utf-8")
    # The steps read the mapping path when they run (dag.test runs them in this process).
    monkeypatch.setenv("CC_SYNC_MAPPING", str(path))
    return synced


def _on_list(world: SyncWorld) -> set[str]:
    return {c["contact_id"] for c in world.list_contacts(LIST_NAME)}


def _expected(world: SyncWorld) -> set[str]:
    """The contacts the list must hold: linked runners subscribed on both sides."""
    runners = world.members(RUNNERS)
    runners = runners.loc[~runners["email_opt_out"].astype(bool)]
    links = world.links().set_index("member_id")["contact_id"]
    expected = set()
    for member_id in runners["member_id"].astype(str):
        contact_id = links.get(member_id)
        if contact_id is None:
            continue
        contact = world.emulator.admin.get_contact(contact_id)
        if contact["email_address"]["permission_to_send"] != "unsubscribed":
            expected.add(contact_id)
    return expected


def _rule_changes(world: SyncWorld, run_id: str) -> pd.DataFrame:
    changes = world.bookkeeping.get_changes(run_id)
    return changes.loc[changes["reason"] == "list_rule:runners"]


def _linked_runners(world: SyncWorld) -> list[int]:
    linked = set(world.linked_member_ids())
    return [int(m) for m in world.members(RUNNERS)["member_id"] if int(m) in linked]


def _endpoint_calls(world: SyncWorld) -> dict[str, int]:
    return dict(world.emulator.admin.counters()["endpoints"])


@pytest.mark.all_dialects
def test_a_rule_keeps_its_list_equal_to_the_segment_and_never_resubscribes(ruled: SyncWorld) -> None:
    world = ruled
    first = world.sync()
    assert first["state"] == "success", first["tasks"]
    assert first["tasks"]["list_rules"] == "success"
    filled = _on_list(world)
    assert filled == _expected(world)
    assert filled
    assert first["counts"]["list_rule_added"] == len(filled)
    logged = _rule_changes(world, first["run_id"])
    assert set(logged["contact_id"]) == filled
    assert logged["old_value"].isna().all()
    assert set(logged["new_value"]) == {world.list_id(LIST_NAME)}

    # Changes on both sides.
    admin = world.emulator.admin
    runners = _linked_runners(world)
    leaver, opting_out, unsubscribing = runners[0], runners[1], runners[2]
    world.edit_member(leaver, favourite_activity="chess")
    world.edit_member(opting_out, email_opt_out=True)
    unsubscribed_contact = world.contact_of(unsubscribing)["contact_id"]
    admin.opt_out(unsubscribed_contact)
    linked = set(world.linked_member_ids())
    others = world.members(
        "membership_status = 'active' AND deleted_at IS NULL AND email_opt_out = false "
        "AND (favourite_activity IS NULL OR favourite_activity <> 'running')"
    )
    joiner = next(
        int(m)
        for m in others["member_id"]
        if int(m) in linked
        and world.contact_of(int(m))["email_address"]["permission_to_send"] != "unsubscribed"
    )  # fmt: skip
    world.edit_member(joiner, favourite_activity="running")
    [stranger] = admin.seed_contacts(
        contacts=[{"email": "stranger@example.org", "first_name": "Not", "last_name": "Amember"}],
        list_ids=[world.list_id(LIST_NAME)],
    )
    resubscribes_before = admin.counters()["resubscribes"]

    # The 60-member world's list holds a handful of runners: two removals are over the guard
    # rail's default share (its own test below), so this run allows any share.
    second = world.sync(max_change_share=1.0)
    assert second["state"] == "success", second["tasks"]
    after = _on_list(world)
    assert after == _expected(world)
    joiner_contact = world.contact_of(joiner)["contact_id"]
    leaver_contact = world.contact_of(leaver)["contact_id"]
    opted_out_contact = world.contact_of(opting_out)["contact_id"]
    assert joiner_contact in after
    assert not {leaver_contact, stranger, opted_out_contact, unsubscribed_contact} & after
    # Exactly the segment's changes, in the change log: the joiner added; the leaver and the
    # stranger removed (the opted-out ones left the list as CC unsubscribed them, not by the rule).
    logged = _rule_changes(world, second["run_id"])
    assert set(logged.loc[logged["new_value"].notna(), "contact_id"]) == {joiner_contact}
    assert set(logged.loc[logged["old_value"].notna(), "contact_id"]) == {leaver_contact, stranger}
    # Nobody re-subscribed, nobody unsubscribed by the rule, no sign-up form.
    for contact_id in (opted_out_contact, unsubscribed_contact):
        assert admin.get_contact(contact_id)["email_address"]["permission_to_send"] == "unsubscribed"
    assert admin.get_contact(leaver_contact)["email_address"]["permission_to_send"] != "unsubscribed"
    assert admin.get_contact(stranger)["email_address"]["permission_to_send"] != "unsubscribed"
    assert admin.counters()["resubscribes"] == resubscribes_before
    assert admin.counters()["sign_up_form_calls"] == 0

    # A rerun with nothing changed writes nothing: no membership activity, no change logged.
    calls_before = _endpoint_calls(world)
    third = world.sync()
    assert third["state"] == "success", third["tasks"]
    calls = _endpoint_calls(world)
    assert calls.get(ADD, 0) == calls_before.get(ADD, 0)
    assert calls.get(REMOVE, 0) == calls_before.get(REMOVE, 0)
    assert _rule_changes(world, third["run_id"]).empty
    assert (third["counts"]["list_rule_added"], third["counts"]["list_rule_removed"]) == (0, 0)
    assert _on_list(world) == after


def test_an_opted_out_member_is_never_added(ruled: SyncWorld) -> None:
    world = ruled
    # Opted out in the member database only (CC still shows the contact subscribed before this run).
    runner = _linked_runners(world)[0]
    world.edit_member(runner, email_opt_out=True)
    contact_id = world.contact_of(runner)["contact_id"]
    run = world.sync()
    assert run["state"] == "success", run["tasks"]
    assert contact_id not in _on_list(world)
    assert contact_id not in set(_rule_changes(world, run["run_id"])["contact_id"])
    assert (
        world.emulator.admin.get_contact(contact_id)["email_address"]["permission_to_send"] == "unsubscribed"
    )


def test_a_dry_run_plans_the_rule_and_changes_no_list(ruled: SyncWorld) -> None:
    world = ruled
    calls_before = _endpoint_calls(world)
    run = world.sync(dry_run=True)
    assert run["state"] == "success", run["tasks"]
    assert run["tasks"]["list_rules"] == "success"
    assert not [item for item in world.emulator.admin.all_lists() if item["name"] == LIST_NAME]
    calls = _endpoint_calls(world)
    assert calls.get(ADD, 0) == calls_before.get(ADD, 0)
    assert calls.get("POST /v3/contact_lists", 0) == calls_before.get("POST /v3/contact_lists", 0)
    planned = world.bookkeeping.get_planned_changes(run["run_id"])
    rule_rows = planned.loc[planned["reason"] == "list_rule:runners"]
    assert len(rule_rows) == len(_expected(world)) > 0
    assert _rule_changes(world, run["run_id"]).empty


def test_the_guard_rail_stops_a_rule_that_would_empty_its_list(ruled: SyncWorld) -> None:
    world = ruled
    assert world.sync()["state"] == "success"
    before = _on_list(world)
    assert len(before) >= 2
    for member_id in _linked_runners(world):
        world.edit_member(member_id, favourite_activity="chess")

    refused = world.sync()
    assert refused["tasks"]["list_rules"] == "failed"
    assert _on_list(world) == before
    assert _rule_changes(world, refused["run_id"]).empty

    allowed: dict[str, Any] = world.sync(allow_mass_change=True)
    assert allowed["state"] == "success", allowed["tasks"]
    assert _on_list(world) == _expected(world) == set()


def test_the_undo_takes_a_rules_adds_off_the_list_again(ruled: SyncWorld, dag_bag: Any) -> None:
    from tests.dags.test_undo_dag import UNDO_DAG_ID, undo

    world = ruled
    run = world.sync()
    assert run["state"] == "success", run["tasks"]
    added = _on_list(world)
    assert added
    permissions = {
        c: world.emulator.admin.get_contact(c)["email_address"]["permission_to_send"] for c in added
    }

    undone = undo(world, dag_bag.get_dag(UNDO_DAG_ID), run["run_id"], max_change_share=1.0)

    assert undone["state"] == "success", undone["tasks"]
    assert _on_list(world) == set()
    # Off the list, not unsubscribed: each contact keeps its permission.
    assert {
        c: world.emulator.admin.get_contact(c)["email_address"]["permission_to_send"] for c in added
    } == permissions
