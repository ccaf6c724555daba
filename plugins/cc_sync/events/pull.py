"""Event registrations flowing back into the member database (Airflow-free; the events DAG calls it).

Which events: ``GET /v3/events`` (100 a page) gives each event's status and times. The registrations
listing has no time filter at all (the spec's filters are registration status, payment status, a
search text and a sort on names, statuses or totals), so the API's own times that make a run
incremental are the event's: an event is read while it may still change, that is while it is not
a draft (nor deleted or failed), was created before the window's end, and has not ended more than
``settle`` before the window's start; and an event read whole once ``settle`` after its end is
final (watermark ``event_registrations:<event_id>``, the time its last complete read began) and
never read again. A run over a window without open events costs the events listing only.

Each open event costs one ``GET /v3/events/{id}`` (its track) and its registration pages (100 a
page). Every page is stored as it arrives, in one transaction (a crash loses at most the page in
flight; the rerun reads the event again and adds nothing twice), keyed on the registration id, so
a rerun over the same window adds nothing and a status change (paid, cancelled, checked in) updates
the row. The event's watermark is set only after its last page.

Who: the listing has no contact id, so a registrant's email is looked up in the sync's CC directory
(``cc_directory``: email -> contact id) and the contact's link gives the member; else a member with
that email (exactly one); else nobody: the row keeps ``member_id`` NULL, is counted, and a review
item (kind ``event_registrant``) lists it. A registrant is never created as a member. Logs carry
counts and ids only, never an address. When the mapping names an ``event_attendance`` table, each
page's member registrations are also written there (:mod:`.attendance`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import pandas as pd
import sqlalchemy as sa

from cc_sync.activity.pull import linked_members
from cc_sync.constant_contact.events import EVENT_STATUSES_WITH_REGISTRATIONS, Event, Registration
from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.databases import begin_writing
from cc_sync.engine.normalise import normalise_email
from cc_sync.events import DEFAULT_SETTLE
from cc_sync.events.attendance import attendance_table, write_attendance
from cc_sync.fields import CONTACT_ID, MEMBER_ID
from cc_sync.member_db.bookkeeping import Bookkeeping, ReviewKind, upsert
from cc_sync.member_db.hook import MemberDatabaseHook
from cc_sync.member_db.schema import IN_CHUNK, utcnow
from cc_sync.member_db.validate import mask_email

log = logging.getLogger(__name__)

RUN_KIND = "events"
# A manual run without a logical date reads the day before it, as a scheduled run would.
MANUAL_WINDOW = timedelta(days=1)
# What a registration's row says about it: a change in any of these is an update.
STATUS_COLUMNS = (
    MEMBER_ID,
    CONTACT_ID,
    "matched_by",
    "registration_status",
    "payment_status",
    "checkin_status",
    "tickets",
    "checked_in_tickets",
)
ROW_COLUMNS = (
    "registration_id",
    "event_id",
    "track_id",
    *STATUS_COLUMNS,
    "email",
    "total",
    "registered_at",
)


class MatchedBy(StrEnum):
    LINK = "link"  # the registrant's email is a linked contact's (cc_directory, then the link)
    EMAIL = "email"  # exactly one member has the email
    UNKNOWN = "unknown"  # no member has it: counted and queued for review
    SHARED_EMAIL = "shared_email"  # several members have it: attributed to none of them


# A review item's words for why a registration has no member (it is never created as one).
WHY_NO_MEMBER = {
    MatchedBy.UNKNOWN.value: "registered for an event; no member has this email",
    MatchedBy.SHARED_EMAIL.value: "registered for an event with an email several members share",
}


def watermark_stream(event_id: str) -> str:
    return f"event_registrations:{event_id}"


@dataclass(frozen=True)
class EventsWindow:
    """The run's window: events that may have changed in ``[start, end)``."""

    start: datetime
    end: datetime
    settle: timedelta = DEFAULT_SETTLE

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("the events window needs timezone-aware (UTC) bounds")
        if self.end <= self.start:
            raise ValueError(f"the events window is empty: {self.start} .. {self.end}")
        if self.settle < timedelta(0):
            raise ValueError("the settle period cannot be negative")


@dataclass
class EventsSummary:
    """What one pull did: counts only (no address ever), for the log, XCom and the runs table."""

    events_listed: int = 0
    events_read: int = 0
    events_final: int = 0  # read whole after they settled: never read again
    registration_pages: int = 0
    registrations_read: int = 0
    registrations_added: int = 0
    registrations_changed: int = 0
    non_members: int = 0
    reviews_added: int = 0
    attendance_inserted: int = 0  # rows written to the mapping's event_attendance table, if any
    attendance_updated: int = 0
    api_calls: int = 0
    by_match: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        flat = {k: v for k, v in asdict(self).items() if isinstance(v, int)}
        flat.update({f"matched_{k}": v for k, v in self.by_match.items()})
        return flat


def registrations_table(bookkeeping: Bookkeeping) -> sa.Table:
    return bookkeeping.metadata.tables[f"{bookkeeping.prefix}event_registrations"]


# --------------------------------------------------------------------------------------------------
# Which events


