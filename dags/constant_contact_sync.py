"""
### Two-way sync: member database ⇄ Constant Contact

**extract → compare → link → resolve → load**, field by field against the base (the values both
sides agreed on after the last successful sync):

- **extract** reads both sides: everything on the first run and on a full reconcile, otherwise what
  changed since the watermarks (CC by `updated_after`, `optout_after` and deletions; members by
  their last-modified column, or by hash).
- **compare** lists, per linked person and field, which side changed what.
- **link** matches new people by first name + last name + email; anything less certain (Anne vs
  Annabelle, a household email) goes to the review queue, never to a link.
- **resolve** merges: one side changed → it wins; both → the later change (or the field's owner);
  a blank never wipes a value; an opt-out on either side opts out both, and is never undone.
- **load** writes CC in bulk (a PUT only for email changes and unsubscribes), the members in
  batched transactions with an optimistic check, then the base, the change log and the watermarks.

A **dry run** stops after the plan and writes nothing. The **guard rail** stops, before any write, a
run that would unsubscribe, unlink or change more than `max_change_share` of the linked people.
Runs never overlap: the first task waits for the sync lease, every task renews it while it works,
the last one releases it. A run killed before releasing it holds it for minutes, not hours: the
lease expires 10 minutes after its last renewal and the next run takes it over.

Configure the member table in `include/config/member_mapping.yaml`; connections
`constant_contact_default` and `member_db_default`.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, TaskGroup, task, teardown
from airflow.sdk.exceptions import AirflowSkipException

from cc_sync.operators.constant_contact import (
    API_CALLS_KEY,
    ConstantContactExtractOperator,
    ConstantContactLoadOperator,
)
from cc_sync.operators.member_db import MemberDatabaseExtractOperator, MemberDatabaseLoadOperator
from cc_sync.sync import lease, steps
from cc_sync.sync.resources import DEFAULT_MAPPING_PATH, SyncResources
from cc_sync.timeutil import utcnow

CC_CONN_ID = "constant_contact_default"
MEMBER_DB_CONN_ID = "member_db_default"
MAPPING_PATH = os.environ.get("CC_SYNC_MAPPING", str(DEFAULT_MAPPING_PATH))
CONTACTS_SYNCED = Asset(name="constant_contact_contacts_synced", uri="cc-sync://constant_contact/contacts")


def _window(key: str) -> str:
    """A value of the open_window task's result, rendered natively (None stays None)."""
    return "{{ ti.xcom_pull(task_ids='open_window')['" + key + "'] }}"


def _resources() -> SyncResources:
    return SyncResources(CC_CONN_ID, MEMBER_DB_CONN_ID, MAPPING_PATH)


