"""Undo a run (issue 13's benchmark): dag.test() on SQLite + the emulator, rate limit off.

A world of members mirrored in CC is synced; then N linked people are edited (half a job title in
the member database, half a company in CC) and a sync carries the edits over: N people changed,
N/2 on each side. The undo of that run is timed and its API calls are set against the minimum:
the custom fields (1), one page per 500 contacts CC changed since the run started (what it reads
to compare), the import of the restored values (one per 40,000 contacts) and its poll, the main
list's lookup for that import, and a GET + PUT per contact the import cannot restore (a value that
goes back to blank, which an import ignores, or an opted-out contact), as the sync spends them.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]

from bench.airflow_setup import project_dag  # noqa: E402  (after the path set-up)
from bench.bench_sync import _run, build_world, edit_share  # noqa: E402

IMPORT_ROWS = 40_000
PAGE = 500


def _undo(dag: Any, emulator: Any, run_id: str) -> dict[str, Any]:
    calls_before = emulator.admin.counters()["endpoints"]
    started = time.perf_counter()
    run = dag.test(
        run_conf={"run_id": run_id, "dry_run": False, "fields": [], "people": [],
                  "allow_mass_change": True, "max_change_share": 1.0}
    )  # fmt: skip
    seconds = time.perf_counter() - started
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    failed = {k: v for k, v in states.items() if v not in ("success", "skipped")}
    if run.state != "success" or failed:
        raise RuntimeError(f"undo run {run.run_id} ended {run.state}: {failed}")
    after = emulator.admin.counters()["endpoints"]
    calls = {k: after.get(k, 0) - calls_before.get(k, 0) for k in after}
    spent = {k: v for k, v in calls.items() if v}
    return {"run_id": run.run_id, "seconds": round(seconds, 1), "calls": spent}


def scenario(members: int, people: int, work: Path) -> dict[str, Any]:
    import sqlalchemy as sa

    from cc_sync.member_db.bookkeeping import Bookkeeping
    from include import sync_world
    from include.cc_emulator.testing import run_emulator

    sync_dag = project_dag("constant_contact_sync", CC_SYNC_READ_OVERLAP_SECONDS="3")
    undo_dag = project_dag("constant_contact_undo")
    work.mkdir(parents=True, exist_ok=True)
    unlimited = {"rate_limit_per_second": None, "daily_quota": None, "activity_processing_seconds": 0.0}
    with run_emulator(**unlimited) as emulator:
        db_url, _ = build_world(members, work, emulator)
        state = f"sqlite:///{work / 'cc-state.db'}"
        for key, value in sync_world.connection_env(emulator, db_url, state).items():
            os.environ[key] = value
        engine = sa.create_engine(db_url)
        bookkeeping = Bookkeeping(engine)
        _run(sync_dag, emulator)
        time.sleep(4)
        _run(sync_dag, emulator)  # the echo of the initial sync
        linked = len(bookkeeping.get_links())
        edit_share(db_url, emulator, bookkeeping, people)
        before = emulator.admin.counters()["api_calls"]
        bad = sync_dag.test(
            run_conf={"dry_run": False, "full_reconcile": False, "allow_mass_change": True,
                      "max_change_share": 1.0, "reset_watermark_to": None}
        )  # fmt: skip
        run_calls = emulator.admin.counters()["api_calls"] - before
        changes = bookkeeping.get_changes(bad.run_id)
        changed_people = int(changes["member_id"].nunique())
        to_cc = changes.loc[changes["direction"] == "to_cc", "contact_id"].nunique()
        undo = _undo(undo_dag, emulator, bad.run_id)
        undone = bookkeeping.get_changes(undo["run_id"])
        counts = (bookkeeping.get_run(undo["run_id"]) or {}).get("counts") or {}
        # CC contacts changed since the run started: those the run wrote, and the people edited in
        # CC just before it (inside the read's clock slack).
        cc_edited = people - people // 2
        pages = math.ceil((to_cc + cc_edited) / PAGE)
        imported = int(counts.get("cc_updates", 0))
        imports = math.ceil(imported / IMPORT_ROWS)
        minimum = 1 + pages + (2 * imports + 1 if imports else 0) + 2 * int(counts.get("cc_puts", 0))
        engine.dispose()
    calls = undo["calls"]
    return {
        "members": members,
        "linked": linked,
        "changed_people": changed_people,
        "run_api_calls": run_calls,
        "undo_seconds": undo["seconds"],
        "undo_api_calls": sum(calls.values()),
        "undo_api_calls_minimum": minimum,
        "undo_calls_by_endpoint": calls,
        "undo_values_restored": len(undone),
        "undo_values_of_the_run": len(changes),
        "undo_cc_by_import": imported,
        "undo_cc_by_put": int(counts.get("cc_puts", 0)),
        "undo_member_updates": int(counts.get("member_updates", 0)),
        "undo_skipped": {
            k.removeprefix("skipped_"): v for k, v in counts.items() if k.startswith("skipped_")
        },
    }


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    members, people = (3_000, 2_000) if quick else (15_000, 10_000)
    work = Path(tempfile.mkdtemp(prefix="ccsync-bench-undo-"))
    figures = scenario(members, people, work)
    results.update({f"undo_{k}": v for k, v in figures.items()})


if __name__ == "__main__":
    figures: dict[str, Any] = {}
    run(figures, quick="--quick" in sys.argv)
    for key, value in figures.items():
        print(f"{key}: {value}")
