"""Undo a run (issue 13) end to end: dag.test() of constant_contact_undo after real sync runs, the
emulator over HTTP, real member databases: putting both sides back and resuming after a crash on
SQLite, PostgreSQL and MariaDB (the member values and bases written back per dialect, the journal
read back); the rest on SQLite, as their writes are those.

A sync writes names and emails on both sides; the undo puts both sides and the bases back as they
were before that run, leaves alone what was edited since (and reports it), never reverses an
opt-out, can itself be undone, resumes after a crash without writing twice, and on a dry run
writes nothing but its plan.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from cc_sync.constant_contact.hook import ConstantContactHook
from tests.dags.conftest import SyncWorld

pytestmark = pytest.mark.slow

UNDO_DAG_ID = "constant_contact_undo"
UNDO_CONF: dict[str, Any] = {
    "dry_run": False,
    "fields": [],
    "people": [],
    "allow_mass_change": False,
    "max_change_share": 0.25,
    "review_edited_since": False,
    "remove_created_from_lists": False,
}
FIELDS = ("first_name", "last_name", "email")
IMPORTS = "POST /v3/activities/contacts_json_import"
PUTS = "PUT /v3/contacts/{contact_id}"


@pytest.fixture(scope="module")
def undo_dag(dag_bag: Any) -> Any:
    return dag_bag.get_dag(UNDO_DAG_ID)


def undo(world: SyncWorld, dag: Any, run_id: str, **conf: Any) -> dict[str, Any]:
    """Run the undo DAG once for ``run_id``; its outcome and run record."""
    dag_run = dag.test(run_conf={**UNDO_CONF, "run_id": run_id, **conf})
    return world._outcome(dag_run, run_id=dag_run.run_id)


def _subscribed(world: SyncWorld, count: int) -> list[int]:
    chosen = [
        m
        for m in world.linked_member_ids()
        if not world.member(m)["email_opt_out"]
        and world.contact_of(m)["email_address"]["permission_to_send"] != "unsubscribed"
    ][:count]
    assert len(chosen) == count
    return chosen


def _state(world: SyncWorld, member_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Names and email of each member on both sides, and their base (what the next sync compares)."""
    base = world.bookkeeping.load_base([str(m) for m in member_ids])
    out = {}
    for member_id in member_ids:
        row, contact = world.member(member_id), world.contact_of(member_id)
        stored = base.loc[str(member_id)]
        out[member_id] = {
            "member": {f: row[f] for f in FIELDS},
            "cc": {
                "first_name": contact.get("first_name"),
                "last_name": contact.get("last_name"),
                "email": contact["email_address"]["address"],
            },
            "base": {f: None if pd.isna(stored.get(f)) else stored.get(f) for f in FIELDS},
        }
    return out


def _edit_both_sides(world: SyncWorld, people: list[int]) -> None:
    """In turn: name and email changed in the member database (CC gets a PUT), in CC (the member
    database gets them), and a name alone in the member database (CC gets it by bulk import)."""
    for n, member_id in enumerate(people):
        if n % 3 == 0:
            world.edit_member(member_id, first_name=f"Undone{n}", email=f"undo.member{n}@example.org")
        elif n % 3 == 1:
            contact_id = world.contact_of(member_id)["contact_id"]
            world.emulator.admin.edit_contact(
                contact_id,
                {"last_name": f"Reverted{n}", "email_address": {"address": f"undo.cc{n}@example.org"}},
            )
        else:
            world.edit_member(member_id, last_name=f"Renamed{n}")


def _bad_run(world: SyncWorld, people: list[int]) -> tuple[dict[int, dict[str, Any]], str]:
    """The state before a sync that writes names and emails both ways, and that sync's run id."""
    _edit_both_sides(world, people)
    before = _state(world, people)
    run = world.sync()
    assert run["state"] == "success", run["tasks"]
    changed = world.bookkeeping.get_changes(run["run_id"])
    assert {"to_cc", "to_member_db"} <= set(changed["direction"])
    assert {"email", "first_name", "last_name"} <= set(changed["field"])
    return before, run["run_id"]