def settled_at(event: Event, settle: timedelta) -> datetime | None:
    """When the event's registrations stop changing (None: it has no end time, so never)."""
    return None if event.end_time is None else event.end_time + settle


def is_open(event: Event, window: EventsWindow, read_through: datetime | None) -> bool:
    """Whether the event's registrations may have changed in the window and are not final yet."""
    if event.status not in EVENT_STATUSES_WITH_REGISTRATIONS:
        return False
    if event.created_at is not None and event.created_at >= window.end:
        return False
    settled = settled_at(event, window.settle)
    if settled is None:
        return True
    if settled < window.start:
        return False
    return read_through is None or read_through < settled


# --------------------------------------------------------------------------------------------------
# Who registered


def registrations_frame(page: Sequence[Registration]) -> pd.DataFrame:
    rows = [
        {
            "registration_id": r.registration_id,
            "event_id": r.event_id,
            "track_id": r.track_id,
            "email": r.email,
            "registration_status": r.registration_status,
            "payment_status": r.payment_status,
            "checkin_status": r.checkin_status,
            "tickets": r.tickets,
            "checked_in_tickets": r.checked_in_tickets,
            "total": r.total,
            "registered_at": r.registered_at,
        }
        for r in page
    ]
    return pd.DataFrame(
        rows, columns=[c for c in ROW_COLUMNS if c not in (MEMBER_ID, CONTACT_ID, "matched_by")]
    )


def _unique(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    """key -> value where the key has exactly one value; and the keys with several."""
    seen: dict[str, set[str]] = {}
    for key, value in pairs:
        seen.setdefault(key, set()).add(value)
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}, {
        k for k, v in seen.items() if len(v) > 1
    }


def attribute_members(
    registrations: pd.DataFrame, bookkeeping: Bookkeeping, members: MemberDatabaseHook
) -> pd.DataFrame:
    """``registrations`` with ``contact_id``, ``member_id`` and ``matched_by``: through the CC
    directory and the link first, else a unique member email, else none."""
    result = registrations.copy()
    keys = normalise_email(result["email"].astype("string"))
    directory = bookkeeping.load_directory(keys.dropna().unique().tolist())
    directory = directory.loc[~directory["deleted"]]
    contact_of, _ = _unique(
        zip(
            normalise_email(directory["email"].astype("string")),
            directory[CONTACT_ID].astype(str),
            strict=True,
        )
    )
    result[CONTACT_ID] = keys.map(contact_of).astype(object).to_numpy()
    member_of_contact = linked_members(bookkeeping, [c for c in result[CONTACT_ID] if isinstance(c, str)])
    result[MEMBER_ID] = result[CONTACT_ID].map(member_of_contact).astype(object)
    result["matched_by"] = MatchedBy.LINK.value
    unmatched = result[MEMBER_ID].isna()
    result.loc[unmatched, "matched_by"] = MatchedBy.UNKNOWN.value
    if unmatched.any():
        found = members.lookup_by_email(keys[unmatched].dropna().unique().tolist())
        by_email, shared = _unique(
            zip(normalise_email(found["email"]), found[MEMBER_ID].astype(str), strict=True)
        )
        result.loc[unmatched, MEMBER_ID] = keys[unmatched].map(by_email).astype(object).to_numpy()
        result.loc[unmatched & result[MEMBER_ID].notna(), "matched_by"] = MatchedBy.EMAIL.value
        result.loc[unmatched & keys.isin(shared).to_numpy(), "matched_by"] = MatchedBy.SHARED_EMAIL.value
    for column in (MEMBER_ID, CONTACT_ID):
        result[column] = result[column].where(result[column].notna(), None)
    return result


# --------------------------------------------------------------------------------------------------
# Storing


def _stored(conn: sa.Connection, table: sa.Table, registration_ids: list[str]) -> pd.DataFrame:
    frames = [
        pd.read_sql(
            sa.select(table.c.registration_id, *(table.c[c] for c in STATUS_COLUMNS)).where(
                table.c.registration_id.in_(registration_ids[start : start + IN_CHUNK])
            ),
            conn,
        )
        for start in range(0, len(registration_ids), IN_CHUNK)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["registration_id"])


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Status columns as text (NULL as ""), indexed by registration id, to compare stored and read."""
    return (
        frame.set_index("registration_id")[list(STATUS_COLUMNS)]
        .astype(object)
        .where(lambda f: f.notna(), "")
        .astype(str)
    )


def store_page(bookkeeping: Bookkeeping, registrations: pd.DataFrame, run_id: str | None) -> tuple[int, int]:
    """Upsert one page's registrations in one transaction; (added, changed) counts."""
    table = registrations_table(bookkeeping)
    ids = registrations["registration_id"].astype(str).tolist()
    rows = registrations.loc[:, list(ROW_COLUMNS)].astype(object)
    rows = rows.where(rows.notna(), None)
    now = utcnow()
    records = [
        {**row, "first_run_id": run_id, "run_id": run_id, "updated_at": now}
        for row in rows.to_dict(orient="records")
    ]
    with begin_writing(bookkeeping.engine) as conn:
        before = _stored(conn, table, ids)
        known = set(before["registration_id"].astype(str))
        added = len(set(ids) - known)
        changed_ids: set[str] = set()
        if known:
            old = _comparable(before)
            new = _comparable(registrations.loc[registrations["registration_id"].isin(known)])
            differs = (old.loc[new.index] != new).any(axis=1)
            changed_ids = set(differs[differs].index.astype(str))
        # New rows are inserted with this run as their first; a changed row is updated but keeps
        # its first run; an unchanged one is not written at all.
        upsert(conn, table, [r for r in records if r["registration_id"] not in known], ["registration_id"])
        update_columns = (
            [c for c in records[0] if c not in ("registration_id", "first_run_id")] if records else []
        )
        upsert(
            conn,
            table,
            [r for r in records if r["registration_id"] in changed_ids],
            ["registration_id"],
            update_columns,
        )
    return added, len(changed_ids)


