"""Events and their registrations: what ``/v3/events`` and its registration, payment-status and
check-in routes answer (routes in ``event_routes.py``), and the admin's way to create an event and
make people register for it.

An event has one track (CC's ``default_track``, a short ``track_id`` such as ``s8zabc``); its
registrations keep the order they were made in. Per the spec, the registrations listing has no time
filter (only status, payment status, a search text and a sort on names, statuses or totals), so a
reader re-reads an event's registrations to see their changes; the events listing has none either
(only ``event_status``, a search text and a sort, ``updated_time`` among them).

Page sizes: ``GET /v3/events`` documents "default and maximum is 100". The registrations listing
documents no maximum; the emulator assumes the same 100 (an assumption, said in the README), and
answers at most that many a page.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from include.cc_emulator.clock import normalise_timestamp, now_timestamp
from include.cc_emulator.errors import bad_request, not_found, validation_error
from include.cc_emulator.store import new_id

MAX_EVENT_PAGE = 100
MAX_REGISTRATION_PAGE = 100


class EventStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DRAFT = "DRAFT"
    COMPLETE = "COMPLETE"
    DELETED = "DELETED"
    CANCELLED = "CANCELLED"
    ERROR = "ERROR"


class RegistrationStatus(StrEnum):
    PENDING = "PENDING"
    REGISTERED = "REGISTERED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    IN_PROGRESS = "IN_PROGRESS"
    FAILED = "FAILED"


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    REFUNDED = "REFUNDED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    CHARGED_BACK = "CHARGED_BACK"


# Registrations of these payment methods take a payment status; free ones have none (the spec:
# "Free registrations without a payment method are silently excluded").
PAYMENT_METHODS = ("PAYPAL", "WEPAY", "STRIPE", "DOOR", "CHECK")
EVENT_SORT_KEYS = {
    "name": "name",
    "start_time": "start_time",
    "end_time": "end_time",
    "created_time": "create_time",
    "updated_time": "last_update_time",
}
REGISTRATION_SORT_KEYS = (
    "first_name",
    "last_name",
    "email_address",
    "registration_status",
    "payment_status",
    "tickets",
    "total",
)


def _track_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))


@dataclass(frozen=True)
class Page:
    """Where a walk of a listing stands: its filters and position (opaque, base64, as CC's are)."""

    scope: str  # "events" or "<event_id>/<track_id>"
    position: int
    limit: int
    filters: tuple[tuple[str, str], ...] = ()

    def encode(self) -> str:
        raw = json.dumps([self.scope, self.position, self.limit, list(self.filters)]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, scope: str) -> Page:
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            found, position, limit, filters = data
            page = cls(str(found), int(position), int(limit), tuple((str(k), str(v)) for k, v in filters))
        except (ValueError, TypeError, binascii.Error):
            raise bad_request("The cursor is not valid") from None
        if page.scope != scope or page.position < 0 or not 1 <= page.limit <= MAX_EVENT_PAGE:
            raise bad_request("The cursor is not valid here")
        return page


def _sorted(records: list[dict[str, Any]], key: str | None, order: str | None) -> list[dict[str, Any]]:
    if key is None:
        return records
    return sorted(records, key=lambda r: (r.get(key) is None, r.get(key) or ""), reverse=order == "DESC")


class EventStore:
    """The account's events (by id) and each event's registrations (in the order made)."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.registrations: dict[str, list[dict[str, Any]]] = {}

    # ---- admin --------------------------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        start_time: str,
        end_time: str,
        status: str = EventStatus.ACTIVE.value,
        at: str | None = None,
    ) -> dict[str, Any]:
        if status not in EventStatus.__members__:
            raise validation_error(f"status must be one of {list(EventStatus)}")
        created = normalise_timestamp(at) if at else now_timestamp()
        event = {
            "event_id": new_id(),
            "name": name,
            "title": name,
            "description": f"{name} (emulated event)",
            "start_time": normalise_timestamp(start_time, name="start_time"),
            "end_time": normalise_timestamp(end_time, name="end_time"),
            "status": status,
            "create_time": created,
            "last_update_time": created,
            "track_id": _track_id(),
            "campaign_id": new_id(),
            "campaign_activity_id": new_id(),
        }
        self.events[event["event_id"]] = event
        self.registrations[event["event_id"]] = []
        return event

    def register(self, event_id: str, registrants: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Registrations ``[{email, first_name, last_name, at, tickets, price, payment_method,
        payment_status, registration_status}]``; each ticket gets an ``order_ticket_key``."""
        event = self._event(event_id)
        made = []
        for person in registrants:
            email = person.get("email")
            if not isinstance(email, str) or "@" not in email:
                raise validation_error("each registrant needs an email")
            method = person.get("payment_method")
            if method is not None and method not in PAYMENT_METHODS:
                raise validation_error(f"payment_method must be one of {PAYMENT_METHODS}")
            tickets = int(person.get("tickets", 1))
            price = float(person.get("price", 0.0))
            registration = {
                "registration_id": new_id(),
                "email_address": email,
                "first_name": person.get("first_name") or "",
                "last_name": person.get("last_name") or "",
                "registration_status": person.get("registration_status")
                or RegistrationStatus.REGISTERED.value,
                "payment_method": method,
                "payment_status": (person.get("payment_status") or PaymentStatus.PENDING.value)
                if method
                else None,
                "registration_time": normalise_timestamp(person["at"])
                if person.get("at")
                else now_timestamp(),
                "tickets": [
                    {"order_ticket_key": secrets.token_hex(3), "checked_in_time": None, "cancelled": False}
                    for _ in range(tickets)
                ],
                "total": price * tickets,
                "track_key": event["track_id"],
                "new_contact": bool(person.get("new_contact", False)),
            }
            self.registrations[event_id].append(registration)
            made.append(self.lite(registration))
        return made

    # ---- API ----------------------------------------------------------------------------------

    def _event(self, event_id: str) -> dict[str, Any]:
        event = self.events.get(event_id)
        if event is None:
            raise not_found(f"Event {event_id}")
        return event

    def _track(self, event_id: str, track_id: str) -> dict[str, Any]:
        event = self._event(event_id)
        if event["track_id"] != track_id:
            raise not_found(f"Track {track_id} of event {event_id}")
        return event

    @staticmethod
    def listing(event: dict[str, Any]) -> dict[str, Any]:
        """An ``EventListingDto``."""
        return {
            "event_id": event["event_id"],
            "title": event["title"],
            "name": event["name"],
            "description": event["description"],
            "start_time": event["start_time"],
            "end_time": event["end_time"],
            "status": event["status"],
            "event_type": "OTHER",
            "location_type": "PHYSICAL",
            "time_zone_type": "UTC",
            "registration_url": f"https://emulator.invalid/ev/reg/{event['track_id']}",
            "create_time": event["create_time"],
        }

    def detail(self, event_id: str) -> dict[str, Any]:
        """An ``EventDto`` (its required fields, the times and the default track)."""
        event = self._event(event_id)
        return {
            "event_id": event["event_id"],
            "name": event["name"],
            "title": event["title"],
            "description": event["description"],
            "campaign_id": event["campaign_id"],
            "event_start": event["start_time"],
            "event_end": event["end_time"],
            "event_type": "OTHER",
            "location_type": "PHYSICAL",
            "time_zone": "UTC",
            "create_time": event["create_time"],
            "last_update_time": event["last_update_time"],
            "default_track": {
                "track_id": event["track_id"],
                "campaign_activity_id": event["campaign_activity_id"],
                "create_time": event["create_time"],
                "last_update_time": event["last_update_time"],
            },
        }

    def list_events(self, page: Page) -> tuple[list[dict[str, Any]], int, int | None]:
        """One page of listings, the total and the next position (None on the last page)."""
        filters = dict(page.filters)
        records = list(self.events.values())
        if "event_status" in filters:
            records = [e for e in records if e["status"] == filters["event_status"]]
        if "search_text" in filters:
            text = filters["search_text"].lower()
            records = [e for e in records if text in e["name"].lower() or text in e["description"].lower()]
        records = _sorted(records, EVENT_SORT_KEYS.get(filters.get("sort_by", "")), filters.get("sort_order"))
        chosen = records[page.position : page.position + page.limit]
        after = page.position + page.limit
        return [self.listing(e) for e in chosen], len(records), after if after < len(records) else None

    @staticmethod
    def lite(registration: dict[str, Any]) -> dict[str, Any]:
        """A ``RegistrantInformationLiteDto`` (no contact id: the listing carries none)."""
        live = [t for t in registration["tickets"] if not t["cancelled"]]
        checked = sum(1 for t in live if t["checked_in_time"])
        answer = {
            "registration_id": registration["registration_id"],
            "email_address": registration["email_address"],
            "first_name": registration["first_name"],
            "last_name": registration["last_name"],
            "registration_status": registration["registration_status"],
            "registration_time": registration["registration_time"],
            "tickets": len(registration["tickets"]),
            "eligible_checkin_tickets": len(live),
            "checkedIn_tickets": checked,
            "checkin_status": "CHECKED_IN" if live and checked == len(live) else "NOT_CHECKED_IN",
            "total": registration["total"],
            "track_key": registration["track_key"],
            "new_contact": registration["new_contact"],
        }
        if registration["payment_status"] is not None:
            answer["payment_status"] = registration["payment_status"]
        return answer

    def list_registrations(
        self, event_id: str, track_id: str, page: Page
    ) -> tuple[list[dict[str, Any]], int, int | None]:
        self._track(event_id, track_id)
        filters = dict(page.filters)
        records = [self.lite(r) for r in self.registrations[event_id]]
        for name in ("registration_status", "payment_status"):
            if name in filters:
                records = [r for r in records if r.get(name) == filters[name]]
        if "search_text" in filters:
            text = filters["search_text"].lower()
            records = [
                r
                for r in records
                if any(text in r[f].lower() for f in ("first_name", "last_name", "email_address"))
            ]
        records = _sorted(records, filters.get("sort_by"), filters.get("sort_order"))
        chosen = records[page.position : page.position + page.limit]
        after = page.position + page.limit
        return chosen, len(records), after if after < len(records) else None

    def set_payment_status(
        self, event_id: str, track_id: str, registration_ids: list[str], payment_status: str
    ) -> list[str]:
        """Set the payment status of the paid registrations among ``registration_ids`` (free ones are
        silently left out, as the spec says); the ids that are no registration of the track."""
        event = self._track(event_id, track_id)
        if payment_status not in PaymentStatus.__members__:
            raise validation_error(f"payment_status must be one of {list(PaymentStatus)}")
        by_id = {r["registration_id"]: r for r in self.registrations[event_id]}
        failed = [i for i in registration_ids if i not in by_id]
        for registration_id in registration_ids:
            registration = by_id.get(registration_id)
            if registration is not None and registration["payment_method"] is not None:
                registration["payment_status"] = payment_status
        event["last_update_time"] = now_timestamp()
        return failed

    def check_in(self, event_id: str, order_ticket_keys: list[str], *, undo: bool = False) -> None:
        """Check tickets in (or undo it). The event must be ACTIVE or COMPLETE; a cancelled or
        unknown ticket is a 400 and nothing is changed."""
        event = self._event(event_id)
        if event["status"] not in (EventStatus.ACTIVE.value, EventStatus.COMPLETE.value):
            raise bad_request(
                f"Tickets can be checked in only for an ACTIVE or COMPLETE event, not {event['status']}"
            )
        tickets = {t["order_ticket_key"]: t for r in self.registrations[event_id] for t in r["tickets"]}
        for key in order_ticket_keys:
            ticket = tickets.get(key)
            if ticket is None:
                raise bad_request(f"Order ticket {key!r} is not a ticket of this event")
            if ticket["cancelled"]:
                raise bad_request(f"Order ticket {key!r} is cancelled")
        moment = now_timestamp()
        for key in order_ticket_keys:
            tickets[key]["checked_in_time"] = None if undo else moment

    def ticket_keys(self, event_id: str, registration_id: str) -> list[str]:
        """The order ticket keys of a registration (what a box office scans; admin only: the
        listing answers counts, not keys)."""
        self._event(event_id)
        for registration in self.registrations[event_id]:
            if registration["registration_id"] == registration_id:
                return [t["order_ticket_key"] for t in registration["tickets"]]
        raise not_found(f"Registration {registration_id}")

    # ---- persistence ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "registrations": self.registrations}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventStore:
        store = cls()
        store.events = data.get("events", {})
        store.registrations = data.get("registrations", {})
        return store
