"""`make airflow` end to end: airflow standalone (scheduler, dag-processor, API server,
LocalExecutor) with the three DAGs, driven through the REST calls the UI's trigger form makes.

It runs in its own folders and ports, so it never touches the developer's var/ or .airflow/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from include.airflow_env import PROJECT_ROOT
from include.airflow_ui import ACTIVITY_DAG_ID, SEND_LIST_DAG_ID, SYNC_DAG_ID
from include.cc_emulator.testing import free_port

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
def test_the_three_dags_run_from_the_trigger_form_under_the_scheduler(tmp_path: Path) -> None:
    result = subprocess.run(
        _command("--check"), cwd=PROJECT_ROOT, env=_isolated_env(tmp_path), capture_output=True, text=True,
        timeout=1400,
    )  # fmt: skip

    log = tmp_path / "var" / "airflow-standalone.log"
    tail = log.read_text()[-3000:] if log.exists() else "(no standalone log)"
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}\n{tail}"
    for dag_id in (SYNC_DAG_ID, SEND_LIST_DAG_ID, ACTIVITY_DAG_ID):
        (line,) = [line for line in result.stdout.splitlines() if line.startswith(f"Check run of {dag_id} ")]
        assert line.endswith(": success")
    assert "PROBLEM" not in result.stderr


@pytest.mark.timeout(600)
def test_sigterm_stops_airflow_and_the_emulator_and_leaves_no_process(tmp_path: Path) -> None:
    process = subprocess.Popen(
        _command(), cwd=PROJECT_ROOT, env=_isolated_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output = []
        for line in process.stdout or []:
            output.append(line)
            if line.startswith("Airflow is up"):
                break
        assert any(line.startswith("Airflow is up") for line in output), "".join(output)
        tree = psutil.Process(process.pid).children(recursive=True)
        assert len(tree) >= 4  # the emulator, airflow standalone and its components

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=180)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert "Stopping Airflow and the emulator" in rest, rest[-3000:]
    assert process.returncode == 0
    time.sleep(1)
    left = [proc for proc in tree if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"still running {time.monotonic() - started:.0f} s after SIGTERM: {left}"