@pytest.mark.all_dialects
def test_an_undo_puts_both_sides_and_the_bases_back_exactly(synced: SyncWorld, undo_dag: Any) -> None:
    people = _subscribed(synced, 4)
    before, run_id = _bad_run(synced, people)
    assert _state(synced, people) != before
    calls_before = synced.emulator.admin.counters()["api_calls"]

    result = undo(synced, undo_dag, run_id)

    assert result["state"] == "success", result["tasks"]
    # Every call the undo made is counted: the plan's reads and the load's writes.
    assert result["api_calls"] == synced.emulator.admin.counters()["api_calls"] - calls_before > 0
    after = _state(synced, people)
    for member_id in people:
        # The edits the run carried over are gone from the side it wrote; the source side keeps
        # its own edit (as before the run), and the base is what it was before the run.
        assert after[member_id] == before[member_id], member_id
    logged = synced.bookkeeping.get_changes(result["run_id"])
    assert set(logged["reason"]) == {f"undo:{run_id}"}
    assert len(logged) == len(synced.bookkeeping.get_changes(run_id))
    # Email changes went by PUT, names in one import: the load path of the sync.
    assert synced.emulator.admin.counters()["resubscribes"] == 0


def test_a_field_edited_since_is_kept_and_reported(synced: SyncWorld, undo_dag: Any) -> None:
    people = _subscribed(synced, 2)
    before, run_id = _bad_run(synced, people)
    kept = people[0]  # the run wrote its first name and email to CC; CC edits the first name since
    synced.emulator.admin.edit_contact(synced.contact_of(kept)["contact_id"], {"first_name": "EditedSince"})

    result = undo(synced, undo_dag, run_id)

    assert result["state"] == "success", result["tasks"]
    after = _state(synced, people)
    assert after[kept]["cc"]["first_name"] == "EditedSince"
    assert after[kept]["cc"]["email"] == before[kept]["cc"]["email"]  # the rest of the person is undone
    assert after[people[1]] == before[people[1]]
    assert result["counts"]["skipped_edited_since"] == 1


def test_an_opt_out_made_by_the_run_stays(synced: SyncWorld, undo_dag: Any) -> None:
    member_id = _subscribed(synced, 1)[0]
    synced.edit_member(member_id, email_opt_out=True, first_name="Leaving")
    run = synced.sync()
    assert synced.contact_of(member_id)["email_address"]["permission_to_send"] == "unsubscribed"

    result = undo(synced, undo_dag, run["run_id"])

    assert result["state"] == "success", result["tasks"]
    contact = synced.contact_of(member_id)
    assert contact["email_address"]["permission_to_send"] == "unsubscribed"
    assert contact["first_name"] != "Leaving"  # the name it carried over is undone ...
    assert result["counts"]["skipped_opt_out_never_reversed"] >= 1  # ... the opt-out is not
    assert synced.emulator.admin.counters()["resubscribes"] == 0
    assert str(member_id) in set(synced.bookkeeping.get_opt_outs()["member_id"])


def test_undoing_the_undo_restores_the_runs_values(synced: SyncWorld, undo_dag: Any) -> None:
    people = _subscribed(synced, 4)
    _, run_id = _bad_run(synced, people)
    after_run = _state(synced, people)
    first = undo(synced, undo_dag, run_id)
    assert first["state"] == "success", first["tasks"]

    second = undo(synced, undo_dag, first["run_id"])

    assert second["state"] == "success", second["tasks"]
    assert _state(synced, people) == after_run
    # And the next sync finds nothing to do: both sides and the bases agree.
    assert synced.sync()["counts"]["changes"] == 0


