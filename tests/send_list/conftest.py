"""A world for the send-list DAG: the sample member table on one dialect, the emulator, the
connections to both (tests/world.py, as the sync DAG's tests build theirs), and a helper that
runs the DAG with dag.test(). The member table is built once per dialect and session, then copied
for each test (tests/snapshots.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cc_sync.member_db.bookkeeping import Bookkeeping
from include.cc_emulator.testing import EmulatorHandle
from tests.snapshots import WorldSnapshots
from tests.world import Connections, World, create_members, default_conf

DAG_ID = "constant_contact_send_list"
MEMBERS = 80
# Every run gets every param: dag.test(run_conf=...) leaves a run's conf on the DAG object's params,
# so a later run without conf would inherit, say, dry_run from an earlier one. Filled from the DAG's
# own params (their defaults, read before any run) by the ``send_dag`` fixture.
DEFAULT_CONF: dict[str, Any] = {}


@pytest.fixture(scope="session")
def send_dag(dag_bag: Any) -> Any:
    dag = dag_bag.get_dag(DAG_ID)
    DEFAULT_CONF.update(default_conf(dag))
    return dag


@dataclass
class SendWorld(World):
    """The member database, the emulator, and the DAG that sends one to the other."""

    runs: list[dict[str, Any]] = field(default_factory=list)

    def send(self, **conf: Any) -> dict[str, Any]:
        """Run the DAG once; return its state, task states and run record (status, counts)."""
        dag_run = self.dag.test(run_conf={**DEFAULT_CONF, **conf})
        result = self._outcome(dag_run, run_id=dag_run.run_id)
        self.runs.append(result)
        return result

    def segment(self, activity: str = "running") -> pd.DataFrame:
        """The members of the mapping's `runners` segment, as SQL sees them (active, not deleted)."""
        return self.members(
            f"favourite_activity = '{activity}' AND membership_status = 'active' AND deleted_at IS NULL"
        )


@pytest.fixture
def world_factory(
    send_dag: Any,
    emulator: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    world_snapshots: WorldSnapshots,
) -> Iterator[Any]:
    """``world_factory(db_url)`` -> a :class:`SendWorld` with the sample members and an empty CC."""
    with Connections(emulator, monkeypatch, tmp_path) as connections:

        def make(db_url: str, members: int = MEMBERS) -> SendWorld:
            def build() -> dict[str, Any]:
                create_members(db_url, members)
                return {}

            connections.from_snapshot(world_snapshots, ("send_list", members), db_url, build)
            engine = connections.open(db_url)
            return SendWorld(send_dag, emulator, db_url, engine, Bookkeeping(engine))

        yield make


@pytest.fixture
def world(world_factory: Any, sqlite_url: str) -> SendWorld:
    return world_factory(sqlite_url)
