"""The send-list DAG end to end: dag.test(), the emulator over HTTP, real member databases.

Each test is a scenario of issue 5: each mode, replace while a contact on the list has opted out,
a segment with invalid emails, a contact already in CC under another name, and a dry run. The three
modes (create new, replace, update) run on SQLite, PostgreSQL and MariaDB (``all_dialects``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from cc_sync.member_db.mapping import load_mapping
from cc_sync.send_list import send as send_list
from cc_sync.sync.resources import DEFAULT_MAPPING_PATH, SyncResources
from tests.send_list.conftest import SendWorld

pytestmark = pytest.mark.slow

WITH_EMAIL = [{"field": "email", "op": "not_null"}]
WITH_COMPANY = "everyone_with_a_company"  # a named segment of the demo mapping


def _sendable(members: pd.DataFrame) -> pd.DataFrame:
    """Members the job must send: not opted out, a valid email, the first of each email."""
    keys = members["email"].str.strip().str.lower()
    opted_out = members["email_opt_out"].astype(bool)
    ok = ~opted_out & members["email"].notna() & ~keys.isin(set(keys[opted_out]))
    ok &= keys.str.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+").fillna(False)
    chosen = members.loc[ok].assign(key=keys)
    return chosen.drop_duplicates("key")


def _invalid(members: pd.DataFrame) -> pd.DataFrame:
    """Members the job must report as invalid: no email, or one that is not an address (opted-out
    people are reported as opted out whatever their email)."""
    keys = members["email"].str.strip().str.lower()
    opted_out = members["email_opt_out"].astype(bool) | keys.isin(
        set(keys[members["email_opt_out"].astype(bool)])
    )
    malformed = ~keys.str.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+").fillna(False).astype(bool)
    return members.loc[~opted_out & (members["email"].isna() | malformed)]


def _in_scope(world: SendWorld, extra: str = "1 = 1") -> pd.DataFrame:
    return world.members(
        f"membership_status = 'active' AND deleted_at IS NULL AND email IS NOT NULL AND {extra}"
    )


def _list_emails(world: SendWorld, name: str) -> set[str]:
    return {c["email_address"]["address"].lower() for c in world.list_contacts(name)}


@pytest.fixture
def any_db_world(world_factory: Any, database_url: str) -> SendWorld:
    return world_factory(database_url)


@pytest.mark.all_dialects
def test_create_new_sends_links_and_reports(any_db_world: SendWorld) -> None:
    world = any_db_world
    run = world.send(filter=WITH_EMAIL, list="Everyone", mode="create_new")

    assert run["state"] == "success", run["tasks"]
    expected = _sendable(_in_scope(world))
    assert _list_emails(world, "Everyone") == set(expected["key"])
    counts = run["counts"]
    assert counts["sent"] == counts["added"] == counts["created"] == counts["linked"] == len(expected)
    assert counts["import_requests"] == 1
    # Opted-out members are reported, and never reach Constant Contact.
    scope = _in_scope(world)
    opted_out = scope.loc[scope["email_opt_out"].astype(bool)]
    assert counts["skipped_opted_out"] >= len(opted_out) > 0
    for email in opted_out["email"]:
        assert world.contact_by_email(email) is None
    # Links, by rule send_list, from each sent member to the contact holding their email.
    links = world.links()
    assert set(links["rule"]) == {"send_list"}
    for member in expected.head(5).itertuples():
        contact = world.contact_by_email(member.email)
        assert contact is not None
        assert links.loc[links["member_id"] == str(member.member_id), "contact_id"].tolist() == [
            contact["contact_id"]
        ]
        assert contact.get("last_name") == member.last_name
    assert world.emulator.admin.counters()["sign_up_form_calls"] == 0

    # A second create_new with the same name fails clearly and writes nothing.
    contacts_before = len(world.emulator.admin.all_contacts())
    again = world.send(filter=WITH_EMAIL, list="Everyone", mode="create_new")
    assert again["state"] == "failed"
    assert again["tasks"]["plan"] == "failed"
    assert again["status"] == "failed"
    assert len([lst for lst in world.emulator.admin.all_lists() if lst["name"] == "Everyone"]) == 1
    assert len(world.emulator.admin.all_contacts()) == contacts_before


@pytest.mark.all_dialects
def test_replace_removes_only_those_left_out_and_keeps_an_opt_out(any_db_world: SendWorld) -> None:
    world = any_db_world
    assert world.send(filter=WITH_EMAIL, list="Newsletter", mode="create_new")["state"] == "success"
    everyone = _sendable(_in_scope(world))
    with_company = set(_sendable(_in_scope(world, "company IS NOT NULL"))["key"])
    without_company = set(everyone["key"]) - with_company
    assert with_company
    assert without_company
    # Someone on the list, still in the new segment, opts out in Constant Contact.
    quitter = world.contact_by_email(sorted(with_company)[0])
    world.emulator.admin.opt_out(quitter["contact_id"], source="Contact", reason="too many emails")

    run = world.send(segment=WITH_COMPANY, list="Newsletter", mode="replace")

    assert run["state"] == "success", run["tasks"]
    assert _list_emails(world, "Newsletter") == with_company - {sorted(with_company)[0]}
    assert run["counts"]["removed"] == len(without_company)
    assert run["counts"]["skipped_unsubscribed_in_cc"] == 1
    # Taken off the list, not unsubscribed: they remain contacts as they were.
    for key in without_company:
        contact = world.contact_by_email(key)
        assert contact["email_address"]["permission_to_send"] == "implicit"
    assert (
        world.contact_by_email(sorted(with_company)[0])["email_address"]["permission_to_send"]
        == "unsubscribed"
    )
    assert world.emulator.admin.counters()["resubscribes"] == 0

    # The next replace knows the opt-out (the directory) and does not even send it; nothing moves.
    again = world.send(segment=WITH_COMPANY, list="Newsletter", mode="replace")
    assert again["state"] == "success", again["tasks"]
    assert again["counts"]["skipped_unsubscribed_in_cc"] == 1
    assert again["counts"]["sent"] == len(with_company) - 1
    assert again["counts"]["added"] == again["counts"]["removed"] == again["counts"]["linked"] == 0
    assert _list_emails(world, "Newsletter") == with_company - {sorted(with_company)[0]}
    assert world.emulator.admin.counters()["resubscribes"] == 0


@pytest.mark.all_dialects
def test_update_adds_and_never_removes(any_db_world: SendWorld) -> None:
    world = any_db_world
    first = world.send(segment=WITH_COMPANY, list="Volunteers", mode="update")  # a new name: created
    assert first["state"] == "success", first["tasks"]
    assert first["counts"]["list_created"] == 1
    with_company = set(_sendable(_in_scope(world, "company IS NOT NULL"))["key"])
    assert _list_emails(world, "Volunteers") == with_company

    run = world.send(filter=[{"field": "company_name", "op": "is_null"}, *WITH_EMAIL], list="Volunteers",
                     mode="update")  # fmt: skip

    assert run["state"] == "success", run["tasks"]
    without_company = set(_sendable(_in_scope(world, "company IS NULL"))["key"])
    assert _list_emails(world, "Volunteers") == with_company | without_company
    assert run["counts"]["list_created"] == 0
    assert run["counts"]["added"] == len(without_company - with_company)  # a household may be on it
    assert "removed" not in run["counts"]


def test_update_by_list_id(world: SendWorld) -> None:
    list_id = world.emulator.admin.create_list("Choir")
    run = world.send(segment=WITH_COMPANY, list=list_id, mode="update")
    assert run["state"] == "success", run["tasks"]
    assert run["counts"]["list_created"] == 0
    assert _list_emails(world, "Choir") == set(_sendable(_in_scope(world, "company IS NOT NULL"))["key"])


def test_invalid_and_missing_emails_are_reported_and_the_rest_sent(world: SendWorld) -> None:
    active = _sendable(_in_scope(world))["member_id"].tolist()
    broken = {active[0]: "not-an-email", active[1]: None, active[2]: "two@@example.org"}
    with world.engine.begin() as conn:
        for member_id, email in broken.items():
            conn.execute(
                sa.text("UPDATE members SET email = :e WHERE member_id = :m"), {"e": email, "m": member_id}
            )
    segment = [{"field": "last_name", "op": "not_null"}]

    plan = send_list.plan_send(
        SyncResources(), segment=None, filter=segment, list_ref="All", mode="create_new"
    )
    reasons = plan.skipped.set_index("member_id")
    for member_id in broken:
        assert reasons.loc[str(member_id), "category"] == "invalid"
    assert reasons.loc[str(active[1]), "reason"] == "email: missing email"
    assert reasons.loc[str(active[0]), "reason"].startswith("email: invalid email")
    assert "not-an-email" not in " ".join(reasons["reason"])  # the address itself is never repeated

    run = world.send(filter=segment, list="All", mode="create_new")
    assert run["state"] == "success", run["tasks"]
    # The counts against this file's own oracle, not against plan_send (which the DAG itself calls).
    scope = world.members("membership_status = 'active' AND deleted_at IS NULL AND last_name IS NOT NULL")
    expected = _sendable(scope)
    assert run["counts"]["sent"] == len(expected) > 0
    assert _list_emails(world, "All") == set(expected["key"])
    assert run["counts"]["skipped_invalid"] == len(_invalid(scope)) >= len(broken)
    # Each invalid row is a review item a person can work through; a rerun queues none twice.
    reviews = world.reviews("send_list_invalid")
    assert {str(m) for m in broken} <= set(reviews["member_id"])
    assert "not-an-email" not in " ".join(reviews["detail"].astype(str))
    assert world.send(filter=segment, list="All", mode="update")["state"] == "success"
    assert len(world.reviews("send_list_invalid")) == len(reviews)


def test_a_row_constant_contact_refuses_is_reported_and_the_rest_sent(world: SendWorld) -> None:
    members = _sendable(_in_scope(world, "company IS NOT NULL"))
    refused, accepted = members.iloc[0], members.iloc[1]
    world.emulator.admin.configure(refused_import_emails=[refused["email"]])
    try:
        run = world.send(segment=WITH_COMPANY, list="Companies", mode="create_new")
    finally:
        world.emulator.admin.configure(refused_import_emails=[])

    assert run["state"] == "success", run["tasks"]
    assert run["counts"]["skipped_refused_by_cc"] == 1
    on_list = _list_emails(world, "Companies")
    assert refused["key"] not in on_list
    assert accepted["key"] in on_list
    assert str(refused["member_id"]) not in set(world.links()["member_id"])
    (item,) = world.reviews("send_list_refused_by_cc").itertuples()
    assert item.member_id == str(refused["member_id"])
    assert "refused" in item.detail

    # Once CC takes it, the same send puts it on the list; the review item waits for a person.
    assert world.send(segment=WITH_COMPANY, list="Companies", mode="update")["state"] == "success"
    assert refused["key"] in _list_emails(world, "Companies")
    assert str(refused["member_id"]) in set(world.links()["member_id"])


def test_existing_contact_under_another_name_is_linked_and_renamed(world: SendWorld) -> None:
    member = _sendable(_in_scope(world, "company IS NOT NULL")).iloc[0]
    [contact_id] = world.emulator.admin.seed_contacts(
        contacts=[
            {
                "email_address": {"address": member["email"].upper(), "permission_to_send": "implicit"},
                "first_name": "Annabelle",
                "last_name": "Elsewhere",
            }
        ]
    )

    run = world.send(segment=WITH_COMPANY, list="Renamed", mode="create_new")

    assert run["state"] == "success", run["tasks"]
    contact = world.emulator.admin.get_contact(contact_id)
    assert (contact["first_name"], contact["last_name"]) == (member["first_name"], member["last_name"])
    assert contact.get("company_name") == member["company"]
    assert contact_id in [c["contact_id"] for c in world.list_contacts("Renamed")]
    links = world.links()
    row = links.loc[links["member_id"] == str(member["member_id"])]
    assert row["contact_id"].tolist() == [contact_id]
    assert row["rule"].tolist() == ["send_list"]
    assert run["counts"]["updated"] == 1
    assert run["counts"]["created"] == run["counts"]["sent"] - 1
    assert sum(1 for c in world.emulator.admin.all_contacts() if c["email_address"]["address"].lower()
               == member["email"].strip().lower()) == 1  # fmt: skip


def test_dry_run_writes_nothing(world: SendWorld) -> None:
    existing = world.emulator.admin.create_list("Existing")
    world.emulator.admin.seed_contacts(
        contacts=[{"email_address": {"address": "keep.me@example.net", "permission_to_send": "implicit"}}],
        list_ids=[existing],
    )
    before = (world.emulator.admin.all_contacts(), world.emulator.admin.all_lists())
    calls = world.emulator.admin.counters()["endpoints"]

    run = world.send(filter=WITH_EMAIL, list="Existing", mode="replace", dry_run=True)

    assert run["state"] == "success", run["tasks"]
    assert run["tasks"]["send"] == "skipped"
    assert run["status"] == "dry_run"
    assert run["counts"]["to_send"] == len(_sendable(_in_scope(world))) > 0
    assert run["counts"]["to_remove"] == 1
    assert (world.emulator.admin.all_contacts(), world.emulator.admin.all_lists()) == before
    writes = {
        k: v for k, v in world.emulator.admin.counters()["endpoints"].items() if not k.startswith("GET")
    }
    assert writes == {k: v for k, v in calls.items() if not k.startswith("GET")}
    assert world.links().empty
    with world.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM ccsync_cc_directory")).scalar() == 0


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"filter": WITH_EMAIL, "list": ""}, "name the list"),
        ({"filter": [], "list": "X"}, "choose a segment"),
        ({"segment": "nobody", "list": "X"}, "unknown segment"),
    ],
)
def test_bad_choices_fail_before_any_write(
    world: SendWorld, conf: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(send_list.SendListError, match=message):
        send_list.plan_send(SyncResources(), segment=conf.get("segment"), filter=conf.get("filter"),
                            list_ref=conf["list"], mode="update")  # fmt: skip
    if conf.get("segment") == "nobody":
        from airflow.sdk.exceptions import ParamValidationError

        # The trigger form offers the mapping's segments only: an unknown one is refused there.
        with pytest.raises(ParamValidationError, match="segment"):
            world.send(**conf)
        return
    # A choice the job cannot carry out fails at once: retrying would only fail again, later.
    monkeypatch.setattr(world.dag.get_task("plan"), "retries", 2)
    monkeypatch.setattr(world.dag.get_task("plan"), "retry_delay", timedelta(0))
    run = world.send(**conf)
    assert run["state"] == "failed"
    assert run["tasks"]["plan"] == "failed"
    assert run["tries"]["plan"] == 1
    assert world.emulator.admin.all_lists() == []


# ---- the filter: declarative conditions on mapped fields, never SQL ---------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"field": "email; DROP TABLE members", "op": "eq", "value": "x"}], "not a mapped field"),
        ([{"field": "city", "op": "like", "value": "%"}], "unknown op"),
        ([{"field": "city", "op": "eq"}], "needs one value"),
        ([{"field": "city", "op": "in", "value": []}], "non-empty list"),
        ([{"field": "city", "op": "eq", "value": "x", "sql": "1=1"}], "unknown key"),
        ([{"field": "birthday_month", "op": "eq", "value": 5}], "not a mapped field"),
        ("city = 'Boston'", "must be a list"),
    ],
)
def test_filter_refuses_anything_but_mapped_conditions(raw: Any, message: str) -> None:
    with pytest.raises(send_list.SendListError, match=message):
        send_list.filter_conditions(raw, load_mapping(DEFAULT_MAPPING_PATH))


def test_filter_conditions_use_the_mapped_columns() -> None:
    mapping = load_mapping(DEFAULT_MAPPING_PATH)
    conditions = send_list.filter_conditions(
        [
            {"field": "company_name", "op": "not_null", "value": "ignored"},
            {"field": "state", "op": "in", "value": ["NY"]},
        ],
        mapping,
    )
    assert [(c.column, c.op.value, c.value) for c in conditions] == [
        ("company", "not_null", None),
        ("state_code", "in", ["NY"]),
    ]
    combined = send_list.selection_mapping(mapping, "runners", conditions)
    assert len(combined.segments[send_list.FORM_SEGMENT]) == 3
    assert combined.segments["runners"] == mapping.segments["runners"]


def test_the_scheduled_sync_takes_the_linked_people_over(world: SendWorld) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from include.airflow_env import PROJECT_ROOT
    from tests.dags.conftest import DEFAULT_CONF as SYNC_CONF

    sent = world.send(segment=WITH_COMPANY, list="Handover", mode="create_new")
    assert sent["state"] == "success", sent["tasks"]
    links_after_send = world.links().set_index("member_id")["contact_id"]

    sync_dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).get_dag("constant_contact_sync")
    synced = sync_dag.test(run_conf=SYNC_CONF)

    assert synced.state == "success"
    links = world.links().set_index("member_id")
    # The send's links stand (the sync did not relink them) and no sent email got a second contact.
    assert (links.loc[links_after_send.index, "contact_id"] == links_after_send).all()
    assert set(links.loc[links_after_send.index, "rule"]) == {"send_list"}
    emails = [c["email_address"]["address"].lower() for c in world.emulator.admin.all_contacts()]
    assert len(emails) == len(set(emails))
    assert world.emulator.admin.counters()["resubscribes"] == 0
