"""Constant Contact events and their registrations, as the hook returns them.

``GET /v3/events`` lists events (at most 100 a page: the spec's "default and maximum"), with their
status and times; ``GET /v3/events/{event_id}`` names the event's ``default_track``, and
``GET /v3/events/{event_id}/tracks/{track_id}/registrations`` lists its registrations. That listing
carries the registrant's email and names, statuses (registration, payment, check-in) and ticket
counts, but no contact id and no update time, and accepts no time filter: a reader sees a track's
changes by reading it whole. Its page size has no documented maximum; 100 is assumed, as for events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cc_sync.timeutil import parse_utc

EVENT_PAGE_SIZE = 100
REGISTRATION_PAGE_SIZE = 100


class EventStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DRAFT = "DRAFT"
    COMPLETE = "COMPLETE"
    DELETED = "DELETED"
    CANCELLED = "CANCELLED"
    ERROR = "ERROR"


# Events that can have registrations worth reading (a draft has none; deleted and failed ones are gone).
EVENT_STATUSES_WITH_REGISTRATIONS = frozenset(
    {EventStatus.ACTIVE, EventStatus.COMPLETE, EventStatus.CANCELLED}
)


@dataclass(frozen=True)
class Event:
    event_id: str
    name: str
    status: str
    start_time: datetime | None
    end_time: datetime | None
    created_at: datetime | None

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> Event:
        return cls(
            event_id=str(body["event_id"]),
            name=str(body.get("name") or body.get("title") or ""),
            status=str(body.get("status") or ""),
            start_time=parse_utc(body.get("start_time")),
            end_time=parse_utc(body.get("end_time")),
            created_at=parse_utc(body.get("create_time")),
        )


@dataclass(frozen=True)
class Registration:
    """One registration of a track (the listing's ``RegistrantInformationLiteDto``)."""

    registration_id: str
    event_id: str
    track_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    registration_status: str | None
    payment_status: str | None
    checkin_status: str | None
    tickets: int
    checked_in_tickets: int
    total: float | None
    registered_at: datetime | None

    @classmethod
    def from_api(cls, event_id: str, track_id: str, body: dict[str, Any]) -> Registration:
        return cls(
            registration_id=str(body["registration_id"]),
            event_id=event_id,
            track_id=track_id,
            email=body.get("email_address"),
            first_name=body.get("first_name"),
            last_name=body.get("last_name"),
            registration_status=body.get("registration_status"),
            payment_status=body.get("payment_status"),
            checkin_status=body.get("checkin_status"),
            tickets=int(body.get("tickets") or 0),
            checked_in_tickets=int(body.get("checkedIn_tickets") or 0),
            total=None if body.get("total") is None else float(body["total"]),
            registered_at=parse_utc(body.get("registration_time")),
        )
