"""``make airflow EXECUTOR=celery``: the project on a distributed Airflow, on this machine.

What `make airflow` runs in one ``airflow standalone``, split as a deployment of several machines
splits it: Redis (127.0.0.1:6379) as the Celery broker, PostgreSQL as the metadata database (a
database of its own, created if missing) and Celery's result backend, and each component its own
process: a scheduler (CeleryExecutor), an API server, a DAG processor and two Celery workers (one
task slot each, each with its own log server port and task-instance hostname, ``worker-1`` and
``worker-2``). Before them: the emulator, the demo member database, ``airflow db migrate`` and the
connections and pool of airflow_settings.yaml. Ctrl-C or SIGTERM stops every process tree.

The workers share only what workers of a real deployment share: the metadata DB, the broker, the
member database and the hook's state database (the rotating token, the rate limiter, the day's
count), the XCom folder, the Fernet key and the JWT secret (include/airflow_env.py). On one machine
the SQLite files and the local XCom folder serve; README "Run on several workers" says what each
becomes on several.

``--check`` then does through the REST API what :mod:`include.airflow_ui` checks, for the distributed
case: unpause the sync (the scheduler starts its latest run at once, which takes the lease), backfill
the sync over the days before it while that run holds the lease, trigger a send-list, and check that
every run succeeded, tasks ran on both workers, the emulator never saw more than 4 requests in a
second, its day count equals the calls the hook recorded, and the backfill's runs wrote nothing twice.

Settings (environment): ``CC_SYNC_CELERY_METADATA_DB`` (:data:`DEFAULT_METADATA_DB`),
``CC_SYNC_CELERY_BROKER`` (``redis://127.0.0.1:6379/0``), ``CC_SYNC_CELERY_QUEUE`` (``cc_sync``).
Must run with the project's Airflow settings:
``python -m include.airflow_env python -m include.airflow_celery``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from include import airflow_env
from include.airflow_env import PROJECT_ROOT, VAR_DIR
from include.airflow_ui import (
    SEND_LIST_DAG_ID,
    SYNC_DAG_ID,
    AirflowApi,
    AirflowUiError,
    CheckedRun,
    RunState,
    add_check_options,
    admin_password,
    announce_kept_running,
    check_segment,
    checks_outcome,
    create_backfill,
    emulator_running,
    failed_task_log,
    parse_check_options,
    password_file,
    prepare_member_database,
    send_list_conf,
    stop_standalone,
    trigger_and_wait,
    unpause,
)

WORKERS = ("worker-1", "worker-2")
DEFAULT_METADATA_DB = "postgresql+psycopg2://postgres@127.0.0.1:5432/ccsync_airflow"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "cc_sync"
# Constant Contact's limit per application, which the hook's shared limiter holds across workers.
REQUESTS_PER_SECOND = 4
STARTUP_TIMEOUT_SECONDS = 240.0
RUN_TIMEOUT_SECONDS = 900.0
LOG_DIR = VAR_DIR / "airflow-celery"


def worker_hostname() -> str:
    """``[core] hostname_callable`` of this stack: the worker's name (``$CC_SYNC_WORKER_NAME``), so
    each task instance records which of the two workers on this one machine ran it."""
    from airflow.utils.net import getfqdn

    return os.environ.get("CC_SYNC_WORKER_NAME") or getfqdn()


def celery_env(metadata_db: str, broker: str, queue: str) -> dict[str, str]:
    """Airflow's settings for the CeleryExecutor on ``broker`` with ``metadata_db`` (PostgreSQL,
    psycopg2) as the metadata DB and Celery's result backend."""
    url = metadata_db.split("://", 1)[1]
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
        # Airflow 3 also opens an async engine on the metadata DB (API server, migrations); it
        # would derive postgresql+asyncpg from the URL anyway: said here, with the driver pinned.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"postgresql+asyncpg://{url}",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{url}",
        # Each worker takes one task at a time and no more: tasks spread over both workers.
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "include.airflow_celery.worker_hostname",
    }


def ensure_database(metadata_db: str) -> None:
    """Create the metadata database on its PostgreSQL server if it does not exist yet."""
    import sqlalchemy as sa

    url = sa.make_url(metadata_db)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
            )
            if exists.first() is None:
                conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    finally:
        admin.dispose()


