"""A member-side configuration error fails the sync's first task once, before any Constant Contact
call: the mapping is checked against the database first, and a database that cannot be reached
fails the lease sensor and the teardown at once instead of retrying them for minutes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from include.cc_emulator.testing import free_port
from tests.dags.conftest import SyncWorld


def _cc_requests(world: SyncWorld) -> list[dict[str, Any]]:
    """Every request the emulator served to the sync (API and token endpoint), not the test's own."""
    return [entry for entry in world.emulator.admin.request_log() if not entry["path"].startswith("/_admin")]


def _retrying(world: SyncWorld, monkeypatch: pytest.MonkeyPatch, *task_ids: str) -> None:
    """Give the tasks the retries a deployment has: a configuration error must not use them."""
    for task_id in task_ids:
        monkeypatch.setattr(world.dag.get_task(task_id), "retries", 2)
        monkeypatch.setattr(world.dag.get_task(task_id), "retry_delay", timedelta(0))


def test_a_missing_mapped_column_fails_the_first_task_once_before_any_cc_call(
    world: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _retrying(world, monkeypatch, "wait_for_lease")
    with world.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE members DROP COLUMN job_title"))
    before = len(_cc_requests(world))

    run = world.sync()

    assert run["state"] == "failed"
    assert run["tasks"]["wait_for_lease"] == "failed"
    assert run["tries"]["wait_for_lease"] == 1
    assert run["tasks"]["open_window"] == "upstream_failed"
    assert len(_cc_requests(world)) == before


def test_an_unreachable_member_database_fails_the_sensor_and_the_teardown_at_once(
    world: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _retrying(world, monkeypatch, "wait_for_lease", "finish")
    unreachable = f"postgresql+psycopg://sync:pw@127.0.0.1:{free_port()}/members"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEMBER_DB_DEFAULT",
        json.dumps({"conn_type": "member_database", "extra": {"sqlalchemy_url": unreachable}}),
    )
    before = len(_cc_requests(world))

    run = world.sync()

    assert run["state"] == "failed"
    assert run["tasks"]["wait_for_lease"] == "failed"
    assert run["tries"]["wait_for_lease"] == 1
    assert run["tasks"]["finish"] == "failed"
    assert run["tries"]["finish"] == 1
    assert len(_cc_requests(world)) == before
