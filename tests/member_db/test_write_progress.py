"""The member-database writes of a sync log their progress: batches into a real database, the
journal in its bookkeeping tables, and a fake clock (10 s at each look) so no test waits."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from cc_sync.engine import SyncPlan
from cc_sync.fields import CONTACT_ID, MEMBER_ID
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.member_db.hook import ROW_VERSION, MemberDatabaseHook
from cc_sync.member_db.migrate import upgrade
from cc_sync.sync import loading
from tests.member_db.test_hook import all_members


def test_member_writes_log_a_progress_line_per_batch_and_a_last_one(
    hook: MemberDatabaseHook, members_url: str, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setattr(loading, "MEMBER_BATCH", 2)  # three batches of the six rows below
    engine = sa.create_engine(members_url)
    upgrade(engine)
    updates = all_members(hook).head(6)[[MEMBER_ID, ROW_VERSION]].assign(job_title="Verger")
    updates[CONTACT_ID] = [f"c{i}" for i in range(6)]
    ticks = iter(range(0, 400, 10))

    with caplog.at_level(logging.INFO, logger="cc_sync.sync.loading"):
        result = loading.load_member_database(
            hook,
            SyncPlan(member_updates=updates),
            journal=loading.Journal(Bookkeeping(engine), "run-w"),
            progress_clock=lambda: next(ticks),
        )
    engine.dispose()

    assert result.counts["member_updates"] == 6
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Member rows written")]
    assert [line.split(" rows, ")[0] for line in lines] == [
        "Member rows written: 2 of 6",
        "Member rows written: 4 of 6",
        "Member rows written: 6 of 6",
        "Member rows written: 6 of 6",  # the last line, when the batches run out
    ]
    assert all("rows/s" in line for line in lines)
