"""The send-list job's API budget and household consent, end to end (dag.test(), the emulator over
HTTP, SQLite, PostgreSQL and MariaDB).

- When the sync's directory (or the list read before the send) already knows every sent member's
  contact, nothing is read back after the import: the links, the counts and replace's removals come
  from what is known.
- When only a few are unknown, they are looked up by email (one call each) instead of reading
  the list.
- An email a member opted out of stays unsent for every member sharing it, even when that member
  is outside the segment or outside the sync's scope.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from cc_sync.send_list import send as send_list
from tests.send_list.conftest import SendWorld
from tests.send_list.test_send_list_dag import WITH_COMPANY, WITH_EMAIL, _in_scope, _list_emails, _sendable

pytestmark = pytest.mark.slow

IMPORT = "POST /v3/activities/contacts_json_import"


@pytest.fixture
def any_db_world(world_factory: Any, database_url: str) -> SendWorld:
    return world_factory(database_url)


def _sync(world: SendWorld) -> None:
    """One run of the scheduled sync DAG (it records every contact it reads in the directory)."""
    from airflow.dag_processing.dagbag import DagBag

    from include.airflow_env import PROJECT_ROOT
    from tests.dags.conftest import DEFAULT_CONF as SYNC_CONF

    sync_dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).get_dag("constant_contact_sync")
    assert sync_dag.test(run_conf=SYNC_CONF).state == "success"


def _directory(world: SendWorld) -> pd.DataFrame:
    with world.engine.connect() as conn:
        return pd.read_sql(sa.text("SELECT * FROM ccsync_cc_directory"), conn)


def _seed_directory_from_cc(world: SendWorld) -> None:
    """The directory as a sync that read every contact leaves it (no API call: the emulator's admin)."""
    contacts = world.emulator.admin.all_contacts()
    world.bookkeeping.upsert_directory(
        pd.DataFrame(
            {
                "contact_id": [c["contact_id"] for c in contacts],
                "email": [c["email_address"]["address"] for c in contacts],
                "first_name": [c.get("first_name") for c in contacts],
                "last_name": [c.get("last_name") for c in contacts],
                "opted_out": [c["email_address"]["permission_to_send"] == "unsubscribed" for c in contacts],
                "deleted": [bool(c.get("deleted_at")) for c in contacts],
                "updated_at": pd.to_datetime([c["updated_at"] for c in contacts], utc=True),
            }
        )
    )


def _calls_after_import(world: SendWorld, log_from: int) -> list[dict[str, Any]]:
    """The requests of this run after its (last) import request: everything the job read back."""
    log = world.emulator.admin.request_log()[log_from:]
    imports = [i for i, r in enumerate(log) if r["endpoint"] == IMPORT]
    assert imports, "the run made no import"
    return log[imports[-1] + 1 :]


def _list_reads(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["endpoint"] == "GET /v3/contacts" and "lists=" in (r["query"] or "")]


def _assert_linked_to_their_contacts(world: SendWorld, members: pd.DataFrame) -> None:
    links = world.links().set_index("member_id")["contact_id"]
    for member in members.itertuples():
        contact = world.contact_by_email(member.email)
        assert contact is not None
        assert links.get(str(member.member_id)) == contact["contact_id"], member.member_id


def test_known_contacts_are_not_read_back_after_the_import(any_db_world: SendWorld) -> None:
    world = any_db_world
    _sync(world)  # the scheduled sync puts the members in CC ...
    _sync(world)  # ... and its next run reads them back into the directory
    # The members the sync did not put in CC (a shared email it leaves to review) are left out of
    # the segment by a filter on their email: every member sent has a contact the directory knows.
    scope = _in_scope(world)
    sendable = _sendable(scope)
    unknown_keys = set(sendable["key"]) - set(_directory(world)["email_key"])
    assert len(unknown_keys) < 5
    unknown = scope["email"].str.strip().str.lower().isin(unknown_keys)
    not_unknown = [{"field": "email", "op": "not_in", "value": scope.loc[unknown, "email"].tolist() or ["-"]}]
    everyone = sendable.loc[~sendable["key"].isin(unknown_keys)]
    with_company = everyone.loc[everyone["company"].notna()]
    assert len(everyone) > 40

    log_from = len(world.emulator.admin.request_log())
    calls_from = world.emulator.admin.counters()["api_calls"]
    run = world.send(filter=[*WITH_EMAIL, *not_unknown], list="Known", mode="create_new")

    assert run["state"] == "success", run["tasks"]
    counts = run["counts"]
    after_import = _calls_after_import(world, log_from)
    # Only the import's polls follow the import: no read of the list, no lookup.
    assert {r["endpoint"] for r in after_import} <= {"GET /v3/activities/{activity_id}"}
    assert _list_reads(after_import) == []
    assert counts["list_read_after_import"] == 0
    assert counts["ids_known_before_import"] == counts["sent"] == len(everyone)
    # The figure the run reports is every call it made.
    assert counts["api_calls"] == world.emulator.admin.counters()["api_calls"] - calls_from
    assert _list_emails(world, "Known") == set(everyone["key"])
    assert counts["added"] == counts["updated"] == len(everyone)
    assert counts["created"] == 0
    # The sync linked them already; the links hold the contact with each member's email.
    assert counts["already_linked"] + counts["linked"] + counts["link_kept"] == len(everyone)
    _assert_linked_to_their_contacts(world, everyone)

    # Replace with the smaller segment, still without reading back: exactly the others leave.
    log_from = len(world.emulator.admin.request_log())
    replaced = world.send(segment=WITH_COMPANY, filter=not_unknown, list="Known", mode="replace")

    assert replaced["state"] == "success", replaced["tasks"]
    assert _list_reads(_calls_after_import(world, log_from)) == []
    assert replaced["counts"]["list_read_after_import"] == 0
    assert _list_emails(world, "Known") == set(with_company["key"])
    assert replaced["counts"]["removed"] == len(set(everyone["key"]) - set(with_company["key"])) > 0
    assert replaced["counts"]["added"] == 0
    for key in set(everyone["key"]) - set(with_company["key"]):
        assert world.contact_by_email(key)["email_address"]["permission_to_send"] == "implicit"
    assert world.emulator.admin.counters()["resubscribes"] == 0


def test_a_contact_whose_email_moved_is_not_taken_for_its_old_email(world: SendWorld) -> None:
    everyone = _sendable(_in_scope(world))
    ids = world.emulator.admin.seed_contacts(
        contacts=[
            {"email_address": {"address": e, "permission_to_send": "implicit"}, "last_name": "Seeded"}
            for e in everyone["email"].str.strip()
        ]
    )
    _seed_directory_from_cc(world)
    moved = everyone.iloc[0]
    world.emulator.admin.edit_contact(ids[0], {"email_address": {"address": "moved.away@example.net"}})

    run = world.send(filter=WITH_EMAIL, list="Moved", mode="create_new")

    assert run["state"] == "success", run["tasks"]
    contact = world.contact_by_email(moved["email"])
    assert contact is not None
    assert contact["contact_id"] != ids[0]
    _assert_linked_to_their_contacts(world, everyone)
    assert _list_emails(world, "Moved") == set(everyone["key"])
    assert run["counts"]["created"] == 1


def test_a_few_unknown_members_are_looked_up_by_email(
    any_db_world: SendWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = any_db_world
    # Pages of 10 contacts: a list read of the ~60 sent costs 7 calls, so 3 lookups are cheaper.
    monkeypatch.setattr(send_list, "PAGE_SIZE", 10)
    everyone = _sendable(_in_scope(world))
    unknown = everyone.iloc[:3]
    world.emulator.admin.seed_contacts(
        contacts=[
            {
                "email_address": {"address": e, "permission_to_send": "implicit"},
                "last_name": "Seeded",
                "created_at": "2024-01-02T03:04:05Z",
                "updated_at": "2024-01-02T03:04:05Z",
            }
            for e in everyone["email"].iloc[3:].str.strip()
        ]
    )
    _seed_directory_from_cc(world)
    plan = send_list.plan_send(
        send_list_resources(), segment=None, filter=WITH_EMAIL, list_ref="Few", mode="create_new"
    )
    assert send_list.list_read_pages(plan) > len(unknown)

    log_from = len(world.emulator.admin.request_log())
    run = world.send(filter=WITH_EMAIL, list="Few", mode="create_new")

    assert run["state"] == "success", run["tasks"]
    counts = run["counts"]
    after_import = _calls_after_import(world, log_from)
    assert _list_reads(after_import) == []
    lookups = [r for r in after_import if r["endpoint"] == "GET /v3/contacts"]
    assert len(lookups) == len(unknown) == counts["lookups_after_import"]
    assert all("email=" in r["query"] for r in lookups)
    assert counts["list_read_after_import"] == 0
    assert counts["created"] == len(unknown)
    assert counts["updated"] == len(everyone) - len(unknown)
    assert counts["added"] == counts["linked"] == len(everyone)
    assert _list_emails(world, "Few") == set(everyone["key"])
    _assert_linked_to_their_contacts(world, everyone)
    # The contacts looked up are in the directory now.
    assert set(unknown["key"]) <= set(_directory(world)["email_key"])


def test_a_refusal_still_reads_the_list_and_explains_it(world: SendWorld) -> None:
    everyone = _sendable(_in_scope(world))
    ids = world.emulator.admin.seed_contacts(
        contacts=[
            {"email_address": {"address": e, "permission_to_send": "implicit"}}
            for e in everyone["email"].str.strip()
        ]
    )
    _seed_directory_from_cc(world)
    # Unsubscribed after the directory recorded it: only the import finds out.
    world.emulator.admin.opt_out(ids[0], source="Contact", reason="no more")

    run = world.send(filter=WITH_EMAIL, list="Refused", mode="create_new")

    assert run["state"] == "success", run["tasks"]
    assert run["counts"]["cannot_add_to_list"] == 1
    assert run["counts"]["list_read_after_import"] == 1
    assert run["counts"]["skipped_unsubscribed_in_cc"] == 1
    assert _list_emails(world, "Refused") == set(everyone["key"].iloc[1:])
    assert world.emulator.admin.counters()["resubscribes"] == 0


def send_list_resources() -> Any:
    from cc_sync.sync.resources import SyncResources

    return SyncResources()


# ---- consent: an opted-out email stays unsent, whoever else shares it ----------------------------


@pytest.mark.all_dialects
def test_an_opt_out_outside_the_segment_holds_for_a_shared_email(any_db_world: SendWorld) -> None:
    world = any_db_world
    with_company = _sendable(_in_scope(world, "company IS NOT NULL"))
    in_scope_b, lapsed_b = with_company.iloc[0], with_company.iloc[1]
    outside = _in_scope(world, "company IS NULL")
    others = world.members("membership_status <> 'active' AND deleted_at IS NULL")
    assert len(outside)
    assert len(others)
    in_scope_a, lapsed_a = outside.iloc[0], others.iloc[0]
    with world.engine.begin() as conn:
        for a, b in ((in_scope_a, in_scope_b), (lapsed_a, lapsed_b)):
            conn.execute(
                sa.text("UPDATE members SET email = :e, email_opt_out = :t WHERE member_id = :m"),
                # Another spelling of the same address: normalised, they are one.
                {"e": "  " + b["email"].strip().upper() + " ", "t": True, "m": int(a["member_id"])},
            )

    run = world.send(segment=WITH_COMPANY, list="Household", mode="create_new")

    assert run["state"] == "success", run["tasks"]
    sent = _list_emails(world, "Household")
    assert sent == set(with_company["key"]) - {in_scope_b["key"], lapsed_b["key"]}
    for b in (in_scope_b, lapsed_b):
        assert world.contact_by_email(b["email"]) is None
    plan = send_list.plan_send(
        send_list_resources(), segment=WITH_COMPANY, filter=None, list_ref="Household", mode="update"
    )
    reasons = plan.skipped.set_index("member_id")
    for a, b in ((in_scope_a, in_scope_b), (lapsed_a, lapsed_b)):
        row = reasons.loc[str(b["member_id"])]
        assert row["category"] == "opted_out"
        assert f"member {a['member_id']} (not in this segment)" in row["reason"]
        assert b["email"].strip().lower() not in row["reason"]
    assert run["counts"]["skipped_opted_out"] >= 2
