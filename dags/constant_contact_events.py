"""
### Event registrations: Constant Contact → member database

Reads the registrations of Constant Contact's events that may still change in the run's window
(not drafts; created before the window's end; not settled, that is ended at most `settle_days`
before it) and stores them per member in the bookkeeping's `event_registrations` table, one row per
registration id with its registration, payment and check-in status: through the sync's link (the
registrant's email is a linked contact's), else a unique member email. A registrant who is no
member is counted and queued for review (kind `event_registrant`), never created as a member.

The registrations listing has no time filter, so each open event is read whole (100 a page) and
stored page by page; a rerun or a backfill over the same window
(`airflow backfill create --dag-id constant_contact_events --from-date ... --to-date ...`) adds
nothing, and an event read after it settled is never read again. The first task logs which
Constant Contact account the run talks to.

Connections `constant_contact_default` and `member_db_default`; mapping
`include/config/member_mapping.yaml`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from cc_sync import events, job, settings

DAG_ID = "constant_contact_events"


def _outcome(ti, params: dict) -> job.Outcome:
    """The pull's counts."""
    counts = ti.xcom_pull(task_ids="pull_registrations")
    return job.Outcome(succeeded=counts is not None, counts=counts)


with DAG(
    dag_id=DAG_ID,
    description="Event registrations from Constant Contact into the member database",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(settings.events_schedule(), timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=settings.default_args(),
    tags=["constant_contact", "member_db", "events"],
    params={
        "settle_days": Param(
            events.DEFAULT_SETTLE.days,
            type="integer",
            minimum=0,
            maximum=90,
            title="Settle (days)",
            description="Keep reading an event's registrations this many days after it ends: payments, "
            "cancellations and check-ins still change them.",
        ),
    },
) as dag:

    @job.step(pool=settings.CC_POOL)
    def account_summary(run_id: str | None = None) -> dict:
        """Open the run record; log the Constant Contact account this run talks to (one API call,
        the email masked)."""
        from cc_sync.events import pull

        res = job.resources()
        try:
            account = job.start(res, run_id=run_id, dag_id=DAG_ID, kind=pull.RUN_KIND)
        finally:
            res.close()
        return account.__dict__

    @job.step(pool=settings.CC_POOL)
    def pull_registrations(params: dict, dag_run=None, run_id: str | None = None, **context) -> dict:
        """Read the open events' registrations and store them per member, page by page."""
        from cc_sync.events import pull

        window = pull.window_for_run(
            context.get("data_interval_start"),
            context.get("data_interval_end"),
            dag_run.run_after,
            timedelta(days=params["settle_days"]),
        )
        res = job.resources()
        try:
            summary = pull.pull_registrations(res.cc, res.members, res.bookkeeping, window, run_id=run_id)
            return summary.counts()
        finally:
            res.close()

    job.finish(_outcome, after=[account_summary() >> pull_registrations()], lease=False)
