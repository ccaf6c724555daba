"""A world for the events DAG: a member database, the emulator with a contact per active member
(plus contacts no member has), every other member linked and every contact in the sync's CC
directory (as a sync run leaves them), and a helper to run the DAG over a day with dag.test()."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from cc_sync.events.pull import registrations_table
from cc_sync.member_db.bookkeeping import Bookkeeping
from include import sync_world
from include.cc_emulator.testing import EmulatorHandle
from tests.activity.conftest import Person, _members_by_unique_email
from tests.snapshots import WorldSnapshots
from tests.world import Connections, World, create_members, default_conf

DAG_ID = "constant_contact_events"
MEMBERS = 16
UNKNOWN_CONTACTS = 2
WINDOW_LENGTH = timedelta(days=1)  # the DAG's default daily schedule
DEFAULT_CONF: dict[str, Any] = {}


@pytest.fixture(scope="session")
def events_dag(dag_bag: Any) -> Any:
    dag = dag_bag.get_dag(DAG_ID)
    DEFAULT_CONF.update(default_conf(dag))
    return dag


@dataclass
class EventsWorld(World):
    people: list[Person]

    def run(self, window_start: datetime, **conf: Any) -> dict[str, Any]:
        """Run the DAG for the day starting at ``window_start``; its run record and task states."""
        dag_run = self.dag.test(logical_date=window_start + WINDOW_LENGTH, run_conf={**DEFAULT_CONF, **conf})
        assert dag_run.data_interval_start == window_start
        return self._outcome(dag_run)

    def pick(self, *, linked: bool | None = None, member: bool = True, skip: int = 0) -> Person:
        chosen = [
            p
            for p in self.people
            if (p.member_id is not None) == member and (linked is None or p.linked == linked)
        ]
        return chosen[skip]

    def registrations(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(registrations_table(self.bookkeeping)), conn)


@pytest.fixture
def world_factory(
    events_dag: Any,
    emulator: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    world_snapshots: WorldSnapshots,
) -> Iterator[Any]:
    """``world_factory(db_url)`` -> an :class:`EventsWorld` on that member database (built once per
    dialect and session, then copied: tests/snapshots.py)."""
    with Connections(emulator, monkeypatch, tmp_path) as connections:

        def build(db_url: str) -> dict[str, Any]:
            create_members(db_url, MEMBERS)
            report = sync_world.seed_contacts_from_members(
                emulator, db_url, share=1.0, renamed_share=0.0, opted_out_share=0.0, cc_only=UNKNOWN_CONTACTS
            )
            assert report.cc_only == UNKNOWN_CONTACTS
            engine = sa.create_engine(db_url)
            try:
                bookkeeping = Bookkeeping(engine)
                members = _members_by_unique_email(engine)
                people: list[Person] = []
                links, directory = [], []
                for contact in emulator.admin.all_contacts():
                    email = contact["email_address"]["address"]
                    member_id = members.get(email.strip().lower())
                    linked = member_id is not None and len(links) * 2 <= len(people)
                    if linked:
                        links.append(
                            {
                                "member_id": member_id,
                                "contact_id": contact["contact_id"],
                                "rule": "name_email",
                            }
                        )
                    directory.append({"contact_id": contact["contact_id"], "email": email})
                    people.append(Person(contact["contact_id"], email, member_id, linked))
                bookkeeping.upsert_links(pd.DataFrame(links))
                bookkeeping.upsert_directory(pd.DataFrame(directory))
            finally:
                engine.dispose()
            return {"people": people}

        def make(db_url: str) -> EventsWorld:
            snapshot = connections.from_snapshot(world_snapshots, ("events",), db_url, lambda: build(db_url))
            engine = connections.open(db_url)
            people = copy.deepcopy(snapshot.extra["people"])
            return EventsWorld(events_dag, emulator, db_url, engine, Bookkeeping(engine), people)

        yield make
