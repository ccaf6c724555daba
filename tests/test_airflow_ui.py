"""`make airflow`'s check end to end: airflow standalone (scheduler, dag-processor, API server,
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

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1500)
def test_the_three_dags_run_from_the_trigger_form_under_the_scheduler(tmp_path: Path) -> None:
    # The tests' own Airflow settings (a throw-away home, port 8080) must not leak into this one.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env |= {
        "CC_SYNC_VAR_DIR": str(tmp_path / "var"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "CC_SYNC_AIRFLOW_PORT": str(free_port()),
    }
    command = [sys.executable, "-m", "include.airflow_env", "python", "-m", "include.airflow_ui", "--check",
               "--emulator-port", str(free_port())]  # fmt: skip

    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1400)

    log = tmp_path / "var" / "airflow-standalone.log"
    tail = log.read_text()[-3000:] if log.exists() else "(no standalone log)"
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{tail}"
    for dag_id in (SYNC_DAG_ID, SEND_LIST_DAG_ID, ACTIVITY_DAG_ID):
        (line,) = [line for line in result.stdout.splitlines() if line.startswith(f"Check run of {dag_id} ")]
        assert line.endswith(": success")
    assert "PROBLEM" not in result.stderr
