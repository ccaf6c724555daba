"""The send-list DAG holds the sync's lease through the same module: after a sync killed holding
it, a send takes it over within minutes and completes."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from cc_sync.sync import lease
from cc_sync.timeutil import utcnow
from tests.send_list.conftest import SendWorld

pytestmark = pytest.mark.slow

KILLED_SYNC = "scheduled__2026-12-01T03:00:00+00:00"
EVERYONE = [{"field": "email", "op": "not_null"}]


def test_a_send_after_a_killed_sync_takes_the_lease_over_and_completes(
    world: SendWorld, caplog: pytest.LogCaptureFixture
) -> None:
    assert lease.acquire(world.bookkeeping, KILLED_SYNC)
    with world.bookkeeping.engine.begin() as conn:
        # The sync was killed 11 minutes ago: its last renewal's lease ran out a minute ago.
        conn.execute(world.bookkeeping.lease.update().values(expires_at=utcnow() - timedelta(minutes=1)))

    with caplog.at_level(logging.WARNING, logger=lease.__name__):
        run = world.send(filter=EVERYONE, list="After the crash", mode="create_new")

    assert run["state"] == "success", run["tasks"]
    assert run["counts"]["sent"] > 0
    takeover = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Took over")]
    assert len(takeover) == 1, caplog.text
    assert KILLED_SYNC in takeover[0]
    after = lease.current(world.bookkeeping)
    assert after.holder == run["run_id"]
    assert after.acquired_at is None, "the send released it"
