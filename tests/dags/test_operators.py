"""The operators of cc_sync.operators on their own: their template fields render, they read and
write through the real hooks (the emulator over HTTP, a SQLite member database), and what they
return and push as XCom has the shape the DAG's downstream tasks read.

Each test starts from the ``synced`` world (tests/dags/conftest.py): linked people on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from cc_sync.fields import CONTACT_ID, MEMBER_ID
from cc_sync.operators import ConstantContactExtractOperator, MemberDatabaseExtractOperator
from cc_sync.operators.constant_contact import API_CALLS_KEY, ConstantContactLoadOperator
from cc_sync.operators.member_db import MemberDatabaseLoadOperator
from cc_sync.sync.resources import DEFAULT_MAPPING_PATH
from cc_sync.timeutil import utcnow
from tests.dags.conftest import DEFAULT_CONF, SyncWorld
from tests.dags.test_sync_dag import _linked_member, _xcom

pytestmark = pytest.mark.slow
LOAD_XCOM_KEYS = {"written_member_ids", "created_links", "failed", "counts", "unconfirmed"}


@dataclass
class RecordingTaskInstance:
    """The one part of a task instance the operators use: ``xcom_push``."""

    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _context(**extra: Any) -> dict[str, Any]:
    return {"ti": RecordingTaskInstance(), "run_id": "manual__operators", **extra}


def test_template_fields_render_from_the_context() -> None:
    start = datetime(2026, 11, 30, 10, tzinfo=UTC)
    context = {
        "data_interval_start": start,
        "params": {
            "full": "true",
            "lists": ["list-1"],
            "segment": "runners",
            "mapping": str(DEFAULT_MAPPING_PATH),
        },
    }
    contacts = ConstantContactExtractOperator(
        task_id="contacts",
        conn_id="{{ 'constant_contact_' ~ 'default' }}",
        updated_after="{{ data_interval_start.isoformat() }}",
        full="{{ params.full }}",
        lists=["{{ params.lists[0] }}"],
    )
    members = MemberDatabaseExtractOperator(
        task_id="members",
        member_db_conn_id="{{ 'member_db_' ~ 'default' }}",
        mapping_path="{{ params.mapping }}",
        since="{{ data_interval_start.isoformat() }}",
        full="{{ params.full }}",
        segment="{{ params.segment }}",
    )
    loads = [
        ConstantContactLoadOperator(
            task_id="cc_load", plan="{{ params.segment }}", journal_key="{{ run_id }}"
        ),
        MemberDatabaseLoadOperator(
            task_id="db_load", plan="{{ params.segment }}", journal_key="{{ run_id }}"
        ),
    ]

    contacts.render_template_fields(context)
    members.render_template_fields(context)
    for load in loads:
        load.render_template_fields({**context, "run_id": "scheduled__x"})

    assert contacts.conn_id == "constant_contact_default"
    assert contacts.updated_after == start.isoformat()
    assert contacts.full == "true"
    assert contacts.lists == ["list-1"]
    assert members.member_db_conn_id == "member_db_default"
    assert members.mapping_path == str(DEFAULT_MAPPING_PATH)
    assert (members.since, members.full, members.segment) == (start.isoformat(), "true", "runners")
    # The plan (the run's people) is stored by Airflow as its shape only, and is whole again when
    # the task runs (cc_sync.withheld).
    assert [(str(load.plan), load.journal_key) for load in loads] == [
        ("<text: 7 characters>", "scheduled__x")
    ] * 2
    for load in loads:
        load.pre_execute(context)
    assert [load.plan for load in loads] == ["runners"] * 2
    # Every templated name is a real attribute (a typo in template_fields fails at render time).
    for op in (contacts, members, *loads):
        assert all(hasattr(op, name) for name in op.template_fields)


def test_contact_extract_returns_one_row_per_contact_and_pushes_its_call_count(synced: SyncWorld) -> None:
    every = synced.emulator.admin.all_contacts()
    before = synced.emulator.admin.counters()["api_calls"]
    context = _context()

    frame = ConstantContactExtractOperator(task_id="contacts", full="True").execute(context)

    assert isinstance(frame, pd.DataFrame)
    assert frame[CONTACT_ID].is_unique
    assert set(frame[CONTACT_ID]) == {c["contact_id"] for c in every}
    calls = synced.emulator.admin.counters()["api_calls"] - before
    assert context["ti"].pushed == {API_CALLS_KEY: calls}
    assert calls > 0

    # Incremental: only what changed since then (an edit and an opt-out, which updated_after misses).
    since = utcnow() - timedelta(seconds=1)
    edited = synced.contact_of(_linked_member(synced))["contact_id"]
    opted_out = next(
        c["contact_id"]
        for c in every
        if c["contact_id"] != edited and c["email_address"]["permission_to_send"] != "unsubscribed"
    )
    synced.emulator.admin.edit_contact(edited, {"job_title": "Verger"})
    synced.emulator.admin.opt_out(opted_out)
    changed = ConstantContactExtractOperator(task_id="contacts", updated_after=since.isoformat()).execute(
        _context()
    )
    assert set(changed[CONTACT_ID]) == {edited, opted_out}


def test_member_extract_reads_the_scope_or_what_changed(synced: SyncWorld) -> None:
    in_scope = synced.members("membership_status = 'active' AND deleted_at IS NULL")

    frame = MemberDatabaseExtractOperator(task_id="members", full=True).execute(_context())

    assert isinstance(frame, pd.DataFrame)
    assert sorted(frame[MEMBER_ID].astype(int)) == sorted(in_scope["member_id"])

    since = utcnow() - timedelta(seconds=1)
    member_id = _linked_member(synced)
    synced.edit_member(member_id, job_title="Verger")
    changed = MemberDatabaseExtractOperator(task_id="members", since=since.isoformat()).execute(_context())
    assert changed[MEMBER_ID].astype(int).tolist() == [member_id]


def test_load_operators_write_the_plan_and_return_the_load_xcom(
    synced: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operators below read the finished run's plan: kept (deleted by default once it finished).
    monkeypatch.setenv("CC_SYNC_XCOM_RETENTION", "keep")
    member_id = _linked_member(synced)
    contact_id = synced.contact_of(member_id)["contact_id"]
    synced.edit_member(member_id, job_title="Sexton")
    synced.emulator.admin.edit_contact(contact_id, {"company_name": "Bell Ringers"})
    # The DAG plans the run; its load group is marked done without running, so the operators below
    # are the only writers of this plan.
    planned = synced.dag.test(run_conf=DEFAULT_CONF, mark_success_pattern=r"load\..*|publish")
    plan = _xcom(planned.run_id, "resolve")
    assert synced.contact_of(member_id).get("job_title") != "Sexton"
    context = _context(run_id=planned.run_id)
    before = synced.emulator.admin.counters()["api_calls"]

    cc = ConstantContactLoadOperator(task_id="cc", plan=plan).execute(context)
    members = MemberDatabaseLoadOperator(task_id="db", plan=plan).execute(context)

    assert synced.contact_of(member_id)["job_title"] == "Sexton"
    assert synced.member(member_id)["company"] == "Bell Ringers"
    for result in (cc, members):
        assert set(result) == LOAD_XCOM_KEYS
        assert all(isinstance(result[k], pd.DataFrame) for k in ("created_links", "failed", "unconfirmed"))
        assert all(isinstance(v, int) for v in result["counts"].values())
    assert cc["failed"].empty
    assert str(member_id) in {str(m) for m in members["written_member_ids"]}
    assert members["counts"]["member_updates"] == 1
    assert context["ti"].pushed == {API_CALLS_KEY: synced.emulator.admin.counters()["api_calls"] - before}
