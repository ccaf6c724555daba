"""A world for the sync DAG's scenarios: a member database on each dialect, the emulator seeded with
overlapping contacts, connections to both, and helpers to run the DAG with dag.test() and look at
either side afterwards (the shared ones in tests/world.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cc_sync.member_db.bookkeeping import Bookkeeping
from include import sync_world
from include.cc_emulator.testing import EmulatorHandle
from tests.world import Connections, World

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
def sync_dag(dag_bag: Any) -> Any:
    return dag_bag.get_dag(DAG_ID)


@dataclass
class SyncWorld(World):
    """Both sides of one scenario, and the DAG that keeps them in step."""

    runs: list[dict[str, Any]] = field(default_factory=list)

    def sync(self, **conf: Any) -> dict[str, Any]:
        """Run the DAG once; return its run record (status, counts) and remember it."""
        dag_run = self.dag.test(run_conf={**DEFAULT_CONF, **conf})
        result = self._outcome(dag_run, run_id=dag_run.run_id)
        self.runs.append(result)
        return result


@pytest.fixture
def world_factory(
    sync_dag: Any,
    emulator: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Any]:
    """``world_factory(db_url)`` -> a seeded :class:`SyncWorld` on that member database."""
    with Connections(emulator, monkeypatch, tmp_path) as connections:

        def make(db_url: str, members: int = MEMBERS, **seed: Any) -> SyncWorld:
            sync_world.create_members(db_url, members)
            sync_world.seed_contacts_from_members(emulator, db_url, cc_only=5, **seed)
            engine = connections.open(db_url)
            return SyncWorld(sync_dag, emulator, db_url, engine, Bookkeeping(engine))

        yield make


@pytest.fixture
def world(world_factory: Any, database_url: str) -> SyncWorld:
    """A seeded world on each dialect (SQLite, PostgreSQL, MariaDB), before its first sync."""
    return world_factory(database_url)
