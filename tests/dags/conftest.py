"""A world for the sync DAG's scenarios: a member database on each dialect, the emulator seeded with
overlapping contacts, connections to both, and helpers to run the DAG with dag.test() and look at
either side afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from cc_sync.constant_contact.state import dispose_engines
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.timeutil import utcnow
from include import sync_world
from include.airflow_env import PROJECT_ROOT
from include.cc_emulator.testing import EmulatorHandle

# A failed task fails the scenario at once (task retries would only slow the suite down).
os.environ.setdefault("CC_SYNC_TASK_RETRIES", "0")

DAG_ID = "constant_contact_sync"
MEMBERS = 60
# Every run gets every param: dag.test(run_conf=...) leaves a run's conf on the DAG object's params,
# so a later run without conf would inherit, say, dry_run from an earlier one.
DEFAULT_CONF: dict[str, Any] = {
    "dry_run": False,
    "full_reconcile": False,
    "allow_mass_change": False,
    "max_change_share": 0.25,
    "reset_watermark_to": None,
}


@pytest.fixture(scope="session")
def sync_dag(airflow_db: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(DAG_ID)


@dataclass
class SyncWorld:
    """Both sides of one scenario, and the DAG that keeps them in step."""

    dag: Any
    emulator: EmulatorHandle
    db_url: str
    engine: sa.Engine
    bookkeeping: Bookkeeping
    runs: list[dict[str, Any]] = field(default_factory=list)

    def sync(self, **conf: Any) -> dict[str, Any]:
        """Run the DAG once; return its run record (status, counts) and remember it."""
        dag_run = self.dag.test(run_conf={**DEFAULT_CONF, **conf})
        states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
        record = self.bookkeeping.get_run(dag_run.run_id) or {}
        result = {"state": dag_run.state, "tasks": states, "run_id": dag_run.run_id, **record}
        self.runs.append(result)
        return result

    # ---- member side -----------------------------------------------------------------------

    def member(self, member_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM members WHERE member_id = :id"), {"id": member_id})
            return dict(row.mappings().one())

    def edit_member(self, member_id: int, at: datetime | None = None, **columns: Any) -> None:
        values = {**columns, "updated_at": (at or utcnow()).replace(tzinfo=None)}
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE members SET {assignments} WHERE member_id = :member_id"),
                         {**values, "member_id": member_id})  # fmt: skip

    # ---- links and the CC side -------------------------------------------------------------

    def links(self) -> pd.DataFrame:
        return self.bookkeeping.get_links()

    def contact_of(self, member_id: int) -> dict[str, Any]:
        links = self.links()
        contact_id = links.loc[links["member_id"] == str(member_id), "contact_id"]
        assert len(contact_id) == 1, f"member {member_id} is not linked"
        return self.emulator.admin.get_contact(str(contact_id.iloc[0]))

    def linked_member_ids(self) -> list[int]:
        return sorted(int(m) for m in self.links()["member_id"])

    def reviews(self, kind: str | None = None) -> pd.DataFrame:
        return self.bookkeeping.list_open_reviews(kind)


@pytest.fixture
def world_factory(
    sync_dag: Any,
    emulator: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Any]:
    """``world_factory(db_url)`` -> a seeded :class:`SyncWorld` on that member database."""
    worlds: list[SyncWorld] = []

    def make(db_url: str, members: int = MEMBERS, **seed: Any) -> SyncWorld:
        sync_world.create_members(db_url, members)
        sync_world.seed_contacts_from_members(emulator, db_url, cc_only=5, **seed)
        state = f"sqlite:///{tmp_path / 'cc_state.db'}"
        for key, value in sync_world.connection_env(emulator, db_url, state).items():
            monkeypatch.setenv(key, value)
        engine = sa.create_engine(db_url)
        world = SyncWorld(sync_dag, emulator, db_url, engine, Bookkeeping(engine))
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.engine.dispose()
    dispose_engines()


@pytest.fixture
def world(world_factory: Any, database_url: str) -> SyncWorld:
    """A seeded world on each dialect (SQLite, PostgreSQL, MariaDB), before its first sync."""
    return world_factory(database_url)
