"""One `airflow standalone` for every browser test, as `make airflow` starts it, in its own folders
and port: starting one costs minutes on this machine, so the tests share it (package scope) and
each reads or counts only what it made itself. tests/conftest.py keeps this package's tests on one
xdist worker, one after another."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from include.airflow_env import PROJECT_ROOT
from tests.ci import skip_or_fail
from tests.test_airflow_ui import _command, _isolated_env

RUN_TIMEOUT = 400.0


@pytest.fixture(scope="package")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`make airflow`; yields its URL, the admin's password and its var/ folder (the demo member DB)."""
    home = tmp_path_factory.mktemp("browser-airflow")
    env = _isolated_env(home)
    process = subprocess.Popen(
        _command(), cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = None
        output = []
        for line in process.stdout or []:
            output.append(line)
            if line.startswith("Airflow is up: "):
                url = line.removeprefix("Airflow is up: ").strip()
                break
        assert url, "".join(output)
        passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        yield {"url": url, "password": json.loads(passwords.read_text())["admin"], "var": home / "var"}
    finally:
        process.terminate()  # the script stops Airflow's process tree and the emulator on SIGTERM
        try:
            process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def chromium() -> str:
    """Debian's chromium; missing, the test skips with the reason (and fails under CI=true)."""
    found = shutil.which("chromium")
    if found is None:
        skip_or_fail("Debian's chromium is not installed: run `make browser`")
    return str(found)


def api_headers(airflow: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The REST API's base URL and an admin's bearer token for it."""
    token = requests.post(
        f"{airflow['url']}/auth/token",
        json={"username": "admin", "password": airflow["password"]},
        timeout=30,
    ).json()["access_token"]
    return f"{airflow['url']}/api/v2", {"Authorization": f"Bearer {token}"}
