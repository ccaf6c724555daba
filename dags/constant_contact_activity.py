"""
### Campaign activity: Constant Contact → member database

For the email campaigns sent (last updated) in the run's window — widened by `lookback_days`,
because opens and clicks keep arriving for days after a send — reads each campaign's tracking
reports (sends, opens, clicks with the link, bounces, opt-outs) newest first, down to the last
event already stored, and stores them per member in the bookkeeping's `activity` table: through
the sync's link, else by email; events of unknown addresses are kept without a member and counted.

Bounces and opt-outs go to the consent ledger; an opt-out also sets the member's opt-out flag
(never the reverse). Every write is idempotent: a backfill over a window already done
(`airflow backfill create --dag-id constant_contact_activity --from-date ... --to-date ...`)
adds nothing. The first task logs which Constant Contact account the run talks to.

Connections `constant_contact_default` and `member_db_default`; mapping
`include/config/member_mapping.yaml`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from cc_sync import activity, job, settings

DAG_ID = "constant_contact_activity"


def _outcome(ti, params: dict) -> job.Outcome:
    """The pull's counts."""
    counts = ti.xcom_pull(task_ids="pull_activity")
    return job.Outcome(succeeded=counts is not None, counts=counts)


with DAG(
    dag_id=DAG_ID,
    description="Campaign tracking activity from Constant Contact into the member database",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(settings.activity_schedule(), timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=settings.default_args(),
    tags=["constant_contact", "member_db", "activity"],
    params={
        "lookback_days": Param(
            activity.DEFAULT_LOOKBACK.days,
            type="integer",
            minimum=0,
            maximum=90,
            title="Look back (days)",
            description="Also read campaigns updated this many days before the window: activity keeps "
            "arriving after a send.",
        ),
    },
) as dag:

    @job.step(pool=settings.CC_POOL)
    def account_summary(run_id: str | None = None) -> dict:
        """Open the run record; log the Constant Contact account this run talks to (one API call,
        the email masked)."""
        from cc_sync.activity import pull

        res = job.resources()
        try:
            account = job.start(res, run_id=run_id, dag_id=DAG_ID, kind=pull.RUN_KIND)
        finally:
            res.close()
        return account.__dict__

    @job.step(pool=settings.CC_POOL)
    def pull_activity(params: dict, dag_run=None, run_id: str | None = None, **context) -> dict:
        """Read new tracking events of the window's campaigns and store them per member."""
        from cc_sync.activity import pull

        window = pull.window_for_run(
            context.get("data_interval_start"),
            context.get("data_interval_end"),
            dag_run.run_after,
            timedelta(days=params["lookback_days"]),
        )
        res = job.resources()
        try:
            return pull.pull_activity(res.cc, res.members, res.bookkeeping, window, run_id=run_id).counts()
        finally:
            res.close()

    job.finish(_outcome, after=[account_summary() >> pull_activity()], lease=False)