def queue_non_members(
    bookkeeping: Bookkeeping, registrations: pd.DataFrame, event: Event, run_id: str | None
) -> int:
    """A review item per registrant who is no member; returns how many were new.

    The review queue's key is (kind, member, contact): a registrant CC gave us no contact id for
    is keyed by its registration instead (``registration:<id>`` in the contact column)."""
    strangers = registrations.loc[registrations[MEMBER_ID].isna()]
    if strangers.empty:
        return 0
    items = pd.DataFrame(
        {
            "kind": ReviewKind.EVENT_REGISTRANT.value,
            MEMBER_ID: None,
            CONTACT_ID: [
                contact if isinstance(contact, str) else f"registration:{registration}"
                for contact, registration in zip(
                    strangers[CONTACT_ID], strangers["registration_id"], strict=True
                )
            ],
            "email_hint": strangers["email"].map(mask_email).to_numpy(),
            "detail": [
                {
                    "event_id": event.event_id,
                    "event_name": event.name,
                    "registration_id": registration,
                    "matched_by": matched_by,
                    "why": WHY_NO_MEMBER[matched_by],
                }
                for registration, matched_by in zip(
                    strangers["registration_id"], strangers["matched_by"], strict=True
                )
            ],
        }
    )
    return bookkeeping.add_review_items(items, run_id=run_id)


# --------------------------------------------------------------------------------------------------
# The pull


def pull_registrations(
    cc: ConstantContactHook,
    members: MemberDatabaseHook,
    bookkeeping: Bookkeeping,
    window: EventsWindow,
    *,
    run_id: str | None = None,
    now: datetime | None = None,
) -> EventsSummary:
    """Read the open events' registrations and store them per member; see the module docstring."""
    summary = EventsSummary()
    calls_before = cc.api_calls
    mapping = members.mapping
    attendance = mapping.event_attendance
    # Checked before anything is read: a mapping naming a table that is not there fails at once.
    attendance_into = (
        None
        if attendance is None
        else attendance_table(members.get_engine(), attendance, mapping.source, mapping.schema)
    )
    events = list(cc.iter_events())
    summary.events_listed = len(events)
    for event in events:
        if not is_open(event, window, bookkeeping.get_watermark(watermark_stream(event.event_id))):
            continue
        began = now or utcnow()
        track_id = cc.get_event_track(event.event_id)
        for page in cc.registration_pages(event.event_id, track_id):
            summary.registration_pages += 1
            if not page:
                continue
            frame = attribute_members(registrations_frame(page), bookkeeping, members)
            added, changed = store_page(bookkeeping, frame, run_id)
            summary.registrations_read += len(frame)
            summary.registrations_added += added
            summary.registrations_changed += changed
            summary.non_members += int(frame[MEMBER_ID].isna().sum())
            for matched_by, count in frame["matched_by"].value_counts().items():
                summary.by_match[str(matched_by)] = summary.by_match.get(str(matched_by), 0) + int(count)
            summary.reviews_added += queue_non_members(bookkeeping, frame, event, run_id)
            if attendance is not None and attendance_into is not None:
                inserted, updated = write_attendance(
                    members.get_engine(), attendance_into, attendance, frame, event
                )
                summary.attendance_inserted += inserted
                summary.attendance_updated += updated
        # Last, and per event: a run that failed half-way reads this event again, adding nothing twice.
        bookkeeping.set_watermarks({watermark_stream(event.event_id): began})
        summary.events_read += 1
        settled = settled_at(event, window.settle)
        summary.events_final += int(settled is not None and began >= settled)
    summary.api_calls = cc.api_calls - calls_before
    log.info("Event registrations: %s", summary.counts())
    return summary


def window_for_run(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    run_after: datetime,
    settle: timedelta = DEFAULT_SETTLE,
) -> EventsWindow:
    """The run's data interval, or for a manual run without one, the day before ``run_after``."""
    if (
        data_interval_start is not None
        and data_interval_end is not None
        and data_interval_end > data_interval_start
    ):
        return EventsWindow(data_interval_start, data_interval_end, settle)
    return EventsWindow(run_after - MANUAL_WINDOW, run_after, settle)
