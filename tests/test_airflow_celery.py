"""`make airflow EXECUTOR=celery` end to end (include/airflow_celery.py): the CeleryExecutor on
Redis with two workers, a PostgreSQL metadata database of the test's own, the sync and a send-list
driven through the REST API. In its own folders, ports, database and Celery queue."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.airflow_celery import DEFAULT_BROKER, REQUESTS_PER_SECOND, WORKERS
from include.cc_emulator.testing import free_port
from tests.ci import skip_or_fail
from tests.conftest import POSTGRES_ADMIN_URL, _server_answers
from tests.stack import check_then_sigterm, log_tails

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def metadata_db() -> Iterator[str]:
    """A PostgreSQL database name of the test's own for Airflow's metadata (dropped afterwards);
    the stack creates it."""
    reason = _server_answers(POSTGRES_ADMIN_URL)
    if reason:
        skip_or_fail(f"PostgreSQL does not answer: {reason}")
    name = f"ccsync_airflow_{uuid.uuid4().hex[:10]}"
    server = sa.make_url(POSTGRES_ADMIN_URL)
    yield server.set(drivername="postgresql+psycopg2", database=name).render_as_string(hide_password=False)
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def redis_broker() -> None:
    """The broker the stack uses (127.0.0.1:6379): skipped (failed in CI) when it does not answer."""
    import redis

    try:
        redis.Redis.from_url(DEFAULT_BROKER, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        skip_or_fail(f"Redis does not answer at {DEFAULT_BROKER}: {error}")


def _stack_env(tmp_path: Path, metadata_db: str) -> dict[str, str]:
    """A user's environment (none of the tests' settings), with the stack's own folders, ports,
    metadata database and Celery queue."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "CC_SYNC"))}
    return env | {
        "CC_SYNC_VAR_DIR": str(tmp_path / "var"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "CC_SYNC_AIRFLOW_PORT": str(free_port()),
        "CC_SYNC_LOG_SERVER_PORT": str(free_port()),
        "CC_SYNC_CELERY_METADATA_DB": metadata_db,
        "CC_SYNC_CELERY_QUEUE": f"cc_sync_test_{uuid.uuid4().hex[:8]}",
        # A failure shows at once instead of after two retries 2 minutes apart.
        "CC_SYNC_TASK_RETRIES": "0",
    }


@pytest.mark.timeout(1800)
@pytest.mark.usefixtures("redis_broker")
def test_sync_backfill_and_send_list_on_two_celery_workers_then_sigterm_stops_everything(
    tmp_path: Path, metadata_db: str
) -> None:
    """One stack (starting one costs minutes here): the checks of ``--check``, then, kept running,
    a SIGTERM must stop every component and the emulator."""
    command = [sys.executable, "-m", "include.airflow_env", "python", "-m", "include.airflow_celery",
               "--check", "--keep-running", "--emulator-port", str(free_port())]  # fmt: skip
    logs = tmp_path / "var" / "airflow-celery"
    stack = check_then_sigterm(
        command,
        _stack_env(tmp_path, metadata_db),
        logs=lambda: log_tails(sorted(logs.glob("*.log")), 1500),
        stop_timeout=240,
    )
    stack.assert_checks_passed()
    (line,) = [line for line in stack.checks if line.startswith("Figures: ")]
    figures = json.loads(line.removeprefix("Figures: "))
    # What --check checked, as figures: both workers ran tasks, the limit held across them, the
    # emulator's day count is the hook's, and only the first sync run wrote anything.
    assert set(WORKERS) <= set(figures["task_instances_per_worker"])
    assert figures["busiest_second"] <= REQUESTS_PER_SECOND
    assert figures["emulator_day_count"] == figures["recorded_calls_today"]
    writes = sorted(rows for _, rows in figures["sync_runs"].values())
    assert len(writes) >= 2
    assert writes[-1] > 0
    assert writes[:-1] == [0] * (len(writes) - 1)
    # The emulator, the API server, the scheduler, the DAG processor and both workers, then none.
    assert "cc_emulator" in stack.command_lines
    assert all(f"--celery-hostname {worker}@" in stack.command_lines for worker in WORKERS), (
        stack.command_lines
    )
    stack.assert_stopped_everything()
