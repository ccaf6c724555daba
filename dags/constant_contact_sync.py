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
- **tags** (when the mapping has `tags:`) keeps member columns as CC tags with the bulk tagging
  activities; a `two_way` column takes a tag changed in CC back (both changed: a review item).

**list_rules** (after the load, and on a dry run too) keeps each list the mapping's `list_rules` bind
to a segment equal to it: the segment's linked, subscribed members added, everyone else taken off
that list (never unsubscribed); an opted-out person is never added.

A **dry run** stops after the plan and writes nothing. The **guard rail** stops, before any write, a
run that would unsubscribe, unlink or change more than `max_change_share` of the linked people.
Runs never overlap: the first task waits for the sync lease, every task renews it while it works,
the last one releases it. A run killed before releasing it holds it for minutes, not hours: the
lease expires 10 minutes after its last renewal and the next run takes it over.

Configure the member table in `include/config/member_mapping.yaml`; connections
`constant_contact_default` and `member_db_default`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, TaskGroup

from cc_sync import job, settings
from cc_sync.operators.constant_contact import ConstantContactExtractOperator, ConstantContactLoadOperator
from cc_sync.operators.member_db import MemberDatabaseExtractOperator, MemberDatabaseLoadOperator

DAG_ID = "constant_contact_sync"
CONTACTS_SYNCED = Asset(name="constant_contact_contacts_synced", uri="cc-sync://constant_contact/contacts")
OPERATOR_ARGS = job.operator_args()


def _window(key: str) -> str:
    """A value of the open_window task's result, rendered natively (None stays None)."""
    return "{{ ti.xcom_pull(task_ids='open_window')['" + key + "'] }}"


def _outcome(ti, params: dict) -> job.Outcome:
    """The run's counts (from load.record, then tags). A run whose tags task did not finish has not
    succeeded."""
    counts = ti.xcom_pull(task_ids="load.record")
    rules = ti.xcom_pull(task_ids="list_rules") or {}
    tagged = ti.xcom_pull(task_ids="tags")
    if counts is not None:  # (a dry run's counts, tags' included, are in its run record)
        rule_counts = {k: v for k, v in rules.items() if k.startswith("list_rule")}
        counts = None if tagged is None else {**counts, **tagged["counts"], **rule_counts}
    return job.Outcome.recorded(counts, dry_run=params["dry_run"])


