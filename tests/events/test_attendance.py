"""The mapping's optional event_attendance table: a row per member registration (none for a
registrant who is no member), nothing rewritten by a rerun, a check-in updating the row, and a
mapping naming a table that is not there refused before any call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from cc_sync.events.pull import EventsWindow, pull_registrations
from cc_sync.member_db.mapping import MappingError, parse_mapping
from cc_sync.settings import DEFAULT_MAPPING_PATH
from cc_sync.sync.resources import SyncResources
from tests.emulator.conftest import ApiClient

NOW = datetime.now(UTC)
ATTENDANCE = """
event_attendance:
  table: event_attendance
  registration_id: cc_registration_id
  member_id: member_id
  columns: {event: event_name, status: registration_status, checked_in: checked_in_tickets}
"""


def _mapping(tmp_path: Path, extra: str = ATTENDANCE) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(DEFAULT_MAPPING_PATH.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


@pytest.fixture
def resources(tmp_path: Path) -> Iterator[SyncResources]:
    made = SyncResources(mapping_path=_mapping(tmp_path))
    yield made
    made.close()


def _rows(world) -> list[tuple]:
    with world.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT member_id, event, status, checked_in FROM event_attendance ORDER BY member_id"
                )
            )
        ]


def test_attendance_rows_for_members_only_and_a_rerun_writes_nothing(world_factory, sqlite_url, resources):
    world = world_factory(sqlite_url)
    with world.engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE event_attendance (cc_registration_id VARCHAR(64) PRIMARY KEY, "
                "member_id INTEGER NOT NULL, event VARCHAR(200), status VARCHAR(30), checked_in INTEGER)"
            )
        )
    admin = world.emulator.admin
    member = world.pick(linked=True)
    start = NOW + timedelta(days=3)
    event = admin.create_event(
        "Open day", start=start, end=start + timedelta(hours=2), at=NOW - timedelta(days=1)
    )
    made = admin.register(
        event["event_id"], [{"email": member.email, "tickets": 1}, {"email": "stranger@example.com"}]
    )
    window = EventsWindow(NOW - timedelta(days=1), NOW)

    first = pull_registrations(resources.cc, resources.members, resources.bookkeeping, window)
    assert (first.attendance_inserted, first.attendance_updated) == (1, 0)
    assert _rows(world) == [(int(member.member_id), "Open day", "REGISTERED", 0)]

    again = pull_registrations(resources.cc, resources.members, resources.bookkeeping, window)
    assert (again.attendance_inserted, again.attendance_updated) == (0, 0)

    api = ApiClient(world.emulator, admin.issue_access_token())
    keys = admin.ticket_keys(event["event_id"], made[0]["registration_id"])
    assert api.post(f"/events/{event['event_id']}/check_in/tickets", json={"order_ticket_keys": keys}).ok
    checked = pull_registrations(resources.cc, resources.members, resources.bookkeeping, window)
    assert (checked.attendance_inserted, checked.attendance_updated) == (0, 1)
    assert _rows(world) == [(int(member.member_id), "Open day", "REGISTERED", 1)]


def test_a_missing_attendance_table_is_refused_before_any_call(world_factory, sqlite_url, resources):
    world_factory(sqlite_url)
    with pytest.raises(
        MappingError, match=r"line \d+: event_attendance: table 'event_attendance' does not exist"
    ):
        pull_registrations(
            resources.cc, resources.members, resources.bookkeeping, EventsWindow(NOW - timedelta(days=1), NOW)
        )
    assert resources.cc.api_calls == 0


def test_an_attendance_column_takes_a_registration_value_only(tmp_path):
    bad = ATTENDANCE.replace("checked_in: checked_in_tickets", "checked_in: shoe_size")
    with pytest.raises(MappingError, match=r"line \d+: event_attendance.columns.checked_in must be one of"):
        parse_mapping(_mapping(tmp_path, bad).read_text(encoding="utf-8"), "mapping.yaml")
