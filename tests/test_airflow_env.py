"""make airflow's ports and process settings (include/airflow_env.py): what a user can move."""

from __future__ import annotations

import os

import pytest

from include.airflow_env import airflow_env


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