@pytest.mark.all_dialects
def test_a_crashed_undo_resumes_without_writing_twice(
    synced: SyncWorld, undo_dag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = _subscribed(synced, 4)
    before, run_id = _bad_run(synced, people)
    task = undo_dag.get_task("load.constant_contact")
    monkeypatch.setattr(task, "retries", 1)
    monkeypatch.setattr(task, "retry_delay", timedelta(0))
    get_activity = ConstantContactHook.get_activity
    polled: list[str] = []

    def killed_once(self: ConstantContactHook, activity_id: str) -> Any:
        polled.append(activity_id)
        if len(polled) == 1:
            raise RuntimeError(f"worker killed while waiting for activity {activity_id}")
        return get_activity(self, activity_id)

    monkeypatch.setattr(ConstantContactHook, "get_activity", killed_once)
    counters = synced.emulator.admin.counters()["endpoints"]
    imports, puts = counters.get(IMPORTS, 0), counters.get(PUTS, 0)

    result = undo(synced, undo_dag, run_id)

    assert result["state"] == "success", result["tasks"]
    assert result["tries"]["load.constant_contact"] == 2
    counters = synced.emulator.admin.counters()["endpoints"]
    assert counters.get(IMPORTS, 0) - imports == 1  # the retry polled the accepted import
    assert counters.get(PUTS, 0) - puts == 2  # one PUT per email restored in CC, none twice
    assert _state(synced, people) == before


def test_a_dry_run_writes_nothing_and_keeps_its_plan(synced: SyncWorld, undo_dag: Any) -> None:
    people = _subscribed(synced, 2)
    _, run_id = _bad_run(synced, people)
    after_run = _state(synced, people)
    calls = synced.emulator.admin.counters()["endpoints"]
    writes = sum(v for k, v in calls.items() if not k.startswith("GET"))

    result = undo(synced, undo_dag, run_id, dry_run=True)

    assert result["state"] == "success", result["tasks"]
    assert result["status"] == "dry_run"
    assert _state(synced, people) == after_run
    calls = synced.emulator.admin.counters()["endpoints"]
    assert sum(v for k, v in calls.items() if not k.startswith("GET")) == writes
    assert synced.bookkeeping.get_changes(result["run_id"]).empty
    planned = synced.bookkeeping.get_planned_changes(result["run_id"])
    assert len(planned) == len(synced.bookkeeping.get_changes(run_id))
    assert set(planned["reason"]) == {f"undo:{run_id}"}


SEND_CONF: dict[str, Any] = {"segment": "runners", "filter": [], "mode": "create_new", "dry_run": False}


def test_undoing_a_send_takes_its_people_off_the_list_restores_names_and_unlinks(
    synced: SyncWorld, undo_dag: Any, dag_bag: Any
) -> None:
    synced.sync()  # reads back the contacts the first created: the directory (CC's mirror) knows all
    runners = synced.members("favourite_activity = 'running' AND NOT email_opt_out")
    linked = set(synced.linked_member_ids())
    renamed = [int(m) for m in runners["member_id"] if int(m) in linked][:2]
    assert renamed, "the seeded world has linked runners"
    names = {m: synced.contact_of(m)["first_name"] for m in renamed}
    for member_id in renamed:  # the send overwrites CC's first name with these
        synced.edit_member(member_id, first_name=f"Sent{member_id}")
    links_before = set(synced.links()["member_id"])
    send = dag_bag.get_dag("constant_contact_send_list").test(run_conf={**SEND_CONF, "list": "Undo test"})
    assert send.state == "success"
    on_list = synced.list_contacts("Undo test")
    assert on_list
    assert all(synced.contact_of(m)["first_name"] == f"Sent{m}" for m in renamed)
    logged = synced.bookkeeping.get_changes(send.run_id)
    assert set(logged["field"]) >= {"list_membership", "first_name"}

    result = undo(synced, undo_dag, send.run_id)

    assert result["state"] == "success", result["tasks"]
    assert synced.list_contacts("Undo test") == []  # off the list, still contacts, never unsubscribed
    assert {c["contact_id"] for c in on_list} <= {
        c["contact_id"] for c in synced.emulator.admin.all_contacts()
    }
    assert all(
        synced.emulator.admin.get_contact(c["contact_id"])["email_address"]["permission_to_send"]
        == c["email_address"]["permission_to_send"]
        for c in on_list
    )
    assert {m: synced.contact_of(m)["first_name"] for m in renamed} == names
    assert set(synced.links()["member_id"]) == links_before  # the send's links are gone
    assert synced.emulator.admin.counters()["resubscribes"] == 0


def test_a_mass_undo_is_refused_unless_allowed(synced: SyncWorld, undo_dag: Any) -> None:
    people = _subscribed(synced, 4)
    _, run_id = _bad_run(synced, people)
    after_run = _state(synced, people)

    refused = undo(synced, undo_dag, run_id, max_change_share=0.01)

    assert refused["state"] == "failed"
    assert refused["tasks"]["guard"] == "failed"
    assert _state(synced, people) == after_run  # nothing written
    allowed = undo(synced, undo_dag, run_id, max_change_share=0.01, allow_mass_change=True)
    assert allowed["state"] == "success", allowed["tasks"]
    assert _state(synced, people) != after_run
