"""Campaign activity back into the member database: one hourly run of the activity DAG (dag.test()
on SQLite and the emulator, rate limit off) after a campaign to 10,000 contacts, then the same
hour again, as a backfill over a window already done does.

The figure to beat is the API-call minimum: the campaign list and the campaign (2), one call to
name the account, and one page of 500 per report: ceil(events / 500) for each of sends, opens,
clicks, bounces and opt-outs (an empty report still costs its one page). The rerun's minimum is
one page per report: nothing new is read past each report's high-water mark.

Run alone: ``python -m bench.bench_activity [--quick]``.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]

PAGE = 500
HOUR = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # the run's window [10:00, 11:00)
SENT_AT = HOUR + timedelta(minutes=5)
FIXED_CALLS = 3  # GET /emails, GET /emails/{id}, GET /account/summary


def activity_scenario(dag: Any, work: Path, recipients: int) -> dict[str, Any]:
    import sqlalchemy as sa

    from cc_sync.member_db.bookkeeping import Bookkeeping
    from include import sync_world
    from include.cc_emulator.testing import run_emulator

    work.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{work / 'members.db'}"
    sync_world.create_members(db_url, int(recipients / 0.75))
    unlimited = {"rate_limit_per_second": None, "daily_quota": None}
    with run_emulator(**unlimited) as emulator:
        for key, value in sync_world.connection_env(emulator, db_url, f"sqlite:///{work / 'cc.db'}").items():
            os.environ[key] = value
        # Every active member with a well-formed email becomes a contact, as the sync leaves them.
        sync_world.seed_contacts_from_members(
            emulator, db_url, share=1.0, renamed_share=0.0, opted_out_share=0.0, cc_only=0
        )
        contact_ids = [contact["contact_id"] for contact in emulator.admin.all_contacts()][:recipients]
        campaign = emulator.admin.send_campaign("Benchmark newsletter", contact_ids=contact_ids, at=SENT_AT)
        sent = campaign["sent_to"]
        # 30% open, 5% click, 0.5% bounce, 0.2% opt out: a typical member newsletter.
        opens, clicks, bounces, optouts = (len(sent) * 3 // 10, len(sent) // 20, len(sent) // 200,
                                           len(sent) // 500)  # fmt: skip
        read_at = SENT_AT + timedelta(minutes=20)
        events = [{"type": "open", "contact_id": c, "at": read_at} for c in sent[:opens]]
        events += [{"type": "click", "contact_id": c, "at": read_at, "link_url": "https://example.org/news"}
                   for c in sent[:clicks]]  # fmt: skip
        events += [{"type": "bounce", "contact_id": c, "at": read_at, "bounce_code": "B"}
                   for c in sent[len(sent) - bounces :]]  # fmt: skip
        events += [{"type": "optout", "contact_id": c, "at": read_at} for c in sent[opens : opens + optouts]]
        emulator.admin.track(campaign["campaign_activity_id"], events)
        by_report = {"sends": len(sent), "opens": opens, "clicks": clicks, "bounces": bounces,
                     "optouts": optouts}  # fmt: skip

        runs = []
        for _ in range(2):
            before = emulator.admin.counters()["api_calls"]
            started = time.perf_counter()
            run = dag.test(logical_date=HOUR + timedelta(hours=1), run_conf={"lookback_days": 1})
            seconds = time.perf_counter() - started
            if run.state != "success":
                states = {ti.task_id: ti.state for ti in run.get_task_instances()}
                raise RuntimeError(f"activity run ended {run.state}: {states}")
            engine = sa.create_engine(db_url)
            record = Bookkeeping(engine).get_run(run.run_id) or {}
            engine.dispose()
            runs.append(
                {
                    "seconds": round(seconds, 1),
                    "api_calls": emulator.admin.counters()["api_calls"] - before,
                    "counts": record.get("counts", {}),
                }
            )
    first, again = runs
    return {
        "events_made": sum(by_report.values()),
        "by_report": by_report,
        "minimum_calls": FIXED_CALLS + sum(max(1, math.ceil(n / PAGE)) for n in by_report.values()),
        "rerun_minimum_calls": FIXED_CALLS + len(by_report),
        "first": first,
        "again": again,
    }


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    from bench.airflow_setup import project_dag

    dag = project_dag("constant_contact_activity")
    recipients = 2_000 if quick else 10_000
    scenario = activity_scenario(dag, Path(tempfile.mkdtemp(prefix="ccsync-bench-activity-")), recipients)
    first, again = scenario["first"], scenario["again"]
    figures = {
        "events_made": scenario["events_made"],
        "by_report": scenario["by_report"],
        "events_added": first["counts"].get("events_added"),
        "matched": {k: v for k, v in first["counts"].items() if k.startswith("matched_")},
        "members_opted_out": first["counts"].get("members_opted_out"),
        "seconds": first["seconds"],
        "api_calls": first["api_calls"],
        "minimum_calls": scenario["minimum_calls"],
        "rerun_seconds": again["seconds"],
        "rerun_api_calls": again["api_calls"],
        "rerun_minimum_calls": scenario["rerun_minimum_calls"],
        "rerun_events_added": again["counts"].get("events_added"),
    }
    results.update({f"activity_{recipients}_{name}": value for name, value in figures.items()})


if __name__ == "__main__":
    import json

    out: dict[str, Any] = {}
    run(out, quick="--quick" in sys.argv)
    print(json.dumps(out, indent=2))
