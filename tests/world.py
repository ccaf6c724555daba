"""What the DAG tests' worlds share (tests/dags, tests/send_list, tests/activity).

A world is a member database on one dialect, the Constant Contact emulator, the connections to
both, and one of the project's DAGs (from the session's single parse of dags/, the ``dag_bag``
fixture of tests/conftest.py). :class:`World` holds them with the helpers that look at either side;
:class:`Connections` points the connections at a world's database and disposes of its engines after
the test. Each package's conftest keeps only its DAG's part: its conf, its run method, its seeding.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from cc_sync.constant_contact.state import dispose_engines
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.timeutil import utcnow
from include import sync_world
from include.cc_emulator.testing import EmulatorHandle
from include.sample_data import generate_members, write_members
from tests.ci import in_ci
from tests.snapshots import Snapshot, WorldSnapshots, dialect_of
from tests.spec_requests import SPEC_PATH, load_spec, log_problems

# A failed task fails the scenario at once (task retries would only slow the suite down).
# Set when a conftest imports this module, so before the session's DagBag parses the DAGs.
os.environ.setdefault("CC_SYNC_TASK_RETRIES", "0")


def create_members(db_url: str, members: int, *, seed: int = 7) -> None:
    """``sync_world.create_members`` in this process: the sample member table (the same rows as
    ``python -m include.sample_data --members N --seed 7``) and the migrated bookkeeping tables."""
    engine = sa.create_engine(db_url)
    try:
        write_members(engine, generate_members(members, seed=seed))
    finally:
        engine.dispose()
    sync_world.migrate_bookkeeping(db_url)


def default_conf(dag: Any) -> dict[str, Any]:
    """Every param of ``dag`` at its default, from the DAG's own params (call it before any run:
    dag.test(run_conf=...) leaves a run's conf on the DAG object's params)."""
    return copy.deepcopy(dict(dag.params.dump()))


@dataclass
class World:
    """Both sides of one scenario, and the DAG under test."""

    dag: Any
    emulator: EmulatorHandle
    db_url: str
    engine: sa.Engine
    bookkeeping: Bookkeeping

    def _outcome(self, dag_run: Any, **extra: Any) -> dict[str, Any]:
        """A finished dag.test() run: its state, its task states, ``extra``, then its run record."""
        instances = dag_run.get_task_instances()
        states = {ti.task_id: ti.state for ti in instances}
        tries = {ti.task_id: ti.try_number for ti in instances}
        record = self.bookkeeping.get_run(dag_run.run_id) or {}
        return {"state": dag_run.state, "tasks": states, "tries": tries, **extra, **record}

    # ---- member side -----------------------------------------------------------------------

    def member(self, member_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM members WHERE member_id = :id"), {"id": member_id})
            return dict(row.mappings().one())

    def members(self, where: str = "1 = 1") -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(sa.text(f"SELECT * FROM members WHERE {where} ORDER BY member_id"), conn)

    def edit_member(self, member_id: int, at: datetime | None = None, **columns: Any) -> None:
        values = {**columns, "updated_at": (at or utcnow()).replace(tzinfo=None)}
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE members SET {assignments} WHERE member_id = :member_id"),
                         {**values, "member_id": member_id})  # fmt: skip

    def member_opted_out(self, member_id: str) -> bool:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.text("SELECT email_opt_out FROM members WHERE member_id = :id"), {"id": int(member_id)}
            ).scalar_one()
        return bool(value)

    # ---- links and the CC side -------------------------------------------------------------

    def links(self) -> pd.DataFrame:
        return self.bookkeeping.get_links()

    def linked_member_ids(self) -> list[int]:
        return sorted(int(m) for m in self.links()["member_id"])

    def reviews(self, kind: str | None = None) -> pd.DataFrame:
        return self.bookkeeping.list_open_reviews(kind)

    def contact_of(self, member_id: int) -> dict[str, Any]:
        links = self.links()
        contact_id = links.loc[links["member_id"] == str(member_id), "contact_id"]
        assert len(contact_id) == 1, f"member {member_id} is not linked"
        return self.emulator.admin.get_contact(str(contact_id.iloc[0]))

    def contact_by_email(self, email: str) -> dict[str, Any] | None:
        key = email.strip().lower()
        found = [
            c for c in self.emulator.admin.all_contacts() if c["email_address"]["address"].lower() == key
        ]
        return found[0] if found else None

    def list_id(self, name: str) -> str:
        found = [item for item in self.emulator.admin.all_lists() if item["name"] == name]
        assert len(found) == 1, f"expected one list named {name!r}, found {len(found)}"
        return found[0]["list_id"]

    def list_contacts(self, name: str) -> list[dict[str, Any]]:
        list_id = self.list_id(name)
        return [c for c in self.emulator.admin.all_contacts() if list_id in c.get("list_memberships", [])]


class Connections:
    """The connections of a test's worlds, and the engines to dispose of when the test ends.

    ``with Connections(emulator, monkeypatch, tmp_path) as connections: ...`` in a world_factory
    fixture; ``connections.open(db_url)`` sets the environment's connections (member database,
    emulator, CC state in ``tmp_path``) through ``monkeypatch`` and returns an engine on ``db_url``.
    """

    def __init__(self, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.emulator = emulator
        self.monkeypatch = monkeypatch
        self.state_url = f"sqlite:///{tmp_path / 'cc_state.db'}"
        self.engines: list[sa.Engine] = []

    def disconnect(self) -> None:
        """Close every pooled connection (the engines stay usable and reconnect when next used)."""
        for engine in self.engines:
            engine.dispose()
        dispose_engines()

    def from_snapshot(
        self,
        snapshots: WorldSnapshots,
        key: tuple[Any, ...],
        db_url: str,
        build: Any,
    ) -> Snapshot:
        """Make ``db_url``, the emulator and the CC state hold the world saved under
        ``(dialect_of(db_url), *key)``; build it with ``build()`` (then save it) the first time.

        ``build()`` fills ``db_url`` and the emulator and returns the snapshot's ``extra``.
        """
        full_key = (dialect_of(db_url), *key)
        snapshot = snapshots.get(full_key)
        if snapshot is None:
            extra = build()
            snapshot = snapshots.save(
                full_key,
                db_url=db_url,
                emulator=self.emulator,
                cc_state_url=self.state_url,
                extra=extra,
                before_copy=self.disconnect,
            )
        else:
            self.disconnect()
            snapshots.restore(snapshot, db_url=db_url, emulator=self.emulator, cc_state_url=self.state_url)
        return snapshot

    def open(self, db_url: str) -> sa.Engine:
        for key, value in sync_world.connection_env(self.emulator, db_url, self.state_url).items():
            self.monkeypatch.setenv(key, value)
        engine = sa.create_engine(db_url)
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()
        dispose_engines()

    def __enter__(self) -> Connections:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        if exc_type is None:
            check_requests_against_spec(self.emulator)


def check_requests_against_spec(emulator: EmulatorHandle) -> None:
    """Fail the scenario when any /v3 request in the emulator's log breaks the official spec.

    Runs when each DAG scenario's world is torn down (sync, send-list, activity), over every request
    the DAG and the world's set-up sent, so the hook cannot drift from the real API unnoticed."""
    if load_spec() is None:
        if in_ci():
            pytest.fail(f"CI=true and the official Constant Contact spec is not at {SPEC_PATH}")
        return
    problems = log_problems(emulator.admin.request_log())
    if problems:
        shown = "\n".join(dict.fromkeys(problems))
        pytest.fail(f"requests the emulator received break the v3 spec:\n{shown[:4000]}", pytrace=False)
