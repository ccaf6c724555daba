"""An initial sync under the CeleryExecutor with two workers vs the LocalExecutor (issue 17).

Each executor gets the same stack (include/airflow_celery.py: PostgreSQL metadata DB of its own,
scheduler, API server, DAG processor; ``--executor celery`` adds two Celery workers on Redis,
``--executor local`` runs the tasks in the scheduler's LocalExecutor processes), a fresh member
database of ``members`` and an empty emulator account (production limits: 4 requests a second), so
the run creates every member in Constant Contact. Unpausing the sync starts its scheduled run; the
figures are that run's duration (the scheduler's start to end) and the peak memory of each worker
while it ran: PSS (pages shared between forked processes counted once) of a Celery worker's whole
process tree, or of the scheduler's tree for the LocalExecutor, sampled every half second.

`make bench` measures the issue's million (about an hour for both executors on this machine;
``--quick`` 10,000); ``python -m include.airflow_env python -m bench.bench_celery --members N``
any other size (100,000: README "Benchmarks").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "CC_SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RUN_TIMEOUT_SECONDS = 3 * 3600.0
SAMPLE_EVERY_SECONDS = 0.5


def _tree_pss(root: psutil.Process) -> int:
    """Bytes of PSS of ``root`` and its descendants (0 for a process gone meanwhile)."""
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _workers(stack: psutil.Process, executor: str) -> dict[str, psutil.Process]:
    """The processes whose trees run tasks: each Celery worker, or the LocalExecutor's scheduler."""
    from include.airflow_celery import WORKERS

    found: dict[str, psutil.Process] = {}
    for proc in stack.children():
        command = " ".join(proc.cmdline())
        worker = next((name for name in WORKERS if f"--celery-hostname {name}@" in command), None)
        if executor == "celery" and worker:
            found[worker] = proc
        elif executor == "local" and command.endswith("airflow scheduler"):
            found["scheduler"] = proc
    return found


class PeakSampler(threading.Thread):
    """Samples each worker tree's PSS until stopped; keeps the peak of each."""

    def __init__(self, workers: dict[str, psutil.Process]) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.peaks = dict.fromkeys(workers, 0)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_EVERY_SECONDS):
            for name, proc in self.workers.items():
                self.peaks[name] = max(self.peaks[name], _tree_pss(proc))


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "CC_SYNC"))}


def member_database(members: int, folder: Path) -> Path:
    """A SQLite member database of ``members`` sample members, generated once for every executor."""
    path = folder / f"members_{members}.db"
    if not path.exists():
        partial = path.with_suffix(".partial")
        subprocess.run(
            [sys.executable, "-m", "include.sample_data", "--members", str(members), "--db-url",
             f"sqlite:///{partial}"],
            cwd=PROJECT_ROOT, env=_clean_env(), check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        partial.rename(path)
    return path


def initial_sync(executor: str, members_db: Path) -> dict[str, Any]:
    """Seconds of one initial sync of the members in ``members_db`` under ``executor``, and each
    worker's peak PSS (MB); the database is copied, so every executor starts from the same members."""
    import sqlalchemy as sa

    from include.airflow_ui import SYNC_DAG_ID, AirflowApi, unpause
    from include.cc_emulator.testing import free_port

    work = Path(tempfile.mkdtemp(prefix=f"ccsync-bench-{executor}-"))
    var_dir = work / "var"
    var_dir.mkdir()
    database = f"ccsync_bench_{executor}_{uuid.uuid4().hex[:8]}"
    metadata_db = sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg2", database=database)
    env = _clean_env()
    port = free_port()
    env |= {
        "CC_SYNC_VAR_DIR": str(var_dir),
        "AIRFLOW_HOME": str(work / "airflow"),
        "CC_SYNC_AIRFLOW_PORT": str(port),
        "CC_SYNC_LOG_SERVER_PORT": str(free_port()),
        "CC_SYNC_CELERY_METADATA_DB": metadata_db.render_as_string(hide_password=False),
        "CC_SYNC_CELERY_QUEUE": f"cc_sync_bench_{uuid.uuid4().hex[:8]}",
        "CC_SYNC_TASK_RETRIES": "0",
    }
    # The members before the stack starts: an existing member database gets no seeded contacts, so
    # the sync's first run creates every member in the empty account.
    shutil.copyfile(members_db, var_dir / "members.db")
    command = [sys.executable, "-m", "include.airflow_env", "python", "-m", "include.airflow_celery",
               "--executor", executor, "--emulator-port", str(free_port())]  # fmt: skip
    with (work / "stack.log").open("w") as log:
        stack = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while "is up" not in (work / "stack.log").read_text():
            if stack.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {executor} stack did not start; see {work / 'stack.log'}")
            time.sleep(2)
        api = AirflowApi(f"http://127.0.0.1:{port}")
        password = json.loads((work / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        token = api.token(password["admin"])
        sampler = PeakSampler(_workers(psutil.Process(stack.pid), executor))
        sampler.start()
        unpause(api, token, SYNC_DAG_ID)  # starts the latest scheduled run: the initial sync
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while True:
            runs = api.call(token, "GET", f"/dags/{SYNC_DAG_ID}/dagRuns")["dag_runs"]
            if runs and runs[0]["state"] in ("success", "failed"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {executor} run did not finish in {RUN_TIMEOUT_SECONDS:.0f} s")
            time.sleep(2)
        sampler.done.set()
        sampler.join()
        run = runs[0]
        if run["state"] != "success":
            raise RuntimeError(f"the {executor} run {run['dag_run_id']} {run['state']}; see {work}")
        started, ended = (_parse(run[key]) for key in ("start_date", "end_date"))
        return {
            "seconds": round(ended - started, 1),
            "peak_pss_mb": {name: round(peak / 2**20) for name, peak in sampler.peaks.items()},
        }
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=180)
        except subprocess.TimeoutExpired:
            stack.kill()
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        admin.dispose()


def _parse(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def run(
    results: dict[str, Any],
    *,
    quick: bool = False,
    members: int | None = None,
    executors: tuple[str, ...] = ("celery", "local"),
    members_folder: Path | None = None,
) -> None:
    """Adds each executor's figures to ``results`` as soon as its run ends, so a later executor's
    failure (or a time limit) does not lose an earlier one's."""
    members = members or (10_000 if quick else 1_000_000)
    # Kept between runs, like the member-DB benchmark's tables: a million members take minutes.
    folder = members_folder or PROJECT_ROOT / "var" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    members_db = member_database(members, folder)
    for executor in executors:
        figures = initial_sync(executor, members_db)
        results[f"initial_sync_{members}_{executor}_seconds"] = figures["seconds"]
        for worker, megabytes in figures["peak_pss_mb"].items():
            results[f"initial_sync_{members}_{executor}_{worker}_peak_pss_mb"] = megabytes
        print(json.dumps({executor: figures}), flush=True)


if __name__ == "__main__":  # python -m bench.bench_celery [--members N]: print the figures
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--executor", action="append", choices=("celery", "local"),
                        help="repeat for several (default: celery, then local)")  # fmt: skip
    parser.add_argument("--members-folder", type=Path,
                        help="where the generated members are kept (default var/bench)")  # fmt: skip
    arguments = parser.parse_args()
    figures: dict[str, Any] = {}
    run(
        figures,
        members=arguments.members,
        executors=tuple(arguments.executor or ("celery", "local")),
        members_folder=arguments.members_folder,
    )
    print(json.dumps(figures, indent=1))
