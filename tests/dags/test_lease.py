"""The sync lease under dag.test(): a killed run's lease is taken over within minutes, and a run
that loses its lease to another stops before it writes.

``airflow dags test`` and ``dag.test()`` run every task in one process; killed there, a run never
reaches the teardown that releases the lease. These scenarios leave the lease as such a run does:
taken for a run id, then silent (its expiry in the past), and run the real DAG after it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cc_sync.sync import lease
from cc_sync.sync.resources import DEFAULT_MAPPING_PATH, PROJECT_ROOT, SyncResources
from cc_sync.timeutil import utcnow
from tests.dags.conftest import DEFAULT_CONF, SyncWorld

pytestmark = pytest.mark.slow

KILLED = "manual__2026-12-01T22:14:03.512077+00:00"
INTRUDER = "backfill__2026-12-01T03:00:00+00:00"


def leave_stale(world: SyncWorld, run_id: str, silent_for: timedelta) -> None:
    """The lease as a run killed ``silent_for`` ago leaves it: held, last renewed back then."""
    assert lease.acquire(world.bookkeeping, run_id)
    with world.bookkeeping.engine.begin() as conn:
        conn.execute(
            world.bookkeeping.lease.update()
            .where(world.bookkeeping.lease.c.name == lease.LEASE_NAME)
            .values(expires_at=utcnow() - silent_for + lease.LEASE_TTL)
        )


def runs_started(world: SyncWorld) -> int:
    with world.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(world.bookkeeping.runs)).scalar_one()


@pytest.mark.all_dialects
def test_the_run_after_a_killed_one_takes_the_lease_over_and_completes(
    world: SyncWorld, caplog: pytest.LogCaptureFixture
) -> None:
    # Killed 11 minutes ago: the lease went stale a minute ago (its TTL is 10 minutes), not in 6 hours.
    leave_stale(world, KILLED, timedelta(minutes=11))
    assert lease.holder(world.bookkeeping) is None
    stale_since = lease.current(world.bookkeeping).expires_at

    with caplog.at_level(logging.WARNING, logger=lease.__name__):
        run = world.sync()

    assert run["state"] == "success", run["tasks"]
    assert run["status"] == "success"
    assert run["counts"]["new_links"] > 0
    takeover = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Took over")]
    assert len(takeover) == 1, caplog.text
    assert KILLED in takeover[0]
    assert stale_since.isoformat() in takeover[0]
    after = lease.current(world.bookkeeping)
    assert after.holder == run["run_id"]
    assert after.acquired_at is None, "the run released it"


@pytest.mark.all_dialects
def test_a_live_holder_is_not_taken_over_and_is_waited_for(world: SyncWorld, dag_bag: Any) -> None:
    # Renewed a minute ago: alive. The first task's poke must not take it (poked directly: under
    # dag.test() a reschedule-mode sensor would sleep through its poke interval).
    leave_stale(world, KILLED, timedelta(minutes=1))
    resources = SyncResources(mapping_path=str(DEFAULT_MAPPING_PATH))
    assert not lease.take(resources, "manual__waiting")
    assert lease.holder(world.bookkeeping) == KILLED
    # Both DAGs wait for as long as a renewing run may need, without holding a worker slot.
    for dag_id in ("constant_contact_sync", "constant_contact_send_list"):
        sensor = dag_bag.get_dag(dag_id).get_task("wait_for_lease")
        assert sensor.timeout >= timedelta(hours=12).total_seconds()
        assert sensor.mode == "reschedule"


def test_the_next_run_waits_while_the_holder_is_alive_then_takes_over(
    world_factory: Any, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The holder renewed just now and then died: its lease runs out in 10 seconds. The sensor's
    # first poke is refused and the run waits; the poke after the expiry takes the lease over.
    world = world_factory(sqlite_url)
    leave_stale(world, KILLED, lease.LEASE_TTL - timedelta(seconds=10))
    expires_at = lease.current(world.bookkeeping).expires_at

    triggered = utcnow()
    with caplog.at_level(logging.WARNING, logger=lease.__name__):
        run = world.sync()

    assert triggered < expires_at
    assert run["state"] == "success", run["tasks"]
    takeovers = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Took over")]
    assert len(takeovers) == 1, caplog.text
    assert KILLED in takeovers[0]
    assert run["started_at"] > expires_at, "the run's work began only after the holder's lease ran out"


@pytest.mark.parametrize(
    ("moment", "stopped"),
    [
        # Between two tasks: the next task's renewal on start is refused.
        ("lease taken", "open_window"),
        # Inside an operator's work (CC's contacts being read, slowly): its renewal on the way out
        # is refused, so its result is never handed on.
        ("GET /v3/contact_custom_fields", "extract.contacts"),
    ],
)
def test_a_run_whose_lease_is_taken_over_stops_before_writing(
    world_factory: Any, sqlite_url: str, moment: str, stopped: str
) -> None:
    world = world_factory(sqlite_url)
    if moment != "lease taken":
        world.emulator.admin.set_faults(slow_rate=1.0, slow_seconds=1.0)
    seen: list[str] = []

    def arrived() -> bool:
        if moment == "lease taken":
            return lease.holder(world.bookkeeping) is not None
        return moment in world.emulator.admin.counters()["endpoints"]

    def stall_and_take_over() -> None:
        # At that moment the run goes silent past its TTL (a paused worker, a stalled process) and
        # another run takes the lease over.
        deadline = time.monotonic() + 120
        while not arrived():
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        seen.append(str(lease.holder(world.bookkeeping)))
        with world.bookkeeping.engine.begin() as conn:
            conn.execute(world.bookkeeping.lease.update().values(expires_at=utcnow() - timedelta(seconds=1)))
        assert lease.acquire(world.bookkeeping, INTRUDER)

    intruder = threading.Thread(target=stall_and_take_over)
    intruder.start()
    try:
        run = world.sync()
    finally:
        intruder.join()
        world.emulator.admin.clear_faults()

    assert seen == [run["run_id"]]
    assert run["state"] == "failed"
    assert run["tasks"][stopped] == "failed", run["tasks"]
    for writer in ("load.constant_contact", "load.member_database", "load.record"):
        assert run["tasks"][writer] == "upstream_failed", run["tasks"]
    endpoints = world.emulator.admin.counters()["endpoints"]
    assert not [e for e in endpoints if not e.startswith("GET")], endpoints
    assert world.links().empty
    assert run["tasks"]["finish"] == "success", "the teardown still closes the run"
    assert lease.holder(world.bookkeeping) == INTRUDER, "and leaves the new holder's lease alone"


def test_a_killed_airflow_dags_test_holds_the_lease_for_minutes_only(
    world_factory: Any, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The finding itself: `airflow dags test` killed mid-run, where no teardown runs.
    world = world_factory(sqlite_url)
    world.emulator.admin.set_faults(slow_rate=1.0, slow_seconds=2.0)  # still working when killed
    command = [
        sys.executable,
        "-m",
        "include.airflow_env",
        "airflow",
        "dags",
        "test",
        "constant_contact_sync",
    ]
    command += ["--conf", json.dumps(DEFAULT_CONF)]
    calls_before = world.emulator.admin.counters()["quota_used_today"]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        # Killed once the run has called the API: by then its token exchange is committed. A kill
        # inside the exchange (right after the lease is taken) loses the rotated refresh token, as
        # it would in production (invalid_grant on the next run); not what this test is about.
        while (
            lease.holder(world.bookkeeping) is None
            or not runs_started(world)
            or world.emulator.admin.counters()["quota_used_today"] <= calls_before
        ):
            assert process.poll() is None, "airflow dags test ended before it could be killed"
            assert time.monotonic() < deadline, "airflow dags test never took the lease"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        world.emulator.admin.clear_faults()

    killed = lease.current(world.bookkeeping)
    assert killed.holder is not None
    assert killed.acquired_at is not None, "no teardown ran: the lease was never given back"
    assert killed.expires_at - utcnow() <= timedelta(minutes=10), "minutes, not hours"
    # Ten minutes on (moved back, not waited for), the next run takes the lease over and completes.
    with world.bookkeeping.engine.begin() as conn:
        conn.execute(world.bookkeeping.lease.update().values(expires_at=killed.expires_at - lease.LEASE_TTL))
    with caplog.at_level(logging.WARNING, logger=lease.__name__):
        run = world.sync()
    assert run["state"] == "success", run["tasks"]
    takeovers = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Took over")]
    assert len(takeovers) == 1, caplog.text
    assert killed.holder in takeovers[0]
