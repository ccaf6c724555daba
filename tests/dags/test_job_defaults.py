"""The defaults every job shares (cc_sync.settings.default_args): an owner, a timeout on every
task, and the failure hook a deployment points at its alerting."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cc_sync import settings

FAILURES: list[dict[str, Any]] = []


def record_failure(context: dict[str, Any]) -> None:
    """What CC_SYNC_ON_FAILURE_CALLBACK points at in the test below (as a notifier would be)."""
    FAILURES.append({"task_id": context["ti"].task_id, "exception": str(context.get("exception"))})


def test_every_task_of_every_job_has_the_shared_defaults(dag_bag: Any) -> None:
    # One DAG per file in dags/ (the parse-time test names them), all loaded.
    assert len(dag_bag.dags) == len(list((settings.PROJECT_ROOT / "dags").glob("constant_contact_*.py")))
    for dag in dag_bag.dags.values():
        for t in dag.tasks:
            where = f"{dag.dag_id}.{t.task_id}"
            assert t.owner == settings.DEFAULT_OWNER, where
            assert t.execution_timeout is not None, where
            callbacks = t.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert settings.on_failure in callbacks, where
            # A task returning a dict would otherwise push each key (DataFrames too) again as an XCom.
            assert not getattr(t, "multiple_outputs", False), where


def test_a_failed_task_calls_the_configured_failure_callback(
    dag_bag: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The activity job against an empty member database (no member table, no bookkeeping): its first
    task fails on the configuration check, and the deployment's callback hears of it."""
    monkeypatch.setenv("CC_SYNC_ON_FAILURE_CALLBACK", f"{__name__}:record_failure")
    url = f"sqlite:///{tmp_path / 'unmigrated.db'}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEMBER_DB_DEFAULT",
        json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": url}}),
    )
    FAILURES.clear()
    run = dag_bag.get_dag("constant_contact_activity").test(
        logical_date=datetime(2026, 11, 2, 11, tzinfo=UTC), run_conf={"lookback_days": 0}
    )
    assert run.state == "failed"
    assert FAILURES[0]["task_id"] == "account_summary"
    assert "does not exist in the member database" in FAILURES[0]["exception"]


def test_a_broken_failure_callback_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC_SYNC_ON_FAILURE_CALLBACK", "no_such_module_here:notify")
    settings.on_failure({})  # must not raise: the task's own failure is the one to report
