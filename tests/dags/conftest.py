"""A world for the sync DAG's scenarios: a member database (SQLite, or each dialect for tests marked
``all_dialects``: tests/conftest.py), the emulator seeded with overlapping contacts, connections to
both, and helpers to run the DAG with dag.test() and look at either side afterwards (the shared ones
in tests/world.py).

Worlds start from session snapshots (tests/snapshots.py): the seeded world is built once per
dialect and seeding, the world after its first sync once per dialect, then copied for each test.
``world`` is the seeded world before its first sync; ``synced`` the world after it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cc_sync.member_db.bookkeeping import Bookkeeping
from include import sync_world
from include.cc_emulator.testing import EmulatorHandle
from tests.snapshots import WorldSnapshots
from tests.world import Connections, World, create_members, default_conf

DAG_ID = "constant_contact_sync"
MEMBERS = 60
CC_ONLY = 5
# Every run gets every param: dag.test(run_conf=...) leaves a run's conf on the DAG object's params,
# so a later run without conf would inherit, say, dry_run from an earlier one. Filled from the DAG's
# own params (their defaults, read before any run) by the ``sync_dag`` fixture.
DEFAULT_CONF: dict[str, Any] = {}


@pytest.fixture(scope="session")
def sync_dag(dag_bag: Any) -> Any:
    dag = dag_bag.get_dag(DAG_ID)
    DEFAULT_CONF.update(default_conf(dag))
    return dag


@dataclass
class SyncWorld(World):
    """Both sides of one scenario, and the DAG that keeps them in step."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    # What the emulator was seeded with (include/sync_world.py), for exact expectations.
    seed_report: sync_world.SeedReport | None = None

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
    world_snapshots: WorldSnapshots,
) -> Iterator[Any]:
    """``world_factory(db_url, members=MEMBERS, *, synced=False, **seed)`` -> a :class:`SyncWorld`
    on that (fresh) member database, seeded by ``sync_world.seed_contacts_from_members(**seed)``;
    with ``synced=True``, after its first sync (which must succeed; ``world.runs[0]`` is its record).
    """
    with Connections(emulator, monkeypatch, tmp_path) as connections:

        def seeded(db_url: str, members: int, seed: dict[str, Any]) -> SyncWorld:
            def build() -> dict[str, Any]:
                create_members(db_url, members)
                report = sync_world.seed_contacts_from_members(
                    emulator, db_url, **{"cc_only": CC_ONLY, **seed}
                )
                return {"seed_report": report}

            key = ("sync", members, tuple(sorted(seed.items())), "seeded")
            snapshot = connections.from_snapshot(world_snapshots, key, db_url, build)
            engine = connections.open(db_url)
            return SyncWorld(
                sync_dag,
                emulator,
                db_url,
                engine,
                Bookkeeping(engine),
                seed_report=snapshot.extra["seed_report"],
            )

        def make(db_url: str, members: int = MEMBERS, *, synced: bool = False, **seed: Any) -> SyncWorld:
            if not synced:
                return seeded(db_url, members, seed)

            def build() -> dict[str, Any]:
                world = seeded(db_url, members, seed)
                first = world.sync()
                assert first["state"] == "success", first["tasks"]
                return {"seed_report": world.seed_report, "runs": world.runs}

            key = ("sync", members, tuple(sorted(seed.items())), "synced")
            snapshot = connections.from_snapshot(world_snapshots, key, db_url, build)
            engine = connections.open(db_url)
            return SyncWorld(
                sync_dag,
                emulator,
                db_url,
                engine,
                Bookkeeping(engine),
                runs=copy.deepcopy(snapshot.extra["runs"]),
                seed_report=snapshot.extra["seed_report"],
            )

        yield make


@pytest.fixture
def world(world_factory: Any, database_url: str) -> SyncWorld:
    """A seeded world (SQLite; each dialect under ``all_dialects``), before its first sync."""
    return world_factory(database_url)


@pytest.fixture
def synced(world_factory: Any, database_url: str) -> SyncWorld:
    """A seeded world after its first (successful) sync; ``synced.runs[0]`` is that run's record."""
    return world_factory(database_url, synced=True)
