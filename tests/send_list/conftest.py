"""A world for the send-list DAG: the sample member table on one dialect, the emulator, the
connections to both (include.sync_world, as the sync DAG's tests build theirs), and a helper that
runs the DAG with dag.test()."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from cc_sync.constant_contact.state import dispose_engines
from cc_sync.member_db.bookkeeping import Bookkeeping
from include import sync_world
from include.airflow_env import PROJECT_ROOT
from include.cc_emulator.testing import EmulatorHandle

# A failed task fails the scenario at once (task retries would only slow the suite down).
os.environ.setdefault("CC_SYNC_TASK_RETRIES", "0")

DAG_ID = "constant_contact_send_list"
MEMBERS = 80
# Every run gets every param: dag.test(run_conf=...) leaves a run's conf on the DAG object's params,
# so a later run without conf would inherit, say, dry_run from an earlier one.
DEFAULT_CONF: dict[str, Any] = {
    "segment": None,
    "filter": [],
    "list": "",
    "mode": "update",
    "dry_run": False,
}


@pytest.fixture(scope="session")
def send_dag(airflow_db: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(DAG_ID)


@dataclass
class SendWorld:
    """The member database, the emulator, and the DAG that sends one to the other."""

    dag: Any
    emulator: EmulatorHandle
    db_url: str
    engine: sa.Engine
    bookkeeping: Bookkeeping
    runs: list[dict[str, Any]] = field(default_factory=list)

    def send(self, **conf: Any) -> dict[str, Any]:
        """Run the DAG once; return its state, task states and run record (status, counts)."""
        dag_run = self.dag.test(run_conf={**DEFAULT_CONF, **conf})
        tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
        record = self.bookkeeping.get_run(dag_run.run_id) or {}
        result = {
            "state": dag_run.state,
            "tasks": {k: ti.state for k, ti in tis.items()},
            "run_id": dag_run.run_id,
            **record,
        }
        self.runs.append(result)
        return result

    def members(self, where: str = "1 = 1") -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(sa.text(f"SELECT * FROM members WHERE {where} ORDER BY member_id"), conn)

    def segment(self, activity: str = "running") -> pd.DataFrame:
        """The members of the mapping's `runners` segment, as SQL sees them (active, not deleted)."""
        return self.members(
            f"favourite_activity = '{activity}' AND membership_status = 'active' AND deleted_at IS NULL"
        )

    def list_id(self, name: str) -> str:
        found = [item for item in self.emulator.admin.all_lists() if item["name"] == name]
        assert len(found) == 1, f"expected one list named {name!r}, found {len(found)}"
        return found[0]["list_id"]

    def list_contacts(self, name: str) -> list[dict[str, Any]]:
        list_id = self.list_id(name)
        return [c for c in self.emulator.admin.all_contacts() if list_id in c.get("list_memberships", [])]

    def contact_by_email(self, email: str) -> dict[str, Any] | None:
        key = email.strip().lower()
        found = [
            c for c in self.emulator.admin.all_contacts() if c["email_address"]["address"].lower() == key
        ]
        return found[0] if found else None

    def links(self) -> pd.DataFrame:
        return self.bookkeeping.get_links()


@pytest.fixture
def world_factory(
    send_dag: Any, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Any]:
    """``world_factory(db_url)`` -> a :class:`SendWorld` with the sample members and an empty CC."""
    worlds: list[SendWorld] = []

    def make(db_url: str, members: int = MEMBERS) -> SendWorld:
        sync_world.create_members(db_url, members)
        state = f"sqlite:///{tmp_path / 'cc_state.db'}"
        for key, value in sync_world.connection_env(emulator, db_url, state).items():
            monkeypatch.setenv(key, value)
        engine = sa.create_engine(db_url)
        world = SendWorld(send_dag, emulator, db_url, engine, Bookkeeping(engine))
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.engine.dispose()
    dispose_engines()


@pytest.fixture
def world(world_factory: Any, sqlite_url: str) -> SendWorld:
    return world_factory(sqlite_url)