@dataclass
class Component:
    """One Airflow process of the stack, in its own session (Ctrl-C reaches this module only)."""

    name: str
    process: subprocess.Popen[bytes]


def start(name: str, args: list[str], env: dict[str, str] | None = None) -> Component:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).parent / "airflow")
    with (LOG_DIR / f"{name}.log").open("ab") as output:
        process = subprocess.Popen(
            [airflow, *args],
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return Component(name, process)


def start_stack(queue: str, workers: tuple[str, ...] = WORKERS) -> list[Component]:
    """Scheduler, API server, DAG processor and the two Celery workers (each its own free port for
    its log server: two on one machine cannot share one)."""
    from include.cc_emulator.testing import free_port

    components = [
        start("api-server", ["api-server", "--port", os.environ["AIRFLOW__API__PORT"]]),
        start("scheduler", ["scheduler"]),
        start("dag-processor", ["dag-processor"]),
    ]
    for worker in workers:
        worker_env = {
            "CC_SYNC_WORKER_NAME": worker,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }
        args = [
            "celery",
            "worker",
            "--celery-hostname",
            f"{worker}@%h",
            "--queues",
            queue,
            "--concurrency",
            "1",
        ]
        components.append(start(worker, args, worker_env))
    return components


def stop_stack(components: list[Component]) -> None:
    """Every component's whole process tree: Ctrl-C first (a worker's warm shutdown), then terminate,
    then kill. Workers first, so no task is handed out while the scheduler stops."""
    for component in reversed(components):
        stop_standalone(component.process)


def wait_until_healthy(api: AirflowApi, components: list[Component]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not (_healthy(api) and password_file().exists()):
        for component in components:
            if component.process.poll() is not None:
                raise AirflowUiError(
                    f"{component.name} exited with {component.process.returncode}; see {LOG_DIR}"
                )
        if time.monotonic() > deadline:
            raise AirflowUiError(
                f"Airflow was not healthy after {STARTUP_TIMEOUT_SECONDS:.0f} s; see {LOG_DIR}"
            )
        time.sleep(2)


def _healthy(api: AirflowApi) -> bool:
    """The metadata DB, the scheduler and the DAG processor report healthy (no triggerer here)."""
    try:
        answer = requests.get(f"{api.base_url}/api/v2/monitor/health", timeout=5)
    except requests.RequestException:
        return False
    parts = answer.json() if answer.ok else {}
    return all(
        (parts.get(n) or {}).get("status") == "healthy"
        for n in ("metadatabase", "scheduler", "dag_processor")
    )


# ---- --check --------------------------------------------------------------------------------------


def wait_for_runs(api: AirflowApi, token: str, dag_id: str, count: int) -> list[dict[str, Any]]:
    """The DAG's runs once at least ``count`` exist and all have finished."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        runs = api.call(token, "GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
        done = all(run["state"] in (RunState.SUCCESS, RunState.FAILED) for run in runs)
        if (len(runs) >= count and done) or time.monotonic() > deadline:
            return runs
        time.sleep(3)


def wait_for_running(api: AirflowApi, token: str, dag_id: str) -> dict[str, Any]:
    """The DAG's first run once its lease sensor succeeded (it holds the lease)."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for run in api.call(token, "GET", f"/dags/{dag_id}/dagRuns?limit=10")["dag_runs"]:
            tasks = api.call(token, "GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")
            states = {t["task_id"]: t["state"] for t in tasks["task_instances"]}
            if states.get("wait_for_lease") == RunState.SUCCESS:
                return run
        time.sleep(1)
    raise AirflowUiError(f"no run of {dag_id} took the lease")


def busiest_second(times: list[datetime]) -> int:
    """The most requests in any 1-second window (sliding, not per calendar second)."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= timedelta(seconds=1):
            first += 1
        most = max(most, last - first + 1)
    return most


def hostnames(api: AirflowApi, token: str, dag_id: str, run_ids: list[str]) -> dict[str, int]:
    """How many task instances of these runs each worker ran (task instances that ran only)."""
    seen: dict[str, int] = {}
    for run_id in run_ids:
        tasks = api.call(token, "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        for task in tasks:
            if task.get("hostname"):
                seen[task["hostname"]] = seen.get(task["hostname"], 0) + 1
    return seen


def backfill_changes(run_ids: list[str]) -> dict[str, tuple[str, int]]:
    """Each sync run's start (from its record) and the change-log rows it wrote."""
    from cc_sync.member_db.bookkeeping import Bookkeeping
    from cc_sync.member_db.connection import create_member_engine
    from cc_sync.member_db.mapping import load_mapping
    from cc_sync.sync.resources import DEFAULT_MAPPING_PATH
    from include import local_setup

    engine = create_member_engine(f"sqlite:///{local_setup.DEMO_MEMBER_DB}")
    try:
        bookkeeping = Bookkeeping(engine, prefix=load_mapping(DEFAULT_MAPPING_PATH).bookkeeping.table_prefix)
        result = {}
        for run_id in run_ids:
            record = bookkeeping.get_run(run_id) or {}
            result[run_id] = (str(record.get("started_at")), len(bookkeeping.get_changes(run_id)))
        return result
    finally:
        engine.dispose()


def run_checks(api: AirflowApi, emulator_url: str) -> tuple[list[CheckedRun], list[str], dict[str, Any]]:
    """The sync (its scheduled run, and a backfill while that run holds the lease), then a send-list;
    returns the send-list run, what went wrong, and the figures."""
    from include.cc_emulator.testing import EmulatorAdmin

    token = api.token(admin_password())
    problems: list[str] = []
    figures: dict[str, Any] = {}
    unpause(api, token, SEND_LIST_DAG_ID)
    # Unpausing the sync starts its latest scheduled run at once (catchup is off): it takes the lease.
    unpause(api, token, SYNC_DAG_ID)
    holder = wait_for_running(api, token, SYNC_DAG_ID)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    body = {
        "dag_id": SYNC_DAG_ID,
        "from_date": (today - timedelta(days=3)).isoformat(),
        "to_date": (today - timedelta(days=1)).isoformat(),
        "reprocess_behavior": "none",
        "max_active_runs": 1,
        "dag_run_conf": {},
    }
    backfill = create_backfill(api, token, body)
    print(f"Backfill {backfill['id']} of {SYNC_DAG_ID} created while {holder['dag_run_id']} holds the lease")
    sync_runs = wait_for_runs(api, token, SYNC_DAG_ID, 2)
    run_ids = [run["dag_run_id"] for run in sync_runs]
    for run in sync_runs:
        if run["state"] != RunState.SUCCESS:
            problems.append(f"{SYNC_DAG_ID} run {run['dag_run_id']} {run['state']}:\n"
                            f"{failed_task_log(api, token, SYNC_DAG_ID, run['dag_run_id'])}")  # fmt: skip
    backfilled = [run["dag_run_id"] for run in sync_runs if run["run_type"] == "backfill"]
    if not backfilled:
        problems.append(f"the backfill made no run: {[(r['dag_run_id'], r['run_type']) for r in sync_runs]}")
    records = backfill_changes(run_ids)
    figures["sync_runs"] = records
    # The holder caught up; a run after it (the backfill's, queued behind the lease) has nothing to do.
    first = min(records, key=lambda run_id: records[run_id][0])
    twice = {run_id: rows for run_id, (_, rows) in records.items() if run_id != first and rows}
    if twice:
        problems.append(f"runs after the first wrote again (change-log rows): {twice}")

    sent = trigger_and_wait(api, token, SEND_LIST_DAG_ID, send_list_conf(check_segment()), "finish")
    if not sent.succeeded:
        problems.append(f"{SEND_LIST_DAG_ID} run {sent.state}: {sent.tasks}\n"
                        f"{failed_task_log(api, token, SEND_LIST_DAG_ID, sent.run_id)}")  # fmt: skip

    workers = hostnames(api, token, SYNC_DAG_ID, run_ids)
    for host, count in hostnames(api, token, SEND_LIST_DAG_ID, [sent.run_id]).items():
        workers[host] = workers.get(host, 0) + count
    figures["task_instances_per_worker"] = workers
    if not set(WORKERS) <= set(workers):
        problems.append(f"tasks did not land on both workers: {workers}")

    admin = EmulatorAdmin(emulator_url)
    api_times = [
        datetime.fromisoformat(entry["time"])
        for entry in admin.request_log()
        if entry["path"].startswith("/v3")
    ]
    figures["busiest_second"] = busiest_second(api_times)
    if figures["busiest_second"] > REQUESTS_PER_SECOND:
        problems.append(f"the emulator saw {figures['busiest_second']} requests in one second")
    day_count = admin.counters()["quota_used_today"]
    recorded = (sent.summary or {}).get("api_calls_today")
    figures["emulator_day_count"], figures["recorded_calls_today"] = day_count, recorded
    if day_count != recorded:
        problems.append(f"the emulator counted {day_count} calls today, the hook recorded {recorded}")
    return [sent], problems, figures


# ---- main -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def signals_stop() -> Iterator[None]:
    """SIGTERM (a service manager, `timeout`, CI) stops the stack as Ctrl-C does."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    from include import local_setup

    parser = argparse.ArgumentParser(
        prog="python -m include.airflow_celery", description=__doc__.split("\n")[0]
    )
    add_check_options(parser, checks="the sync, a backfill and a send list")
    parser.add_argument("--emulator-port", type=int, default=local_setup.DEFAULT_EMULATOR_PORT)
    parser.add_argument(
        "--executor",
        choices=("celery", "local"),
        default="celery",
        help="local: the same stack on the scheduler's LocalExecutor, no Celery worker (for bench_celery)",
    )
    args = parse_check_options(parser, argv)
    metadata_db = os.environ.get("CC_SYNC_CELERY_METADATA_DB") or DEFAULT_METADATA_DB
    queue = os.environ.get("CC_SYNC_CELERY_QUEUE") or DEFAULT_QUEUE
    if args.executor == "local":
        os.environ["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    for key, value in celery_env(
        metadata_db, os.environ.get("CC_SYNC_CELERY_BROKER") or DEFAULT_BROKER, queue
    ).items():
        os.environ.setdefault(key, value)
    airflow_env.apply()
    api = AirflowApi(os.environ["AIRFLOW__API__BASE_URL"])
    if _healthy(api):
        print(f"An Airflow already answers on {api.base_url}; stop it first.", file=sys.stderr)
        return 1
    components: list[Component] = []
    checked: int | None = None  # the checks' exit code, once they ran
    with signals_stop(), emulator_running(args.emulator_port) as emulator_url:
        try:
            print(f"Constant Contact emulator on {emulator_url}")
            print(f"Member database {local_setup.DEMO_MEMBER_DB}: {prepare_member_database(emulator_url)}")
            ensure_database(metadata_db)
            local_setup.migrate_airflow_db()
            local_setup.import_settings_into_airflow(emulator_url)
            components = start_stack(queue, WORKERS if args.executor == "celery" else ())
            wait_until_healthy(api, components)
            running = (
                f"CeleryExecutor, workers {', '.join(WORKERS)}"
                if args.executor == "celery"
                else "LocalExecutor"
            )
            print(f"Airflow ({running}) is up: {api.base_url}")
            print(f"  log in as 'admin'; the password is in {password_file()}")
            print(f"  each component's output: {LOG_DIR}\nCtrl-C stops Airflow and the emulator.", flush=True)
            if args.check:
                _runs, problems, figures = run_checks(api, emulator_url)
                print(f"Figures: {json.dumps(figures, default=str)}")
                checked = checks_outcome(problems)
                if not args.keep_running:
                    return checked
                announce_kept_running()
            while all(component.process.poll() is None for component in components):
                time.sleep(2)
            print("A component exited; stopping the others.", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nStopping Airflow and the emulator ...")
            if args.check:
                return 130 if checked is None else checked
            return 0
        except AirflowUiError as error:
            print(f"{error}", file=sys.stderr)
            return 1
        finally:
            # A second Ctrl-C or SIGTERM must not cut the stopping short and leave processes behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stop_stack(components)


if __name__ == "__main__":
    sys.exit(main())
