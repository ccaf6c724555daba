"""A world for the activity DAG: a member database, the emulator with a contact per active member
(plus contacts no member has), some of them linked as a sync would have linked them, and a helper
to run the DAG over a given hourly window with dag.test() (the shared parts in tests/world.py)."""

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

from cc_sync.member_db.bookkeeping import Bookkeeping
from include import sync_world
from include.cc_emulator.testing import EmulatorHandle
from tests.snapshots import WorldSnapshots
from tests.world import Connections, World, create_members, default_conf

DAG_ID = "constant_contact_activity"
MEMBERS = 40
UNKNOWN_CONTACTS = 3
WINDOW_LENGTH = timedelta(hours=1)  # the DAG's default hourly schedule
# Every run gets every param (dag.test(run_conf=...) leaves a run's conf on the DAG's params);
# filled from the DAG's own param defaults by the ``activity_dag`` fixture.
DEFAULT_CONF: dict[str, Any] = {}


@pytest.fixture(scope="session")
def activity_dag(dag_bag: Any) -> Any:
    dag = dag_bag.get_dag(DAG_ID)
    DEFAULT_CONF.update(default_conf(dag))
    return dag


@dataclass
class Person:
    """A CC contact of the world and the member it belongs to (None for an address no member has)."""

    contact_id: str
    email: str
    member_id: str | None
    linked: bool


@dataclass
class ActivityWorld(World):
    people: list[Person]

    def run(self, window_start: datetime, **conf: Any) -> dict[str, Any]:
        """Run the DAG for the hour starting at ``window_start``; its run record and task states.

        dag.test() infers a manual run's interval as the last whole one before its logical date
        (``infer_manual_data_interval``), so the hour [10:00, 11:00) is the run "at" 11:00.
        """
        dag_run = self.dag.test(logical_date=window_start + WINDOW_LENGTH, run_conf={**DEFAULT_CONF, **conf})
        assert dag_run.data_interval_start == window_start
        account = dag_run.get_task_instance("account_summary").xcom_pull(task_ids="account_summary")
        return self._outcome(dag_run, account=account)

    def pick(self, *, linked: bool | None = None, member: bool = True, skip: int = 0) -> Person:
        chosen = [
            p
            for p in self.people
            if (p.member_id is not None) == member and (linked is None or p.linked == linked)
        ]
        return chosen[skip]

    def activity(self) -> pd.DataFrame:
        return self.bookkeeping.get_activity()


def _members_by_unique_email(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT member_id, email FROM members "
                "WHERE membership_status = 'active' AND deleted_at IS NULL AND email IS NOT NULL"
            )
        ).all()
    seen: dict[str, list[str]] = {}
    for member_id, email in rows:
        seen.setdefault(email.strip().lower(), []).append(str(member_id))
    return {email: ids[0] for email, ids in seen.items() if len(ids) == 1}


@pytest.fixture
def world_factory(
    activity_dag: Any,
    emulator: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    world_snapshots: WorldSnapshots,
) -> Iterator[Any]:
    """``world_factory(db_url)`` -> an :class:`ActivityWorld` on that member database (built once
    per dialect and session, then copied: tests/snapshots.py)."""
    with Connections(emulator, monkeypatch, tmp_path) as connections:

        def build(db_url: str) -> dict[str, Any]:
            create_members(db_url, MEMBERS)
            report = sync_world.seed_contacts_from_members(
                emulator, db_url, share=1.0, renamed_share=0.0, opted_out_share=0.0, cc_only=UNKNOWN_CONTACTS
            )
            assert report.cc_only == UNKNOWN_CONTACTS
            assert report.renamed == report.opted_out == 0
            engine = sa.create_engine(db_url)
            try:
                bookkeeping = Bookkeeping(engine)
                members = _members_by_unique_email(engine)
                people: list[Person] = []
                links = []
                for contact in emulator.admin.all_contacts():
                    email = contact["email_address"]["address"]
                    member_id = members.get(email.strip().lower())
                    # Every other member is linked (as a sync would have done); the rest are found by email.
                    linked = member_id is not None and len(links) * 2 <= len(people)
                    if linked:
                        links.append(
                            {
                                "member_id": member_id,
                                "contact_id": contact["contact_id"],
                                "rule": "name_email",
                            }
                        )
                    people.append(Person(contact["contact_id"], email, member_id, linked))
                bookkeeping.upsert_links(pd.DataFrame(links))
            finally:
                engine.dispose()
            assert len(people) == report.same_person + report.cc_only
            return {"people": people}

        def make(db_url: str) -> ActivityWorld:
            snapshot = connections.from_snapshot(
                world_snapshots, ("activity",), db_url, lambda: build(db_url)
            )
            engine = connections.open(db_url)
            people = copy.deepcopy(snapshot.extra["people"])
            return ActivityWorld(activity_dag, emulator, db_url, engine, Bookkeeping(engine), people)

        yield make