with DAG(
    dag_id="constant_contact_sync",
    description="Two-way sync of the member database and Constant Contact",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(os.environ.get("CC_SYNC_SCHEDULE", "0 3 * * *"), timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={
        "retries": int(os.environ.get("CC_SYNC_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=2),
    },
    tags=["constant_contact", "member_db", "sync"],
    params={
        "dry_run": Param(
            False, type="boolean", title="Dry run", description="Plan and report; write nothing."
        ),
        "full_reconcile": Param(
            False,
            type="boolean",
            title="Full reconcile",
            description="Read both sides whole, not only changes.",
        ),
        "allow_mass_change": Param(
            False,
            type="boolean",
            title="Allow a mass change",
            description="Let this run change more than the guard rail's share of linked people.",
        ),
        "max_change_share": Param(
            0.25,
            type="number",
            minimum=0,
            maximum=1,
            title="Guard rail: largest share of linked people changed",
        ),
        "reset_watermark_to": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Reset the watermark to",
            description="Read changes since this time (UTC) instead of since the last successful sync.",
        ),
    },
) as dag:

    @task.sensor(
        poke_interval=lease.POKE_INTERVAL.total_seconds(),
        timeout=lease.WAIT_TIMEOUT.total_seconds(),
        mode="reschedule",
    )
    def wait_for_lease(run_id: str | None = None) -> bool:
        """Wait until no other sync (scheduled, manual or backfill) is running, then hold the lease."""
        return lease.take(_resources(), run_id)

    @task
    def open_window(params: dict, run_id: str | None = None) -> dict:
        """Decide what to read: the initial sync, a full reconcile, or changes since the watermarks."""
        resources = _resources()
        with lease.kept(resources.bookkeeping, run_id):
            return steps.open_window(
                resources,
                run_id=run_id,
                dag_id="constant_contact_sync",
                now=utcnow(),
                full_reconcile=params["full_reconcile"],
                reset_watermark_to=params["reset_watermark_to"],
                dry_run=params["dry_run"],
            )

    @task(show_return_value_in_logs=False)
    def compare(members, contacts, window: dict, run_id: str | None = None) -> dict:
        """Apply the review decisions made in the console; then per linked person and field: changed
        in the member database, in CC, in both, or not."""
        resources = _resources()
        with lease.kept(resources.bookkeeping, run_id):
            return steps.compare(resources, members, contacts, window, run_id=run_id)

    @task(show_return_value_in_logs=False)
    def link(compared: dict, run_id: str | None = None) -> dict:
        """Link new people by name + email; send near matches and shared emails to review."""
        resources = _resources()
        with lease.kept(resources.bookkeeping, run_id):
            return steps.link(resources, compared)

    @task(show_return_value_in_logs=False)
    def resolve(linked: dict, run_id: str | None = None) -> dict:
        """Merge field by field into the plan: what to write on each side, and why."""
        resources = _resources()
        with lease.kept(resources.bookkeeping, run_id):
            return steps.resolve(resources, linked)

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def guard(plan: dict, params: dict, run_id: str | None = None) -> bool:
        """Stop a mass change before any write; on a dry run, keep the plan and write nothing."""
        resources = _resources()
        with lease.kept(resources.bookkeeping, run_id):
            steps.guard(
                resources,
                plan,
                allow_mass_change=params["allow_mass_change"],
                max_share=params["max_change_share"],
                dry_run=params["dry_run"],
                run_id=run_id,
            )
        return not params["dry_run"]

    @task(show_return_value_in_logs=False)
    def record(
        plan: dict, window: dict, linked: dict, cc_result: dict, member_result: dict, run_id=None
    ) -> dict:
        """Store the new links, base, change log, consent, reviews and watermarks."""
        resources = _resources()
        with lease.kept(resources.bookkeeping, run_id):
            return steps.record(
                resources,
                plan,
                run_id=run_id,
                window=window,
                contacts=linked["contacts"],
                cc_result=cc_result,
                member_result=member_result,
            )

    @task(outlets=[CONTACTS_SYNCED])
    def publish(counts: dict) -> None:
        """Tell downstream DAGs that contacts changed (skipped, emitting nothing, when none did)."""
        if not steps.contacts_changed(counts):
            raise AirflowSkipException("no contact changed in this run")

    @teardown
    def finish(params: dict, ti=None, run_id: str | None = None) -> dict:
        """Close the run record with its counts and API usage, and release the lease."""
        counts = ti.xcom_pull(task_ids="load.record")
        linked = ti.xcom_pull(task_ids="link") or {}
        window = ti.xcom_pull(task_ids="open_window") or {}
        calls = [
            ti.xcom_pull(task_ids=t, key=API_CALLS_KEY) for t in ("extract.contacts", "load.constant_contact")
        ]
        return steps.finish(
            _resources(),
            run_id=run_id,
            succeeded=counts is not None or params["dry_run"],
            counts=counts,
            dry_run=params["dry_run"],
            api_calls=sum(c or 0 for c in calls)
            + int(linked.get("api_calls") or 0)
            + int(window.get("api_calls") or 0),
        )

    waited = wait_for_lease()
    window = open_window()
    with TaskGroup("extract", tooltip="Read both sides: everything, or what changed") as extract:
        members = MemberDatabaseExtractOperator(
            task_id="members",
            member_db_conn_id=MEMBER_DB_CONN_ID,
            mapping_path=MAPPING_PATH,
            since=_window("members_since"),
            full=_window("full"),
            lease=lease.LEASE_NAME,
        )
        contacts = ConstantContactExtractOperator(
            task_id="contacts",
            conn_id=CC_CONN_ID,
            updated_after=_window("cc_since"),
            full=_window("full"),
            pool="constant_contact_api",
            lease=lease.LEASE_NAME,
            member_db_conn_id=MEMBER_DB_CONN_ID,
            mapping_path=MAPPING_PATH,
        )
    waited >> window >> extract
    compared = compare(members.output, contacts.output, window)
    linked = link(compared)
    plan = resolve(linked)
    go = guard(plan)
    with TaskGroup("load", tooltip="Write both sides, then the bookkeeping") as load:
        cc_written = ConstantContactLoadOperator(
            task_id="constant_contact",
            plan=plan,
            conn_id=CC_CONN_ID,
            member_db_conn_id=MEMBER_DB_CONN_ID,
            mapping_path=MAPPING_PATH,
            pool="constant_contact_api",
            lease=lease.LEASE_NAME,
        )
        members_written = MemberDatabaseLoadOperator(
            task_id="member_database",
            plan=plan,
            member_db_conn_id=MEMBER_DB_CONN_ID,
            mapping_path=MAPPING_PATH,
            lease=lease.LEASE_NAME,
        )
        cc_written >> members_written
        counts = record(plan, window, linked, cc_written.output, members_written.output)
    go >> load
    published = publish(counts)
    done = finish()
    waited >> done
    [published, go] >> done
