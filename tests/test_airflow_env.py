"""make airflow's ports and process settings (include/airflow_env.py): what a user can move, and
what a deployment of several machines sets for all of them (the XCom path, Fernet key, JWT secret)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.airflow_env import SHARED_SETTINGS, airflow_env, env_name


def test_ports_follow_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC_SYNC_AIRFLOW_PORT", "9090")
    monkeypatch.setenv("CC_SYNC_LOG_SERVER_PORT", "9793")

    env = airflow_env()

    assert env["AIRFLOW__API__PORT"] == "9090"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    # Workers reach the execution API through base_url: it must follow the port.
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:9090"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "9793"
    assert env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == "9794"


def test_parallelism_is_sized_to_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC_SYNC_PARALLELISM", raising=False)
    assert int(airflow_env()["AIRFLOW__CORE__PARALLELISM"]) == max(2, os.cpu_count() or 2)
    monkeypatch.setenv("CC_SYNC_PARALLELISM", "6")
    assert airflow_env()["AIRFLOW__CORE__PARALLELISM"] == "6"


SHARED = [pytest.param(section, key, id=f"{section}.{key}") for section, key in SHARED_SETTINGS]


@pytest.fixture
def deployment_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AIRFLOW_HOME outside the project that sets none of the shared settings (the test
    session's own Airflow settings removed from the environment)."""
    home = tmp_path / "airflow-home"
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    monkeypatch.delenv("AIRFLOW_CONFIG", raising=False)
    for section, key in SHARED_SETTINGS:
        for form in (key, f"{key}_cmd", f"{key}_secret"):
            monkeypatch.delenv(env_name(section, form), raising=False)
    return home


def test_local_defaults_live_under_airflow_home_not_the_project(deployment_home: Path) -> None:
    env = airflow_env()

    assert env["AIRFLOW_HOME"] == str(deployment_home)
    assert env["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH"] == f"file://{deployment_home / 'xcom'}"
    assert (deployment_home / "fernet.key").read_text() == env["AIRFLOW__CORE__FERNET_KEY"]
    assert (deployment_home / "jwt_secret").read_text() == env["AIRFLOW__API_AUTH__JWT_SECRET"]
    # Secrets readable by their owner only, and made once: every later process gets the same.
    assert (deployment_home / "fernet.key").stat().st_mode & 0o077 == 0
    assert (deployment_home / "jwt_secret").stat().st_mode & 0o077 == 0
    assert airflow_env() == env
    Fernet(env["AIRFLOW__CORE__FERNET_KEY"].encode())  # a valid key


@pytest.mark.parametrize("form", ["", "_cmd", "_secret"])
@pytest.mark.parametrize(("section", "key"), SHARED)
def test_the_deployments_environment_wins(
    deployment_home: Path, monkeypatch: pytest.MonkeyPatch, section: str, key: str, form: str
) -> None:
    monkeypatch.setenv(env_name(section, key + form), "from-the-deployment")

    env = airflow_env()

    # Not set by the project at all: Airflow reads the deployment's own variable.
    assert env_name(section, key) not in env
    other_defaults = {env_name(s, k) for s, k in SHARED_SETTINGS if (s, k) != (section, key)}
    assert other_defaults <= set(env)


@pytest.mark.parametrize(("section", "key"), SHARED)
def test_the_deployments_airflow_cfg_wins(deployment_home: Path, section: str, key: str) -> None:
    deployment_home.mkdir(parents=True)
    (deployment_home / "airflow.cfg").write_text(f"[{section}]\n{key} = s3://aws_default@bucket/xcom%%\n")

    env = airflow_env()

    # An environment variable would override airflow.cfg: the project must not set one.
    assert env_name(section, key) not in env
    # Nor make a local secret nobody reads.
    local_file = {"fernet_key": "fernet.key", "jwt_secret": "jwt_secret"}.get(key)
    if local_file:
        assert not (deployment_home / local_file).exists()


def test_an_empty_value_in_airflow_cfg_is_no_value(deployment_home: Path) -> None:
    # What Airflow writes into a fresh airflow.cfg when the environment held the Fernet key.
    deployment_home.mkdir(parents=True)
    (deployment_home / "airflow.cfg").write_text(
        "[core]\nfernet_key = \n[common.io]\nxcom_objectstorage_path =\n"
    )

    env = airflow_env()

    assert env["AIRFLOW__CORE__FERNET_KEY"] == (deployment_home / "fernet.key").read_text()
    assert env["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH"].startswith("file://")
