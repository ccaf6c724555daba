"""Issue 10's cases, from the user's side: dag.test(), the emulator over HTTP, real member databases.

- an edit made after a send-list link survives the next sync (the link was stored with a base);
- the name placeholder reaches Constant Contact and never comes back into the member database;
- without a placeholder, a row the mapping refuses is reviewed with its reason, the others sync;
- a dry run's plan is in its run record and the bookkeeping, and a real run then writes that plan;
- control characters are cleaned before they leave, and cause no change afterwards.

Every scenario runs on SQLite, PostgreSQL and MariaDB (``all_dialects``): the issue asks each case
on the three, and the base, the review items, the planned changes and text with control characters
are all stored by the member database's own dialect.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cc_sync.sync.resources import DEFAULT_MAPPING_PATH
from cc_sync.timeutil import utcnow
from tests.dags.conftest import SyncWorld

pytestmark = [pytest.mark.slow, pytest.mark.all_dialects]

SEND_DAG_ID = "constant_contact_send_list"
RUNNERS = "favourite_activity = 'running' AND membership_status = 'active' AND deleted_at IS NULL"


def _send(world: SyncWorld, send_dag: Any, **conf: Any) -> dict[str, Any]:
    """Run the send-list DAG once with every param given (dag.test keeps a run's conf on the DAG)."""
    full = {"segment": None, "filter": [], "list": "", "mode": "update", "dry_run": False, **conf}
    dag_run = send_dag.test(run_conf=full)
    return world._outcome(dag_run, run_id=dag_run.run_id)


def _unique_email_members(world: SyncWorld, where: str) -> list[dict[str, Any]]:
    """Members matching ``where`` with a well-formed email no other member has, and not opted out."""
    members = world.members(f"{where} AND email IS NOT NULL")
    keys = members["email"].str.strip().str.lower()
    alone = ~keys.duplicated(keep=False) & keys.str.fullmatch(r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}")
    ok = members[alone & ~members["email_opt_out"].astype(bool)]
    return ok.to_dict("records")


def _not_in_cc(world: SyncWorld, where: str = "membership_status = 'active' AND deleted_at IS NULL") -> int:
    in_cc = {c["email_address"]["address"].lower() for c in world.emulator.admin.all_contacts()}
    for row in _unique_email_members(world, where):
        if row["email"].strip().lower() not in in_cc:
            return int(row["member_id"])
    raise AssertionError("every member is in Constant Contact already")


def _mapping_without_placeholder(world: SyncWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the sync DAG's tasks at a copy of the mapping with no name placeholder."""
    text = DEFAULT_MAPPING_PATH.read_text(encoding="utf-8").replace("name_placeholder: Unknown", "")
    path = tmp_path / "no_placeholder.yaml"
    path.write_text(text, encoding="utf-8")
    # The job's steps read the mapping path from the settings when they run (dag.test runs them in
    # this process); the operators took theirs at parse, but the placeholder matters only to resolve.
    monkeypatch.setenv("CC_SYNC_MAPPING", str(path))


@pytest.fixture
def send_dag(dag_bag: Any) -> Any:
    return dag_bag.get_dag(SEND_DAG_ID)


def test_an_edit_after_a_send_list_link_survives_the_next_sync(world: SyncWorld, send_dag: Any) -> None:
    # Anne Conley is a runner; CC holds her email as "Annabelle Conley".
    anne = _unique_email_members(world, RUNNERS)[0]
    member_id = int(anne["member_id"])
    contact = world.contact_by_email(anne["email"])
    if contact is None:
        world.emulator.admin.seed_contacts(
            contacts=[
                {
                    "email_address": {"address": anne["email"].strip(), "permission_to_send": "implicit"},
                    "first_name": f"{anne['first_name']}belle",
                    "last_name": anne["last_name"],
                }
            ]
        )
    else:
        world.emulator.admin.edit_contact(contact["contact_id"], {"first_name": f"{anne['first_name']}belle"})

    sent = _send(world, send_dag, segment="runners", list="Runners", mode="create_new")
    assert sent["state"] == "success", sent["tasks"]
    contact = world.contact_of(member_id)  # linked by the send, and renamed as Realm does
    assert contact["first_name"] == anne["first_name"]

    now = utcnow()
    world.edit_member(member_id, at=now - timedelta(minutes=3), last_name="Conley-Smith")
    world.emulator.admin.edit_contact(
        contact["contact_id"], {"job_title": "Treasurer"}, at=now - timedelta(minutes=1)
    )

    # The first sync after the send links and merges everyone else too: far more than the guard
    # rail's share of the few people the send linked.
    run = world.sync(allow_mass_change=True)

    assert run["state"] == "success", run["tasks"]
    assert world.member(member_id)["last_name"] == "Conley-Smith"
    assert world.member(member_id)["job_title"] == "Treasurer"
    assert world.contact_of(member_id)["last_name"] == "Conley-Smith"
    changes = world.bookkeeping.get_changes(run["run_id"])
    mine = changes[changes["member_id"] == str(member_id)]
    assert set(zip(mine["direction"], mine["field"], mine["reason"], strict=True)) == {
        ("to_cc", "last_name", "member_changed"),
        ("to_member_db", "job_title", "cc_changed"),
    }


def test_the_name_placeholder_goes_to_cc_only(world: SyncWorld) -> None:
    member_id = _not_in_cc(world)
    world.edit_member(member_id, last_name=None)

    first = world.sync()

    assert first["state"] == "success", first["tasks"]
    assert world.contact_of(member_id)["last_name"] == "Unknown"
    assert world.member(member_id)["last_name"] is None
    # The contact's "Unknown" is no change: nothing flows back, now or when CC changes another field.
    world.emulator.admin.edit_contact(world.contact_of(member_id)["contact_id"], {"job_title": "Organist"})
    second = world.sync()
    assert world.member(member_id)["last_name"] is None
    assert world.member(member_id)["job_title"] == "Organist"
    back = world.bookkeeping.get_changes(second["run_id"])
    assert back[(back["member_id"] == str(member_id)) & (back["field"] == "last_name")].empty
    assert world.sync()["counts"]["changes"] == 0


def test_without_a_placeholder_a_refused_row_is_reviewed_and_the_rest_sync(
    world: SyncWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mapping_without_placeholder(world, tmp_path, monkeypatch)
    blank = _not_in_cc(world)
    world.edit_member(blank, last_name="  ")

    run = world.sync()

    assert run["state"] == "success", run["tasks"]
    assert run["counts"]["rejected_required_blank"] == 1
    assert world.contact_by_email(world.member(blank)["email"]) is None
    assert str(blank) not in set(world.links()["member_id"])
    reviews = world.reviews("rejected_required_blank")
    assert reviews["member_id"].tolist() == [str(blank)]
    assert "last_name" in reviews["detail"].iloc[0]
    assert run["counts"]["cc_creates"] > 0  # everyone else was still created and linked
    assert len(world.links()) > 0

    # Fixed in the member database: the next run sends it, once.
    world.edit_member(blank, last_name="Okafor")
    fixed = world.sync()
    assert fixed["state"] == "success", fixed["tasks"]
    assert world.contact_of(blank)["last_name"] == "Okafor"
    assert world.reviews("rejected_required_blank")["member_id"].tolist() == [str(blank)]


def test_a_dry_run_keeps_its_plan_and_a_real_run_writes_it(synced: SyncWorld) -> None:
    member_id = _unique_email_members(synced, "membership_status = 'active' AND deleted_at IS NULL")[0]
    member_id = int(member_id["member_id"])
    old_title = synced.contact_of(member_id).get("job_title")
    synced.edit_member(member_id, job_title="Choir Librarian")

    dry = synced.sync(dry_run=True)

    assert dry["state"] == "success", dry["tasks"]
    assert dry["kind"] == "dry_run"
    assert dry["status"] == "dry_run"
    assert dry["counts"]["cc_updates"] == 1
    assert dry["counts"]["planned_changes"] == 1
    planned = synced.bookkeeping.get_planned_changes(dry["run_id"])
    assert planned[["direction", "member_id", "field", "old_value", "new_value", "reason"]].to_dict(
        "records"
    ) == [
        {
            "direction": "to_cc",
            "member_id": str(member_id),
            "field": "job_title",
            "old_value": old_title,
            "new_value": "Choir Librarian",
            "reason": "member_changed",
        }
    ]
    assert synced.contact_of(member_id).get("job_title") == old_title  # nothing written

    real = synced.sync()
    assert synced.contact_of(member_id)["job_title"] == "Choir Librarian"
    written = synced.bookkeeping.get_changes(real["run_id"])
    assert written[["direction", "member_id", "field", "new_value"]].to_dict("records") == planned[
        ["direction", "member_id", "field", "new_value"]
    ].to_dict("records")


def test_control_characters_are_cleaned_before_they_leave(world: SyncWorld) -> None:
    new = _not_in_cc(world)
    world.edit_member(new, first_name="Ann\x07e", address_line="1 Main St\nFlat 2")
    world.sync()
    linked = _unique_email_members(world, "membership_status = 'active' AND deleted_at IS NULL")
    linked_id = next(int(m["member_id"]) for m in linked if int(m["member_id"]) in world.linked_member_ids())
    world.edit_member(linked_id, job_title="Verger\x1b\r\nWarden")

    run = world.sync()

    assert run["state"] == "success", run["tasks"]
    created = world.contact_of(new)
    assert created["first_name"] == "Anne"
    assert created["street_addresses"][0]["street"] == "1 Main St Flat 2"
    assert world.contact_of(linked_id)["job_title"] == "Verger Warden"
    # The member rows keep what the member database holds; the cleaning is no change to sync back.
    assert world.member(new)["first_name"] == "Ann\x07e"
    assert world.sync()["counts"]["changes"] == 0
