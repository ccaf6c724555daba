"""Benchmark of the member database layer: chunked extract and optimistic writes.

- extract 1,000,000 members (100,000 in quick mode) from SQLite and from PostgreSQL through
  :class:`MemberDatabaseHook` with the demo mapping: rows/s (target >= 200,000/s) and the peak
  memory of the process doing it (target <= 1.5 GB), sampled in that process. Each extract runs
  in a fresh process, three times per read path, alternated: medians. The default ADBC read path
  is measured, then the DB-API path (cursor, COPY) as the reference; each also reports the CPU
  seconds of its process (all its threads), and the machine's load average is recorded, because
  on a shared machine wall time is mostly waiting.
- 20,000 members from SQLite through a fresh hook (its set-up included, as a task pays it) against
  a plain ``sqlite3`` cursor fetching every row: medians of 7 (target: the hook no slower).
- write 100,000 updates (10,000 in quick mode) with the optimistic check on SQLite: rows/s.

The sample member table is generated once and cached: var/bench/members-<N>.db for SQLite, and the
database ``ccsync_bench_<N>`` on the local PostgreSQL (skipped, with the reason, when it does not
answer). Run alone with ``python -m bench.bench_member_db [--quick]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "var" / "bench"
MAPPING = PROJECT_ROOT / "include" / "config" / "member_mapping.yaml"
POSTGRES_ADMIN_URL = os.environ.get(
    "CC_SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SEED = 42


def _paths() -> None:
    for path in (str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")):
        if path not in sys.path:
            sys.path.insert(0, path)


def _count(url: str) -> int | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM members")).scalar()
    except sa.exc.DBAPIError:
        return None
    finally:
        engine.dispose()


def _ensure_members(url: str, members: int) -> float | None:
    """Fill ``url`` with ``members`` sample rows unless it already holds them; seconds taken, or None."""
    from include.sample_data import analyse, generate_members, write_members

    if _count(url) == members:
        engine = sa.create_engine(url)
        analyse(engine)
        engine.dispose()
        return None
    started = time.perf_counter()
    engine = sa.create_engine(url)
    try:
        write_members(engine, generate_members(members, seed=SEED))
    finally:
        engine.dispose()
    return round(time.perf_counter() - started, 1)


def _postgres_url(members: int) -> tuple[str | None, str | None]:
    """The bench database on PostgreSQL (created if missing), or None and why not."""
    name = f"ccsync_bench_{members}"
    try:
        admin = sa.create_engine(
            POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar()
            if not exists:
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
        admin.dispose()
    except sa.exc.DBAPIError as exc:
        return None, f"PostgreSQL does not answer: {str(exc).splitlines()[0][:150]}"
    return sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False), None


def _extract_in_child(url: str, read_path: str, queue: Any) -> None:
    _paths()
    from bench.measure import PeakRss
    from cc_sync.member_db.hook import MemberDatabaseHook

    hook = MemberDatabaseHook.from_url(url, MAPPING, read_path=read_path)
    hook.table  # noqa: B018 (reflect before the clock starts)
    rows = 0
    with PeakRss() as peak:
        started, cpu_started = time.perf_counter(), time.process_time()
        for chunk in hook.extract_members(chunksize=50_000):
            rows += len(chunk)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    hook.dispose()
    queue.put((rows, seconds, cpu_seconds, peak.peak / 2**20))


def _measure_extract(url: str, read_path: str) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_extract_in_child, args=(url, read_path, queue))
    load_before = os.getloadavg()[0]
    child.start()
    rows, seconds, cpu_seconds, peak_mb = queue.get(timeout=1800)
    child.join()
    return {
        "rows_in_scope": rows,
        "seconds": seconds,
        "cpu_s": cpu_seconds,
        "peak_rss_mb": peak_mb,
        "load_avg_1m": max(load_before, os.getloadavg()[0]),
    }


def _measure_extracts(results: dict[str, Any], prefix: str, url: str, rounds: int) -> None:
    """Each read path ``rounds`` times, alternated, each in a fresh process: medians, highest peak."""
    runs: dict[str, list[dict[str, Any]]] = {"adbc": [], "dbapi": []}
    for _ in range(rounds):
        for read_path, done in runs.items():
            done.append(_measure_extract(url, read_path))
    for read_path, label in (("adbc", "extract"), ("dbapi", "extract_dbapi")):
        done = runs[read_path]
        seconds = statistics.median(r["seconds"] for r in done)
        results[f"{prefix}_{label}_rows_in_scope"] = done[0]["rows_in_scope"]
        results[f"{prefix}_{label}_rounds"] = rounds
        results[f"{prefix}_{label}_median_seconds"] = round(seconds, 2)
        results[f"{prefix}_{label}_median_rows_per_s"] = round(done[0]["rows_in_scope"] / seconds)
        results[f"{prefix}_{label}_median_cpu_s"] = round(statistics.median(r["cpu_s"] for r in done), 2)
        results[f"{prefix}_{label}_peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in done))
        results[f"{prefix}_{label}_load_avg_1m"] = round(max(r["load_avg_1m"] for r in done), 2)


def _measure_small_extract(results: dict[str, Any], url: str, rounds: int = 7) -> None:
    """A small table through a fresh hook (as each task makes one: set-up included) against a
    plain ``sqlite3`` cursor fetching every row; medians, alternated."""
    import sqlite3

    from cc_sync.member_db.hook import MemberDatabaseHook

    path = sa.make_url(url).database
    hook_seconds, cursor_seconds, rows = [], [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        hook = MemberDatabaseHook.from_url(url, MAPPING)
        rows = sum(len(chunk) for chunk in hook.extract_members(chunksize=50_000))
        hook.dispose()
        hook_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        connection = sqlite3.connect(path)
        fetched = connection.execute("SELECT * FROM members").fetchall()
        connection.close()
        cursor_seconds.append(time.perf_counter() - started)
    hook_median, cursor_median = statistics.median(hook_seconds), statistics.median(cursor_seconds)
    results["small_sqlite_members"] = len(fetched)
    results["small_sqlite_hook_rows_in_scope"] = rows
    results["small_sqlite_hook_median_ms"] = round(hook_median * 1000, 1)
    results["small_sqlite_plain_cursor_median_ms"] = round(cursor_median * 1000, 1)
    results["small_sqlite_hook_over_cursor"] = round(hook_median / cursor_median, 2)
    results["small_sqlite_target"] = "hook no slower than the plain cursor fetch"


def _measure_writes(url: str, updates: int) -> dict[str, Any]:
    import pandas as pd

    from cc_sync.fields import MEMBER_ID
    from cc_sync.member_db.hook import ROW_VERSION, MemberDatabaseHook

    hook = MemberDatabaseHook.from_url(url, MAPPING)
    frames = []
    for chunk in hook.extract_members(chunksize=50_000):
        frames.append(chunk)
        if sum(len(f) for f in frames) >= updates:
            break
    batch = pd.concat(frames, ignore_index=True).head(updates)
    todo = batch[[MEMBER_ID, ROW_VERSION]].copy()
    todo["job_title"] = [f"Bench title {i}" for i in range(len(todo))]
    todo["city"] = batch["city"].str.upper()
    started = time.perf_counter()
    result = hook.apply_member_updates(todo)
    seconds = time.perf_counter() - started
    hook.dispose()
    return {
        "updates": len(todo),
        "updated": len(result.updated),
        "skipped": len(result.skipped),
        "seconds": round(seconds, 2),
        "rows_per_s": round(len(result.updated) / seconds),
    }


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    _paths()
    members = 100_000 if quick else 1_000_000
    updates = 10_000 if quick else 100_000
    results["members"] = members
    results["targets"] = "extract >= 200,000 rows/s, peak <= 1,500 MB"

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    sqlite_file = BENCH_DIR / f"members-{members}.db"
    sqlite_url = f"sqlite:///{sqlite_file}"
    generated = _ensure_members(sqlite_url, members)
    if generated is not None:
        results["sqlite_generate_s"] = generated
    results["cpus"] = os.cpu_count()
    rounds = 1 if quick else 3
    _measure_extracts(results, "sqlite", sqlite_url, rounds)

    pg_url, why_not = _postgres_url(members)
    if pg_url is None:
        results["postgresql_extract"] = f"skipped: {why_not}"
    else:
        generated = _ensure_members(pg_url, members)
        if generated is not None:
            results["postgresql_generate_s"] = generated
        _measure_extracts(results, "postgresql", pg_url, rounds)

    small_url = f"sqlite:///{BENCH_DIR / 'members-20000.db'}"
    _ensure_members(small_url, 20_000)
    _measure_small_extract(results, small_url)

    # Writes change rows: they go to a copy, so the cached extract database stays as generated.
    scratch = BENCH_DIR / f"members-{members}-writes.db"
    shutil.copyfile(sqlite_file, scratch)
    try:
        for key, value in _measure_writes(f"sqlite:///{scratch}", updates).items():
            results[f"sqlite_write_{key}"] = value
    finally:
        scratch.unlink(missing_ok=True)
    if pg_url is not None:
        for key, value in _measure_writes(pg_url, updates).items():
            results[f"postgresql_write_{key}"] = value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    run(figures, quick=args.quick)
    for name, figure in figures.items():
        print(f"{name}: {figure}")
