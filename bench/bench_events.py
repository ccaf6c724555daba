"""Event registrations back into the member database: one daily run of the events DAG (dag.test()
on SQLite and the emulator, rate limit off) over an event 10,000 people registered for (95% of them
members, found through the sync's CC directory and the link or by email; 5% walk-ins who are no
member), then the same day again, as a backfill over a window already done does.

Page size: the spec documents "default and maximum is 100" for ``GET /v3/events`` and no maximum
for a track's registrations; the hook asks for 100 (the emulator's assumed cap), so the minimum is
ceil(10,000 / 100) = 100 registration pages, plus the account line, the events page and the event
(its track): 103 calls. The listing has no time filter, so the rerun reads the same pages (and
stores nothing: every registration id is known and unchanged).

Run alone: ``python -m bench.bench_events [--quick]``.
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

PAGE = 100  # cc_sync.constant_contact.events.REGISTRATION_PAGE_SIZE
FIXED_CALLS = 3  # GET /account/summary, GET /events (one page), GET /events/{id} (its track)
WALK_IN_SHARE = 0.05
_NOW = datetime.now(UTC)
DAY = _NOW.replace(hour=5, minute=0, second=0, microsecond=0) - timedelta(days=1 + int(_NOW.hour < 5))


def events_scenario(dag: Any, work: Path, registrants: int) -> dict[str, Any]:
    import pandas as pd
    import sqlalchemy as sa

    from cc_sync.member_db.bookkeeping import Bookkeeping
    from include import sync_world
    from include.cc_emulator.testing import run_emulator

    work.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{work / 'members.db'}"
    sync_world.create_members(db_url, int(registrants / 0.75))
    unlimited = {"rate_limit_per_second": None, "daily_quota": None}
    with run_emulator(**unlimited) as emulator:
        for key, value in sync_world.connection_env(emulator, db_url, f"sqlite:///{work / 'cc.db'}").items():
            os.environ[key] = value
        sync_world.seed_contacts_from_members(
            emulator, db_url, share=1.0, renamed_share=0.0, opted_out_share=0.0, cc_only=0
        )
        contacts = emulator.admin.all_contacts()
        engine = sa.create_engine(db_url)
        # The sync's CC directory as a sync run leaves it (the link path's email -> contact lookup).
        Bookkeeping(engine).upsert_directory(
            pd.DataFrame(
                [{"contact_id": c["contact_id"], "email": c["email_address"]["address"]} for c in contacts]
            )
        )
        engine.dispose()
        walk_ins = int(registrants * WALK_IN_SHARE)
        emails = [c["email_address"]["address"] for c in contacts][: registrants - walk_ins]
        emails += [f"walk.in.{n}@example.com" for n in range(walk_ins)]
        start = DAY + timedelta(days=20)
        event = emulator.admin.create_event(
            "Benchmark conference", start=start, end=start + timedelta(hours=8), at=DAY
        )
        emulator.admin.register(
            event["event_id"], [{"email": e, "at": DAY + timedelta(hours=1)} for e in emails]
        )

        runs = []
        for _ in range(2):
            before = emulator.admin.counters()["api_calls"]
            started = time.perf_counter()
            run = dag.test(logical_date=DAY + timedelta(days=1))
            seconds = time.perf_counter() - started
            if run.state != "success":
                states = {ti.task_id: ti.state for ti in run.get_task_instances()}
                raise RuntimeError(f"events run ended {run.state}: {states}")
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
        "registrants": len(emails),
        "walk_ins": walk_ins,
        "minimum_pages": math.ceil(len(emails) / PAGE),
        "minimum_calls": FIXED_CALLS + math.ceil(len(emails) / PAGE),
        "first": first,
        "again": again,
    }


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    from bench.airflow_setup import project_dag

    dag = project_dag("constant_contact_events")
    registrants = 2_000 if quick else 10_000
    scenario = events_scenario(dag, Path(tempfile.mkdtemp(prefix="ccsync-bench-events-")), registrants)
    first, again = scenario["first"], scenario["again"]
    figures = {
        "registrants": scenario["registrants"],
        "page_size": PAGE,
        "registration_pages": first["counts"].get("registration_pages"),
        "minimum_pages": scenario["minimum_pages"],
        "api_calls": first["api_calls"],
        "minimum_calls": scenario["minimum_calls"],
        "registrations_added": first["counts"].get("registrations_added"),
        "matched": {k: v for k, v in first["counts"].items() if k.startswith("matched_")},
        "non_members": first["counts"].get("non_members"),
        "seconds": first["seconds"],
        "rerun_api_calls": again["api_calls"],
        "rerun_registrations_added": again["counts"].get("registrations_added"),
        "rerun_registrations_changed": again["counts"].get("registrations_changed"),
        "rerun_seconds": again["seconds"],
    }
    results.update({f"events_{registrants}_{name}": value for name, value in figures.items()})


if __name__ == "__main__":
    import json

    out: dict[str, Any] = {}
    run(out, quick="--quick" in sys.argv)
    print(json.dumps(out, indent=2))