with DAG(
    dag_id=DAG_ID,
    description="Two-way sync of the member database and Constant Contact",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(settings.sync_schedule(), timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args=settings.default_args(),
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
        **job.guard_rail_params("this run"),
        "reset_watermark_to": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Reset the watermark to",
            description="Read changes since this time (UTC) instead of since the last successful sync.",
        ),
    },
) as dag:
    waited = job.wait_for_lease("Wait until no other sync (scheduled, manual or backfill) is running.")

    @job.step()
    def open_window(params: dict, run_id: str | None = None) -> dict:
        """Decide what to read: the initial sync, a full reconcile, or changes since the watermarks."""
        from cc_sync.sync import steps
        from cc_sync.timeutil import utcnow

        return job.leased(
            run_id,
            steps.open_window,
            run_id=run_id,
            dag_id=DAG_ID,
            now=utcnow(),
            full_reconcile=params["full_reconcile"],
            reset_watermark_to=params["reset_watermark_to"],
            dry_run=params["dry_run"],
        )

    @job.step(show_return_value_in_logs=False)
    def compare(members, contacts, window: dict, run_id: str | None = None) -> dict:
        """Apply the review decisions made in the console; then per linked person and field: changed
        in the member database, in CC, in both, or not."""
        from cc_sync.sync import steps

        return job.leased(run_id, steps.compare, members, contacts, window, run_id=run_id)

    @job.step(show_return_value_in_logs=False)
    def link(compared: dict, run_id: str | None = None) -> dict:
        """Link new people by name + email; send near matches and shared emails to review."""
        from cc_sync.sync import steps

        return job.leased(run_id, steps.link, compared)

    @job.step(show_return_value_in_logs=False)
    def resolve(linked: dict, run_id: str | None = None) -> dict:
        """Merge field by field into the plan: what to write on each side, and why."""
        from cc_sync.sync import steps

        return job.leased(run_id, steps.resolve, linked)

    @job.short_circuit_step(ignore_downstream_trigger_rules=False)
    def guard(plan: dict, params: dict, run_id: str | None = None) -> bool:
        """Stop a mass change before any write; on a dry run, keep the plan and write nothing."""
        from cc_sync.sync import steps

        job.leased(
            run_id,
            steps.guard,
            plan,
            allow_mass_change=params["allow_mass_change"],
            max_share=params["max_change_share"],
            dry_run=params["dry_run"],
            run_id=run_id,
        )
        return not params["dry_run"]

    @job.step(show_return_value_in_logs=False)
    def record(
        plan: dict, window: dict, linked: dict, cc_result: dict, member_result: dict, run_id=None
    ) -> dict:
        """Store the new links, base, change log, consent, reviews and watermarks."""
        from cc_sync.sync import steps

        return job.leased(
            run_id,
            steps.record,
            plan,
            run_id=run_id,
            window=window,
            contacts=linked["contacts"],
            cc_result=cc_result,
            member_result=member_result,
        )

    # Runs after the load, or after a dry run's guard (which skips the load): it plans either way.
    @job.step(trigger_rule="none_failed")
    def list_rules(params: dict, run_id: str | None = None) -> dict:
        """Keep each list the mapping binds to a segment equal to it (adds and removes in bulk)."""
        from cc_sync.list_rules import steps

        return job.leased(
            run_id,
            steps.apply_list_rules,
            run_id=run_id,
            dry_run=params["dry_run"],
            allow_mass_change=params["allow_mass_change"],
            max_share=params["max_change_share"],
        )

    # none_failed: after load.record, and on a dry run (load skipped) too, to plan and report only.
    @job.step(show_return_value_in_logs=False, pool=settings.CC_POOL, trigger_rule="none_failed")
    def tags(contacts, counts: dict | None, params: dict, run_id: str | None = None) -> dict:
        """Keep the mapping's tag columns as CC tags (bulk tagging activities); a two-way column
        takes a tag changed in CC back. Never subscribes or unsubscribes anyone."""
        from cc_sync.tags import step

        return job.leased(run_id, step.sync_tags, contacts, run_id=run_id, dry_run=params["dry_run"])

    @job.step(outlets=[CONTACTS_SYNCED])
    def publish(counts: dict) -> None:
        """Tell downstream DAGs that contacts changed (skipped, emitting nothing, when none did)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from cc_sync.sync import steps

        if not steps.contacts_changed(counts):
            raise AirflowSkipException("no contact changed in this run")

    window = open_window()
    with TaskGroup("extract", tooltip="Read both sides: everything, or what changed") as extract:
        members = MemberDatabaseExtractOperator(
            task_id="members", since=_window("members_since"), full=_window("full"), **OPERATOR_ARGS
        )
        contacts = ConstantContactExtractOperator(
            task_id="contacts",
            conn_id=settings.CC_CONN_ID,
            updated_after=_window("cc_since"),
            full=_window("full"),
            pool=settings.CC_POOL,
            **OPERATOR_ARGS,
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
            conn_id=settings.CC_CONN_ID,
            pool=settings.CC_POOL,
            **OPERATOR_ARGS,
        )
        members_written = MemberDatabaseLoadOperator(task_id="member_database", plan=plan, **OPERATOR_ARGS)
        cc_written >> members_written
        counts = record(plan, window, linked, cc_written.output, members_written.output)
    go >> load
    ruled = list_rules()
    # Not directly downstream of the guard: a dry run's short circuit skips only its direct
    # downstream tasks (the load), and none_failed then runs the rules' plan.
    counts >> ruled
    tagged = tags(contacts.output, counts)
    job.finish(_outcome, after=[waited, publish(counts), go, ruled, tagged])
