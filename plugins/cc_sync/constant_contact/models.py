"""Typed values the Constant Contact hook returns: statuses as enums, results as dataclasses.

Contacts themselves stay plain ``dict`` (the API's JSON): the sync turns them into frames in one
vectorised step (``convert.contacts_to_frame``), and a dataclass per contact would only slow that.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ActivityState(StrEnum):
    """The ``state`` of a bulk activity (``GET /v3/activities/{id}``)."""

    INITIALIZED = "initialized"
    PROCESSING = "processing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    TIMED_OUT = "timed_out"

    def is_terminal(self) -> bool:
        return self not in (ActivityState.INITIALIZED, ActivityState.PROCESSING)

    def is_success(self) -> bool:
        return self is ActivityState.COMPLETED


class ContactStatus(StrEnum):
    """Values of the ``status`` filter of ``GET /v3/contacts``."""

    ALL = "all"
    ACTIVE = "active"
    DELETED = "deleted"
    NOT_SET = "not_set"
    PENDING_CONFIRMATION = "pending_confirmation"
    TEMP_HOLD = "temp_hold"
    UNSUBSCRIBED = "unsubscribed"


class PermissionToSend(StrEnum):
    """``email_address.permission_to_send``."""

    EXPLICIT = "explicit"
    IMPLICIT = "implicit"
    NOT_SET = "not_set"
    PENDING_CONFIRMATION = "pending_confirmation"
    TEMP_HOLD = "temp_hold"
    UNSUBSCRIBED = "unsubscribed"


class UpdateSource(StrEnum):
    """Who asked for a change: the contact themself, or the account (compliance field of PUT/POST)."""

    CONTACT = "Contact"
    ACCOUNT = "Account"


@dataclass(frozen=True)
class ContactList:
    list_id: str
    name: str
    description: str | None = None
    membership_count: int | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> ContactList:
        return cls(
            list_id=data["list_id"],
            name=data["name"],
            description=data.get("description"),
            membership_count=data.get("membership_count"),
        )


@dataclass(frozen=True)
class Tag:
    """A contact tag (``GET /v3/contact_tags``): names are unique in an account."""

    tag_id: str
    name: str

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Tag:
        return cls(tag_id=data["tag_id"], name=data["name"])


@dataclass(frozen=True)
class CustomField:
    custom_field_id: str
    name: str
    label: str
    type: str

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> CustomField:
        return cls(
            custom_field_id=data["custom_field_id"],
            name=data.get("name") or data.get("label", ""),
            label=data.get("label") or data.get("name", ""),
            type=data.get("type", "string"),
        )


@dataclass(frozen=True)
class Activity:
    """A bulk activity as last polled."""

    activity_id: str
    state: ActivityState
    percent_done: int = 0
    activity_errors: tuple[str, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)
    # An export's file (``_links.results.href``), once the activity has made it.
    results_href: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Activity:
        results = ((data.get("_links") or {}).get("results") or {}).get("href")
        return cls(
            activity_id=data["activity_id"],
            state=ActivityState(data["state"]),
            percent_done=int(data.get("percent_done") or 0),
            activity_errors=tuple(str(e) for e in data.get("activity_errors") or ()),
            status=dict(data.get("status") or {}),
            results_href=str(results) if results else None,
        )


@dataclass(frozen=True)
class ActivityRequest:
    """One bulk request to send: its path, its exact body, and which of the caller's items it carries
    (row positions for an import, contact-id positions for a membership activity)."""

    path: str
    body: bytes
    items: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        """Equal for the same path and bytes: a journal can tell a request it already sent."""
        return hashlib.sha256(self.path.encode() + b"\n" + self.body).hexdigest()

    def __repr__(self) -> str:
        return f"ActivityRequest({self.path!r}, items={len(self.items)}, bytes={len(self.body)})"


@dataclass(frozen=True)
class AcceptedActivity:
    """A bulk request Constant Contact accepted, handed to the caller before any poll."""

    request: ActivityRequest
    activity_id: str
    # 1 for the request's first send in this call, 2 and up for resends after a failed activity.
    send: int = 1


@dataclass(frozen=True)
class RowError:
    """One contact the import did not take, with the reason.

    ``row`` is the contact's position in the rows given to ``import_contacts``: known when the hook
    itself refused the row (before any call), and for an error Constant Contact reported when its
    free text names the row (``import_data[N]``) or quotes one of the request's addresses. It is
    ``None`` for an error that names neither: then the whole request is unconfirmed
    (:meth:`ImportResult.unconfirmed_rows`).
    """

    reason: str
    row: int | None = None
    field: str | None = None
    activity_id: str | None = None


@dataclass
class ImportResult:
    """The outcome of one ``import_contacts`` call (possibly several activities)."""

    submitted: int = 0
    activities: list[Activity] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    api_calls: int = 0
    polls: int = 0
    # Which input rows each activity carried (activity id -> positions in the rows given).
    rows_by_activity: dict[str, list[int]] = field(default_factory=dict)
    # Requests sent again because their activity failed (each one a call, plus its polls).
    resubmitted: int = 0

    def unconfirmed_rows(self) -> list[int]:
        """Rows of the requests whose errors could not all be tied to a row.

        CC counts an activity's refused rows (``error_count``) and describes them in free text; when
        a message names no row, or fewer messages than errors were given, any row of that request
        may be the refused one, so none of them can be taken as written.
        """
        unconfirmed: list[int] = []
        for activity in self.activities:
            rows = self.rows_by_activity.get(activity.activity_id, [])
            mine = [e for e in self.errors if e.activity_id == activity.activity_id]
            placed = sum(1 for e in mine if e.row is not None)
            errors = int(activity.status.get("error_count") or 0)
            if any(e.row is None for e in mine) or errors > placed:
                unconfirmed.extend(rows)
        return unconfirmed

    def _status_total(self, key: str) -> int:
        return sum(int(a.status.get(key) or 0) for a in self.activities)

    @property
    def rejected_before_sending(self) -> int:
        return sum(1 for e in self.errors if e.activity_id is None)

    @property
    def error_count(self) -> int:
        return self._status_total("error_count")

    @property
    def correctable_count(self) -> int:
        return self._status_total("correctable_count")

    @property
    def cannot_add_to_list_count(self) -> int:
        """Previously unsubscribed contacts that CC refused to put back on a list (consent kept)."""
        return self._status_total("cannot_add_to_list_count")

    @property
    def person_count(self) -> int:
        return self._status_total("person_count")

    @property
    def failed_activities(self) -> list[Activity]:
        return [a for a in self.activities if not a.state.is_success()]

    @property
    def ok(self) -> bool:
        """Every activity completed (some contacts may still have been rejected: see ``errors``)."""
        return not self.failed_activities

    def summary(self) -> dict[str, Any]:
        """Counts only (no personal data): safe for logs and XCom."""
        return {
            "submitted": self.submitted,
            "activities": len(self.activities),
            "failed_activities": [a.activity_id for a in self.failed_activities],
            "person_count": self.person_count,
            "error_count": self.error_count,
            "correctable_count": self.correctable_count,
            "cannot_add_to_list_count": self.cannot_add_to_list_count,
            "rejected_before_sending": self.rejected_before_sending,
            "unconfirmed": len(self.unconfirmed_rows()),
            "resubmitted": self.resubmitted,
            "api_calls": self.api_calls,
            "polls": self.polls,
        }


@dataclass(frozen=True)
class QuotaUsage:
    """The hook's count of today's calls (UTC day), as kept in the shared state."""

    day: str
    used: int
    budget: int
    reserve: int
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.reserve - self.used)
