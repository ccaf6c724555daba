"""What Airflow itself pays for the package: each DAG file's parse time (``airflow dags report``,
as the DAG processor measures it) and the XCom one sync run stores (rows in the metadata DB, files
and bytes in the object-storage backend) with the run's time.

The XCom figures answer issue 14's ``multiple_outputs``: a task annotated ``-> dict`` pushes every
key as its own XCom besides the whole value, so a plan's DataFrames were stored twice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.airflow_setup import PROJECT_ROOT, project_dag

REPORTS = 3  # `dags report` runs; the best of them (the machine is shared)


def dags_report(results: dict[str, Any], *, write_bytecode: bool = True) -> None:
    """Seconds per DAG file, the best of :data:`REPORTS` runs of ``airflow dags report``, each file
    alone in its folder: the DAG processor parses every file in a fresh process, so in one report
    of the whole folder the first file would pay for the imports all of them share.

    Python's bytecode caches are written and warm, as in a deployment (the first report of each
    file warms them and is not counted). ``write_bytecode=False`` measures with
    PYTHONDONTWRITEBYTECODE set and no cache of the project's own modules (as a checkout run from a
    shell or container that sets it has): every module of the package is then compiled again in
    each fresh process, which inflates the figure (``*_no_bytecode``). Airflow's own modules keep
    the caches pip wrote when it installed them.
    """
    home = tempfile.mkdtemp(prefix="ccsync-bench-report-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["AIRFLOW_HOME"] = home
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for cache in [*PROJECT_ROOT.glob("plugins/**/__pycache__"), *PROJECT_ROOT.glob("dags/__pycache__")]:
            shutil.rmtree(cache, ignore_errors=True)
    suffix = "" if write_bytecode else "_no_bytecode"

    def airflow(*args: str, **extra_env: str) -> str:
        command = [sys.executable, "-m", "include.airflow_env", "airflow", *args]
        return subprocess.run(
            command, cwd=PROJECT_ROOT, env={**env, **extra_env}, capture_output=True, text=True, check=True
        ).stdout

    airflow("db", "migrate")  # `dags report` refuses an unmigrated metadata DB
    for dag_file in sorted((PROJECT_ROOT / "dags").glob("*.py")):
        folder = Path(tempfile.mkdtemp(prefix="ccsync-bench-dags-"))
        (folder / dag_file.name).symlink_to(dag_file)
        best = None
        for attempt in range(REPORTS + 1):
            out = airflow("dags", "report", "-o", "json", AIRFLOW__CORE__DAGS_FOLDER=str(folder))
            rows = json.loads(next(line for line in out.splitlines() if line.startswith("[")))
            seconds = _seconds(rows[0]["duration"])
            if attempt:  # the first one warms the caches
                best = seconds if best is None else min(best, seconds)
        results[f"dags_report_{dag_file.stem}_seconds{suffix}"] = round(best or 0.0, 3)


def _seconds(duration: Any) -> float:
    """``dags report`` prints a timedelta ("0:00:00.412345") or seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    hours, minutes, seconds = str(duration).split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def xcom_of_one_sync(results: dict[str, Any], members: int) -> None:
    """One initial sync of ``members``: XCom rows, files and bytes it leaves, and its seconds."""
    # Airflow is configured by project_dag: nothing may import it before.
    dag = project_dag("constant_contact_sync", CC_SYNC_READ_OVERLAP_SECONDS="3")
    import sqlalchemy as sa
    from airflow import settings as airflow_settings

    from bench.bench_sync import _run, build_world
    from include import sync_world
    from include.cc_emulator.testing import run_emulator

    work = Path(tempfile.mkdtemp(prefix="ccsync-bench-xcom-"))
    xcom_dir = Path(os.environ["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH"].removeprefix("file://"))
    unlimited = {"rate_limit_per_second": None, "daily_quota": None, "activity_processing_seconds": 0.0}
    with run_emulator(**unlimited) as emulator:
        db_url, _ = build_world(members, work, emulator)
        state = f"sqlite:///{work / 'cc-state.db'}"
        os.environ.update(sync_world.connection_env(emulator, db_url, state))
        started = time.perf_counter()
        _run(dag, emulator)
        seconds = time.perf_counter() - started
    with airflow_settings.engine.connect() as conn:
        rows, db_bytes = conn.execute(
            sa.text("SELECT count(*), coalesce(sum(length(value)), 0) FROM xcom")
        ).one()
    files = [p for p in xcom_dir.rglob("*") if p.is_file()]
    results[f"xcom_initial_sync_{members}_rows"] = int(rows)
    results[f"xcom_initial_sync_{members}_db_bytes"] = int(db_bytes)
    results[f"xcom_initial_sync_{members}_files"] = len(files)
    results[f"xcom_initial_sync_{members}_file_bytes"] = sum(p.stat().st_size for p in files)
    results[f"xcom_initial_sync_{members}_seconds"] = round(seconds, 1)


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    dags_report(results, write_bytecode=False)  # first: the warm run below writes the caches again
    dags_report(results)
    xcom_of_one_sync(results, 2_000 if quick else 10_000)


if __name__ == "__main__":  # python -m bench.bench_airflow [--quick]: print the figures
    figures: dict[str, Any] = {}
    run(figures, quick="--quick" in sys.argv)
    print(json.dumps(figures, indent=1))
