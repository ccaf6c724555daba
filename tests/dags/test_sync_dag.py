"""The two-way sync DAG end to end: dag.test(), the emulator over HTTP, real member databases.

Each test is a scenario from issue 4: a first sync, edits on one or both sides, a second sync, and
what each side holds afterwards. Every scenario runs on SQLite; those whose writes differ by dialect
(``all_dialects``) on PostgreSQL and MariaDB too. ``synced`` worlds start from a snapshot of the
world after its first sync (tests/dags/conftest.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cc_sync.sync.resources import DEFAULT_MAPPING_PATH
from cc_sync.timeutil import utcnow
from tests.dags.conftest import DEFAULT_CONF, MEMBERS, SyncWorld

pytestmark = pytest.mark.slow


def _linked_member(world: SyncWorld, *, opted_out: bool = False) -> int:
    """A linked member with an email of its own (not a household), in the given consent state."""
    for member_id in world.linked_member_ids():
        row = world.member(member_id)
        contact = world.contact_of(member_id)
        unsubscribed = contact["email_address"]["permission_to_send"] == "unsubscribed"
        if bool(row["email_opt_out"]) == opted_out and unsubscribed == opted_out:
            return member_id
    raise AssertionError("no linked member in that consent state")


@pytest.mark.all_dialects
def test_initial_sync_links_creates_and_converges(synced: SyncWorld) -> None:
    first = synced.runs[0]
    report = synced.seed_report
    assert report is not None
    assert report.same_person > 0
    assert report.renamed > 0
    # Everyone seeded is linked at most once; the renamed one is a near match, never a link.
    assert 0 < first["counts"]["new_links"] <= report.same_person
    assert first["counts"]["review_near_match"] == report.renamed
    assert first["counts"]["cc_creates"] > 0
    contacts = synced.emulator.admin.all_contacts()
    assert (
        len(contacts) == report.same_person + report.renamed + report.cc_only + first["counts"]["cc_creates"]
    )
    # Contacts no member has stay unlinked, and no member is created for them.
    cc_only = {c["contact_id"] for c in contacts if c["email_address"]["address"].startswith("cc.only.")}
    assert len(cc_only) == report.cc_only
    assert not cc_only & set(synced.links()["contact_id"])
    assert len(synced.members()) == MEMBERS
    # Every linked person now agrees on both sides.
    for member_id in synced.linked_member_ids()[:10]:
        member, contact = synced.member(member_id), synced.contact_of(member_id)
        assert contact["email_address"]["address"].lower() == member["email"].strip().lower()
        assert contact.get("last_name") == member["last_name"]

    second = synced.sync()
    assert second["state"] == "success"
    assert second["counts"]["changes"] == 0
    assert second["counts"]["new_links"] == 0
    assert second["tasks"]["publish"] == "skipped"
    assert synced.emulator.admin.counters()["resubscribes"] == 0
    assert synced.emulator.admin.counters()["sign_up_form_calls"] == 0


def test_edits_of_different_fields_on_both_sides_are_both_kept(synced: SyncWorld) -> None:
    member_id = _linked_member(synced)
    contact = synced.contact_of(member_id)
    synced.edit_member(member_id, job_title="Treasurer")
    synced.emulator.admin.edit_contact(contact["contact_id"], {"company_name": "Harbour Choir"})

    run = synced.sync()

    assert run["state"] == "success", run["tasks"]
    assert synced.contact_of(member_id)["job_title"] == "Treasurer"
    assert synced.member(member_id)["company"] == "Harbour Choir"
    assert synced.sync()["counts"]["changes"] == 0


def test_opt_outs_cross_over_and_are_never_reversed(synced: SyncWorld) -> None:
    in_cc = _linked_member(synced)
    in_members = next(
        m for m in synced.linked_member_ids() if m != in_cc and not synced.member(m)["email_opt_out"]
    )
    synced.emulator.admin.opt_out(synced.contact_of(in_cc)["contact_id"], source="Contact", reason="too many")
    synced.edit_member(in_members, email_opt_out=True)

    run = synced.sync()

    assert run["state"] == "success", run["tasks"]
    assert bool(synced.member(in_cc)["email_opt_out"]) is True
    assert synced.contact_of(in_members)["email_address"]["permission_to_send"] == "unsubscribed"
    ledger = synced.bookkeeping.get_opt_outs()
    assert {str(in_cc), str(in_members)} <= set(ledger["member_id"])

    # The member clears the flag by hand: the sync never re-subscribes them in CC.
    synced.edit_member(in_members, email_opt_out=False)
    synced.sync()
    assert synced.contact_of(in_members)["email_address"]["permission_to_send"] == "unsubscribed"
    assert synced.emulator.admin.counters()["resubscribes"] == 0


@pytest.mark.all_dialects
def test_an_edit_to_a_contact_read_unsubscribed_goes_in_the_import_and_adds_it_to_no_list(
    synced: SyncWorld,
) -> None:
    member_id = _linked_member(synced)
    contact_id = synced.contact_of(member_id)["contact_id"]
    synced.emulator.admin.opt_out(contact_id, source="Contact", reason="moved away")
    synced.edit_member(member_id, job_title="Archivist")  # the same round: the run reads both
    lists_before = synced.contact_of(member_id)["list_memberships"]
    puts_before = synced.emulator.admin.counters()["endpoints"].get("PUT /v3/contacts/{contact_id}", 0)

    run = synced.sync()

    assert run["state"] == "success", run["tasks"]
    contact = synced.contact_of(member_id)
    assert contact["job_title"] == "Archivist"
    assert contact["email_address"]["permission_to_send"] == "unsubscribed"
    assert contact["list_memberships"] == lists_before
    assert bool(synced.member(member_id)["email_opt_out"]) is True
    counters = synced.emulator.admin.counters()
    assert counters["endpoints"].get("PUT /v3/contacts/{contact_id}", 0) == puts_before  # no GET + PUT
    assert counters["resubscribes"] == 0
    assert synced.sync()["counts"]["changes"] == 0


def test_conflicting_edits_of_one_field_the_later_wins(synced: SyncWorld) -> None:
    member_id = _linked_member(synced)
    contact_id = synced.contact_of(member_id)["contact_id"]
    now = utcnow()
    synced.edit_member(member_id, at=now - timedelta(minutes=3), city="Lyon")
    synced.emulator.admin.edit_contact(
        contact_id, {"street_addresses": [{"kind": "home", "city": "Nantes"}]}, at=now - timedelta(minutes=1)
    )

    synced.sync()

    assert synced.member(member_id)["city"] == "Nantes"
    assert synced.contact_of(member_id)["street_addresses"][0]["city"] == "Nantes"
    changes = synced.bookkeeping.get_changes(synced.runs[-1]["run_id"])
    reasons = set(changes.loc[changes["field"] == "city", "reason"])
    assert reasons == {"conflict_cc_later"}


@pytest.mark.all_dialects
def test_email_change_follows_the_link_and_a_collision_goes_to_review(synced: SyncWorld) -> None:
    mover, other = synced.linked_member_ids()[:2]
    other_email = synced.contact_of(other)["email_address"]["address"]
    synced.edit_member(mover, email="moved.house@example.org")

    synced.sync()
    assert synced.contact_of(mover)["email_address"]["address"] == "moved.house@example.org"

    synced.edit_member(mover, email=other_email)
    synced.sync()
    assert synced.contact_of(mover)["email_address"]["address"] == "moved.house@example.org"
    collisions = synced.reviews("email_collision")
    assert str(mover) in set(collisions["member_id"])


def test_near_matches_and_households_go_to_review_not_links(world_factory: Any, database_url: str) -> None:
    world = world_factory(database_url, renamed_share=0.2)
    world.sync()
    near = world.reviews("near_match")
    assert world.seed_report is not None
    assert len(near) == world.seed_report.renamed > 0
    assert not set(near["member_id"]) & set(world.links()["member_id"])
    assert len(world.reviews("shared_email")) > 0


def test_dry_run_writes_nothing(world: SyncWorld) -> None:
    before = world.emulator.admin.counters()["endpoints"]
    run = world.sync(dry_run=True)
    assert run["state"] == "success"
    assert run["tasks"]["load.constant_contact"] == "skipped"
    assert world.links().empty
    endpoints = world.emulator.admin.counters()["endpoints"]
    writes = {k: v for k, v in endpoints.items() if not k.startswith("GET") and v != before.get(k)}
    assert writes == {}


def test_guard_rail_stops_a_mass_change_before_any_write(
    synced: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The refusal fails the run at once: a retry would refuse again.
    monkeypatch.setattr(synced.dag.get_task("guard"), "retries", 2)
    monkeypatch.setattr(synced.dag.get_task("guard"), "retry_delay", timedelta(0))
    for member_id in synced.linked_member_ids():
        synced.edit_member(member_id, job_title="Volunteer")
    puts_before = synced.emulator.admin.counters()["endpoints"].get(
        "POST /v3/activities/contacts_json_import", 0
    )

    refused = synced.sync(max_change_share=0.1)
    assert refused["state"] == "failed"
    assert refused["tasks"]["guard"] == "failed"
    assert refused["tries"]["guard"] == 1
    after = synced.emulator.admin.counters()["endpoints"].get("POST /v3/activities/contacts_json_import", 0)
    assert after == puts_before

    allowed = synced.sync(max_change_share=0.1, allow_mass_change=True)
    assert allowed["state"] == "success"


def test_deleted_contact_is_unlinked_and_its_member_untouched(synced: SyncWorld) -> None:
    member_id = _linked_member(synced)
    before = synced.member(member_id)
    synced.emulator.admin.delete_contact(synced.contact_of(member_id)["contact_id"])

    synced.sync()

    assert str(member_id) not in set(synced.links()["member_id"])
    after = synced.member(member_id)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


@pytest.mark.parametrize(
    "fault",
    [
        {"error_429_rate": 0.3},
        {"error_500_rate": 0.3},
        {"error_503_rate": 0.3},
        {"drop_rate": 0.2},
        {"truncate_rate": 0.2},
    ],
    ids=["throttled", "500", "503", "dropped", "truncated"],
)
def test_a_run_through_faults_converges(world: SyncWorld, fault: dict[str, float]) -> None:
    world.emulator.admin.set_faults(seed=3, **fault)
    run = world.sync()
    world.emulator.admin.clear_faults()
    assert run["state"] == "success", run["tasks"]
    assert world.emulator.admin.counters()["faults"], "the fault was never injected"
    assert world.sync()["counts"]["changes"] == 0


@pytest.mark.all_dialects
def test_crash_between_cc_and_member_writes_converges_without_writing_twice(synced: SyncWorld) -> None:
    member_id = _linked_member(synced)
    contact_id = synced.contact_of(member_id)["contact_id"]
    synced.edit_member(member_id, job_title="Secretary")
    synced.emulator.admin.edit_contact(contact_id, {"company_name": "Dockside Rowing"})

    # The worker dies after the CC write: the member write, the record and the rest never ran.
    crashed = synced.dag.test(
        run_conf=DEFAULT_CONF, mark_success_pattern=r"load\.member_database|load\.record|publish"
    )
    assert crashed.state == "success"
    assert synced.contact_of(member_id)["job_title"] == "Secretary"
    assert synced.member(member_id)["company"] != "Dockside Rowing"
    imports_before = synced.emulator.admin.counters()["endpoints"].get(
        "POST /v3/activities/contacts_json_import", 0
    )

    synced.sync()

    assert synced.member(member_id)["company"] == "Dockside Rowing"
    assert synced.contact_of(member_id)["job_title"] == "Secretary"
    imports_after = synced.emulator.admin.counters()["endpoints"].get(
        "POST /v3/activities/contacts_json_import", 0
    )
    assert imports_after == imports_before, "the job title was sent to CC a second time"
    assert synced.sync()["counts"]["changes"] == 0


@pytest.mark.all_dialects
def test_a_second_sync_waits_for_the_lease(synced: SyncWorld) -> None:
    from cc_sync.sync import steps
    from cc_sync.sync.resources import SyncResources

    resources = SyncResources(mapping_path=str(DEFAULT_MAPPING_PATH))
    assert steps.acquire_lease(resources, "backfill__2026-11-01")
    assert not steps.acquire_lease(resources, "scheduled__2026-11-02")
    assert steps.acquire_lease(resources, "backfill__2026-11-01"), "a retry of the holder takes it again"
    steps.release_lease(resources, "backfill__2026-11-01")
    assert steps.acquire_lease(resources, "scheduled__2026-11-02")
    steps.release_lease(resources, "scheduled__2026-11-02")


@pytest.mark.all_dialects
def test_a_cleared_and_rerun_load_writes_nothing_twice(
    synced: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The re-run reads the finished run's plan: kept (a finished run's XComs are deleted by default).
    monkeypatch.setenv("CC_SYNC_XCOM_RETENTION", "keep")
    from cc_sync.sync.loading import Journal, load_constant_contact, load_member_database
    from cc_sync.sync.resources import SyncResources
    from cc_sync.sync.xcom import plan_from_xcom

    member_id = _linked_member(synced)
    synced.edit_member(member_id, job_title="Archivist")
    synced.emulator.admin.edit_contact(
        synced.contact_of(member_id)["contact_id"], {"company_name": "Quay Band"}
    )
    run = synced.sync()
    plan = plan_from_xcom(_xcom(run["run_id"], "resolve"))
    assert len(plan.changes) > 0

    resources = SyncResources(mapping_path=str(DEFAULT_MAPPING_PATH))
    calls_before = synced.emulator.admin.counters()["api_calls"]
    changes_before = len(synced.bookkeeping.get_changes())
    journal = Journal(synced.bookkeeping, run["run_id"])
    cc = load_constant_contact(resources.cc, plan, main_list_name="Members", journal=journal)
    members = load_member_database(resources.members, plan, journal=journal)

    assert synced.emulator.admin.counters()["api_calls"] == calls_before
    assert members.counts["member_updates"] == len(plan.member_updates)
    assert cc.failed.empty
    assert len(synced.bookkeeping.get_changes()) == changes_before


def _xcom(run_id: str, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter(XComModel.run_id == run_id, XComModel.task_id == task_id, XComModel.key == "return_value")
            .one()
        )
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.deserialize_value(row)


def test_the_run_record_counts_every_api_call_of_the_run(world: SyncWorld) -> None:
    before = world.emulator.admin.counters()["api_calls"]
    run = world.sync()
    used = world.emulator.admin.counters()["api_calls"] - before
    # Every call but the token refresh (which goes to the authorization server) is the run's.
    assert run["api_calls"] == used
    assert run["counts"]["api_calls"] == used


@pytest.mark.all_dialects
def test_a_member_leaving_scope_leaves_the_main_list_only(synced: SyncWorld) -> None:
    member_id = _linked_member(synced)
    contact_id = synced.contact_of(member_id)["contact_id"]
    members_list = next(lst for lst in synced.emulator.admin.all_lists() if lst["name"] == "Members")
    assert contact_id in members_list["member_ids"]

    synced.edit_member(member_id, membership_status="lapsed")
    run = synced.sync()

    assert run["state"] == "success", run["tasks"]
    members_list = next(lst for lst in synced.emulator.admin.all_lists() if lst["name"] == "Members")
    assert contact_id not in members_list["member_ids"]
    contact = synced.emulator.admin.get_contact(contact_id)
    assert contact["email_address"]["permission_to_send"] != "unsubscribed"
    assert synced.emulator.admin.counters()["endpoints"].get("DELETE /v3/contacts/{contact_id}", 0) == 0
    changes = synced.bookkeeping.get_changes(run["run_id"])
    assert set(changes.loc[changes["field"] == "list_membership", "member_id"]) == {str(member_id)}
    assert synced.sync()["counts"]["changes"] == 0


@pytest.mark.parametrize("name_rows", [True, False], ids=["errors-name-the-row", "errors-bare-text"])
def test_a_row_cc_refuses_inside_an_import_is_sent_again_until_it_lands(
    synced: SyncWorld, name_rows: bool
) -> None:
    refused = _linked_member(synced)
    address = synced.contact_of(refused)["email_address"]["address"]
    accepted = next(
        m
        for m in synced.linked_member_ids()
        if not synced.member(m)["email_opt_out"]
        and synced.contact_of(m)["email_address"]["permission_to_send"] != "unsubscribed"
        and synced.contact_of(m)["email_address"]["address"] != address
    )
    synced.edit_member(refused, job_title="Archivist")
    synced.edit_member(accepted, job_title="Librarian")
    synced.emulator.admin.configure(refused_import_emails=[address], import_errors_name_rows=name_rows)

    run = synced.sync()

    assert run["state"] == "success", run["tasks"]
    assert synced.contact_of(accepted)["job_title"] == "Librarian"
    assert synced.contact_of(refused).get("job_title") != "Archivist"
    failed = synced.reviews("write_failed_cc")
    # Named, the refused row is a failure to review; bare text names nobody: its message is
    # reviewed without a member, and nobody in that request is taken as written.
    assert set(failed["member_id"].dropna().astype(str)) == ({str(refused)} if name_rows else set())
    assert len(failed) == 1

    synced.emulator.admin.configure(refused_import_emails=[])
    assert synced.sync()["state"] == "success"
    assert synced.contact_of(refused)["job_title"] == "Archivist"
    assert synced.contact_of(accepted)["job_title"] == "Librarian"
    assert synced.sync()["counts"]["changes"] == 0
