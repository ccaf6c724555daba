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

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task

from cc_sync import account, activity
from cc_sync.sync.resources import DEFAULT_MAPPING_PATH, SyncResources

DAG_ID = "constant_contact_activity"
CC_CONN_ID = "constant_contact_default"
MEMBER_DB_CONN_ID = "member_db_default"
MAPPING_PATH = os.environ.get("CC_SYNC_MAPPING", str(DEFAULT_MAPPING_PATH))


def _resources() -> SyncResources:
    return SyncResources(CC_CONN_ID, MEMBER_DB_CONN_ID, MAPPING_PATH)


with DAG(
    dag_id=DAG_ID,
    description="Campaign tracking activity from Constant Contact into the member database",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(os.environ.get("CC_ACTIVITY_SCHEDULE", "0 * * * *"), timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": int(os.environ.get("CC_SYNC_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=2),
    },
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

    @task(pool="constant_contact_api")
    def account_summary() -> dict:
        """Log the Constant Contact account this run talks to (one API call; the email masked)."""
        resources = _resources()
        try:
            return account.log_account_summary(resources.cc).__dict__
        finally:
            resources.close()

    @task(pool="constant_contact_api")
    def pull_activity(params: dict, dag_run=None, run_id: str | None = None, **context) -> dict:
        """Read new tracking events of the window's campaigns and store them per member."""
        window = activity.window_for_run(
            context.get("data_interval_start"),
            context.get("data_interval_end"),
            dag_run.run_after,
            timedelta(days=params["lookback_days"]),
        )
        resources = _resources()
        try:
            resources.require_current_schema()
            summary = activity.run_activity_pull(
                resources.cc, resources.members, resources.bookkeeping, window, run_id=run_id, dag_id=DAG_ID
            )
        finally:
            resources.close()
        return summary.counts()

    account_summary() >> pull_activity()
