"""Attendance in a member-side table the mapping names (``event_attendance``), optional.

One row per registration of a member (a registrant who is no member gets none), keyed on the
column that holds CC's registration id: a new registration is inserted, a changed one (paid,
cancelled, checked in) updated, an unchanged one left alone, so a rerun writes nothing. The table
is the organisation's own: the job checks that it and its columns exist before it writes (a clear
error naming the mapping's line), and never deletes from it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from cc_sync.constant_contact.events import Event
from cc_sync.databases import begin_writing
from cc_sync.fields import MEMBER_ID
from cc_sync.member_db.mapping import EventAttendance, MappingError
from cc_sync.member_db.schema import IN_CHUNK


def attendance_table(
    engine: sa.Engine, setting: EventAttendance, source: str, schema: str | None
) -> sa.Table:
    """The mapping's attendance table, reflected; a :class:`MappingError` when it or a column is missing."""
    where = f"{source}, line {setting.line}: event_attendance"
    if not sa.inspect(engine).has_table(setting.table, schema=schema):
        raise MappingError(f"{where}: table {setting.table!r} does not exist in the member database")
    table = sa.Table(setting.table, sa.MetaData(), autoload_with=engine, schema=schema)
    wanted = [setting.registration_id_column, setting.member_id_column, *setting.columns]
    missing = [c for c in wanted if c not in table.c]
    if missing:
        raise MappingError(f"{where}: table {setting.table!r} has no column(s) {missing}")
    return table


def _bind(column: sa.Column[Any], value: Any) -> Any:
    """``value`` as the column takes it: a member id as the column's own type, times as naive UTC."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return value
    if python_type is int and not isinstance(value, int):
        return int(value)
    if python_type is str and not isinstance(value, str):
        return str(value)
    return value


def _comparable(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def write_attendance(
    engine: sa.Engine, table: sa.Table, setting: EventAttendance, registrations: pd.DataFrame, event: Event
) -> tuple[int, int]:
    """Upsert the members' rows of one page of registrations; (inserted, updated) counts."""
    mine = registrations.loc[registrations[MEMBER_ID].notna()]
    if mine.empty:
        return 0, 0
    key = table.c[setting.registration_id_column]
    rows: dict[str, dict[str, Any]] = {}
    for record in mine.to_dict(orient="records"):
        values = {**record, "event_name": event.name}
        row = {
            setting.registration_id_column: str(record["registration_id"]),
            setting.member_id_column: _bind(table.c[setting.member_id_column], record[MEMBER_ID]),
        }
        row.update(
            {column: _bind(table.c[column], values[source]) for column, source in setting.columns.items()}
        )
        rows[row[setting.registration_id_column]] = row
    compared = [setting.member_id_column, *setting.columns]
    inserted = updated = 0
    with begin_writing(engine) as conn:
        ids = list(rows)
        stored: dict[str, tuple[str, ...]] = {}
        for start in range(0, len(ids), IN_CHUNK):
            query = sa.select(key, *(table.c[c] for c in compared)).where(
                key.in_(ids[start : start + IN_CHUNK])
            )
            for found in conn.execute(query):
                stored[str(found[0])] = tuple(_comparable(v) for v in found[1:])
        new = [row for registration_id, row in rows.items() if registration_id not in stored]
        if new:
            conn.execute(table.insert(), new)
            inserted = len(new)
        for registration_id, row in rows.items():
            if registration_id in stored and stored[registration_id] != tuple(
                _comparable(row[c]) for c in compared
            ):
                conn.execute(
                    table.update().where(key == registration_id).values({c: row[c] for c in compared})
                )
                updated += 1
    return inserted, updated
