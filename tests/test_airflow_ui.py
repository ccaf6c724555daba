"""`make airflow` end to end: airflow standalone (scheduler, dag-processor, API server,
LocalExecutor) with the three DAGs, driven through the REST calls the UI's trigger form makes.

It runs in its own folders and ports, so it never touches the developer's var/ or .airflow/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from include.airflow_env import PROJECT_ROOT
from include.airflow_ui import ACTIVITY_DAG_ID, SEND_LIST_DAG_ID, SYNC_DAG_ID
from include.cc_emulator.testing import free_port
from tests.stack import check_then_sigterm, log_tails

pytestmark = pytest.mark.slow


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment: none of the tests' Airflow or sync settings (a throw-away home, task
    retries off) leak in; its own var/ folder, Airflow home and port."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "CC_SYNC"))}
    return env | {
        "CC_SYNC_VAR_DIR": str(tmp_path / "var"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "CC_SYNC_AIRFLOW_PORT": str(free_port()),
    }


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "include.airflow_env", "python", "-m", "include.airflow_ui",
            "--emulator-port", str(free_port()), *args]  # fmt: skip


@pytest.mark.timeout(1500)
def test_the_three_dags_run_from_the_trigger_form_and_sigterm_then_stops_everything(tmp_path: Path) -> None:
    """One airflow standalone (starting one costs minutes here): the checks of ``--check``, then,
    kept running, a SIGTERM (a service manager's stop) must stop Airflow's tree and the emulator."""
    stack = check_then_sigterm(
        _command("--check", "--keep-running"),
        _isolated_env(tmp_path),
        logs=lambda: log_tails([tmp_path / "var" / "airflow-standalone.log"], 3000),
        stop_timeout=180,
    )
    stack.assert_checks_passed()
    for dag_id in (SYNC_DAG_ID, SEND_LIST_DAG_ID, ACTIVITY_DAG_ID):
        (line,) = [line for line in stack.checks if line.startswith(f"Check run of {dag_id} ")]
        assert line.rstrip().endswith(": success"), line
    assert len(stack.tree) >= 4  # the emulator, airflow standalone and its components
    stack.assert_stopped_everything()


def test_keep_running_goes_with_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "include.airflow_ui", "--keep-running"], cwd=PROJECT_ROOT, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--keep-running goes with --check" in result.stderr
