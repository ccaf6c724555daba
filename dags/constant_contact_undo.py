"""
### Undo a run: reverse what a sync or a send wrote, from the change log

Pick the **run id** of a sync, send-list or undo run (the list offers the latest that wrote
something; any other id can be typed), or use "Undo this run" on the run's page in the sync
console. The undo writes
back, on each side, the values that run replaced, through the sync's own load path (bulk import
for Constant Contact, a PUT for an email change, batched member writes with the optimistic check;
journaled and resumable), and logs its own writes with reason `undo:<run_id>`, so an undo can
itself be undone.

- **Three-way safe:** a value is restored only where the field still holds what the run wrote;
  a field changed since is left alone and reported.
- **Never reversed:** opt-outs (an undo never re-subscribes anyone); contacts and members are
  never deleted (a contact the run created is unlinked, reported and left in Constant Contact).
- **Links and bases:** links the run made are removed; each restored field's base goes back to
  what it was before the run.
- **Dry run** (the default): the plan is kept in `ccsync_planned_changes` and shown in the
  `guard` task's log as a table: what would be restored where, what is left alone and why.
- **Guard rail:** an undo touching more than `max_change_share` of the linked people needs
  `allow_mass_change`. It holds the sync's lease: no sync runs while it writes.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, TaskGroup

from cc_sync import job, settings
from cc_sync.operators.constant_contact import ConstantContactLoadOperator
from cc_sync.operators.member_db import MemberDatabaseLoadOperator
from cc_sync.undo import choices

DAG_ID = "constant_contact_undo"
OPERATOR_ARGS = job.operator_args()


def _outcome(ti, params: dict) -> job.Outcome:
    """The undo's counts (from load.record)."""
    return job.Outcome.recorded(ti.xcom_pull(task_ids="load.record"), dry_run=params["dry_run"])


with DAG(
    dag_id=DAG_ID,
    description="Undo a sync or send-list run from the change log",
    doc_md=__doc__,
    schedule=None,
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args=settings.default_args(),
    tags=["constant_contact", "member_db", "undo"],
    params={
        # Recent runs to pick from (read at parse; free text when the bookkeeping cannot be read).
        "run_id": Param(
            "", **choices.run_id_param_schema(settings.MEMBER_DB_CONN_ID, settings.mapping_path())
        ),
        "dry_run": Param(
            True, type="boolean", title="Dry run", description="Plan and report; write nothing."
        ),
        "fields": Param(
            [],
            type=["array", "null"],
            items={"type": "string"},
            title="Fields",
            description="Restore only these fields (e.g. first_name, email); empty: all of them.",
        ),
        "people": Param(
            [],
            type=["array", "null"],
            items={"type": "string"},
            title="People",
            description="Restore only these people, by member id or contact id; empty: everyone.",
        ),
        "review_edited_since": Param(
            False,
            type="boolean",
            title="Queue fields edited since for review",
            description="Each person with a field left alone because it changed since the run "
            "becomes a review item in the sync console, to choose which value stands.",
        ),
        "remove_created_from_lists": Param(
            False,
            type="boolean",
            title="Take created contacts off the run's list",
            description="Contacts the run created are unlinked and left in Constant Contact; with "
            "this on they also come off the list the run added them to (never unsubscribed or deleted).",
        ),
        **job.guard_rail_params("this undo"),
    },
) as dag:
    waited = job.wait_for_lease("Wait until no sync, send or other undo is running.")

    @job.step()
    def open_undo(params: dict, run_id: str | None = None) -> dict:
        """Check the run to undo and start the undo's own run record."""
        from cc_sync.undo import steps as undo

        return job.leased(
            run_id,
            undo.open_undo,
            run_id=run_id,
            dag_id=DAG_ID,
            target=params["run_id"],
            dry_run=params["dry_run"],
        )

    @job.step(show_return_value_in_logs=False)
    def plan(opened: dict, params: dict, run_id: str | None = None) -> dict:
        """Read the run's change log and both sides now; restore only what still holds the run's value."""
        from cc_sync.undo import steps as undo

        return job.leased(
            run_id,
            undo.plan,
            opened,
            fields=params["fields"],
            people=params["people"],
            remove_created_from_lists=params["remove_created_from_lists"],
        )

    @job.short_circuit_step(ignore_downstream_trigger_rules=False)
    def guard(planned: dict, params: dict, run_id: str | None = None) -> bool:
        """Stop a mass change; on a dry run keep the plan and write nothing."""
        from cc_sync.undo import steps as undo

        job.leased(
            run_id,
            undo.guard,
            planned,
            target=params["run_id"],
            run_id=run_id,
            allow_mass_change=params["allow_mass_change"],
            max_share=params["max_change_share"],
            dry_run=params["dry_run"],
        )
        return not params["dry_run"]

    @job.step(pool=settings.CC_POOL)
    def list_memberships(planned: dict, run_id: str | None = None) -> dict:
        """Take the contacts a send added to its list off it again (never an unsubscribe)."""
        from cc_sync.undo import steps as undo

        return job.leased(run_id, undo.remove_from_lists, planned, run_id=run_id)

    @job.step(show_return_value_in_logs=False)
    def record(
        planned: dict, cc_result: dict, lists_result: dict, member_result: dict, params: dict, run_id=None
    ) -> dict:
        """Log what landed (reason undo:<run_id>), remove or make links, put the bases back."""
        from cc_sync.undo import steps as undo

        return job.leased(
            run_id,
            undo.record,
            planned,
            target=params["run_id"],
            run_id=run_id,
            cc_result=cc_result,
            member_result=member_result,
            lists_result=lists_result,
            review_edited_since=params["review_edited_since"],
        )

    opened = open_undo()
    planned = plan(opened)
    go = guard(planned)
    waited >> opened
    with TaskGroup("load", tooltip="Write both sides back through the sync's loaders") as load:
        cc_written = ConstantContactLoadOperator(
            task_id="constant_contact",
            plan=planned,
            conn_id=settings.CC_CONN_ID,
            pool=settings.CC_POOL,
            **OPERATOR_ARGS,
        )
        members_written = MemberDatabaseLoadOperator(task_id="member_database", plan=planned, **OPERATOR_ARGS)
        lists_done = list_memberships(planned)
        cc_written >> lists_done >> members_written
        counts = record(planned, cc_written.output, lists_done, members_written.output)
    go >> load
    job.finish(_outcome, after=[waited, counts, go])
