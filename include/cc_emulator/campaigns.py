"""Email campaigns and their tracking reports: what ``/v3/emails`` and ``/v3/reports/email_reports``
answer, and the admin's way to "send" a campaign and make its recipients act on it.

A campaign has a ``primary_email`` and a ``permalink`` activity (CC creates both with every
campaign); only the primary email is sent, so tracking lives under its ``campaign_activity_id``.
Tracking events are stored per activity and per report (sends, opens, clicks, bounces, optouts) in
the order they happened; reports answer the most recent first, as CC's do.

Consent follows CC: an opt-out through a campaign's unsubscribe link also unsubscribes the contact
(source ``Contact``, the reason kept), and a send goes only to contacts who may be mailed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from include.cc_emulator.clock import format_timestamp, normalise_timestamp, parse_timestamp
from include.cc_emulator.errors import ApiError, bad_request, not_found, validation_error
from include.cc_emulator.store import AccountStore, Permission, contact_status, new_id

MAX_TRACKING_PAGE = 500
MAX_CAMPAIGN_PAGE = 500
BOUNCE_CODES = frozenset("BDFSVXZ")
# Sends are spread over time as CC's mail servers work through a list: one contact per millisecond.
SEND_SPACING = timedelta(milliseconds=1)


class TrackingReport(StrEnum):
    """The tracking reports served, with CC's ``tracking_activity_type`` for each."""

    SENDS = "sends"
    OPENS = "opens"
    CLICKS = "clicks"
    BOUNCES = "bounces"
    OPTOUTS = "optouts"

    @property
    def activity_type(self) -> str:
        return f"em_{self.value}"


# What a recipient can do with a campaign (admin "track" events), and the report each lands in.
EVENT_REPORTS = {
    "open": TrackingReport.OPENS,
    "click": TrackingReport.CLICKS,
    "bounce": TrackingReport.BOUNCES,
    "optout": TrackingReport.OPTOUTS,
}


@dataclass(frozen=True)
class TrackingCursor:
    """Where a walk of one tracking report stands (opaque and base64-encoded, as CC's are)."""

    report: str
    campaign_activity_id: str
    position: int
    limit: int
    url_id: str | None = None
    bounce_codes: tuple[str, ...] = ()

    def encode(self) -> str:
        raw = json.dumps(self.__dict__, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> TrackingCursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            data["bounce_codes"] = tuple(data.get("bounce_codes") or ())
            return cls(**data)
        except (ValueError, TypeError, binascii.Error):
            raise bad_request("The cursor is not valid") from None


class CampaignStore:
    """The account's email campaigns and the tracking events of their activities."""

    def __init__(self) -> None:
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.activity_campaign: dict[str, str] = {}  # campaign_activity_id -> campaign_id
        # campaign_activity_id -> report -> events, oldest first
        self.events: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.link_ids: dict[str, dict[str, str]] = {}  # campaign_activity_id -> link_url -> url_id
        self.next_url_id = 1100407204171

    # ----------------------------------------------------------------------------- reading

    def list_campaigns(
        self, *, after: str | None, before: str | None, position: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Campaigns (oldest update first) with ``after < updated_at < before``; the next position."""
        found = [
            c
            for c in sorted(self.campaigns.values(), key=lambda c: (c["updated_at"], c["campaign_id"]))
            if (after is None or c["updated_at"] > after) and (before is None or c["updated_at"] < before)
        ]
        page = found[position : position + limit]
        summary = [{k: v for k, v in c.items() if k != "campaign_activities"} for c in page]
        more = position + limit < len(found)
        return summary, (position + limit if more else None)

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        campaign = self.campaigns.get(campaign_id)
        if campaign is None:
            raise not_found(f"Email campaign {campaign_id}")
        return campaign

    def tracking_page(self, cursor: TrackingCursor) -> tuple[list[dict[str, Any]], int | None]:
        """One page of a report, most recent first, from ``cursor.position``; the next position."""
        if cursor.campaign_activity_id not in self.activity_campaign:
            raise not_found(f"Campaign activity {cursor.campaign_activity_id}")
        events = self.events.get(cursor.campaign_activity_id, {}).get(cursor.report, [])
        newest_first = reversed(events)
        if cursor.url_id is not None:
            newest_first = (e for e in newest_first if e.get("url_id") == cursor.url_id)
        if cursor.bounce_codes:
            newest_first = (e for e in newest_first if e.get("bounce_code") in cursor.bounce_codes)
        selected = list(newest_first)
        page = selected[cursor.position : cursor.position + cursor.limit]
        more = cursor.position + cursor.limit < len(selected)
        return page, (cursor.position + cursor.limit if more else None)

    # ----------------------------------------------------------------------------- admin: send and act

    def send(
        self,
        store: AccountStore,
        *,
        name: str,
        list_ids: Iterable[str] = (),
        contact_ids: Iterable[str] = (),
        at: str | None = None,
    ) -> dict[str, Any]:
        """Create a campaign and send its primary email to the lists' members and the given contacts.

        Unsubscribed and deleted contacts are skipped, as CC skips them. Returns the campaign with
        ``campaign_activities`` and ``sent_to`` (the contact ids mailed, in send order).
        """
        if not name or len(name) > 80:
            raise validation_error("name is required and at most 80 characters")
        if any(c["name"] == name for c in self.campaigns.values()):
            raise ApiError(409, "campaigns.api.conflict", f"An email campaign named {name!r} already exists")
        sent_at = normalise_timestamp(at, name="at")
        recipients: list[str] = []
        for list_id in list_ids:
            store.get_list(list_id)
            recipients.extend(sorted(store.list_members.get(list_id, ())))
        for contact_id in contact_ids:
            store.get_contact(contact_id)
            recipients.append(contact_id)
        recipients = [
            cid
            for cid in dict.fromkeys(recipients)
            if contact_status(store.contacts[cid]) not in (Permission.UNSUBSCRIBED.value, "deleted")
        ]
        campaign_id, primary, permalink = new_id(), new_id(), new_id()
        campaign = {
            "campaign_id": campaign_id,
            "name": name,
            "current_status": "Done",
            "type": "NEWSLETTER",
            "type_code": 10,
            "created_at": sent_at,
            "updated_at": sent_at,
            "campaign_activities": [
                {"campaign_activity_id": primary, "role": "primary_email"},
                {"campaign_activity_id": permalink, "role": "permalink"},
            ],
        }
        self.campaigns[campaign_id] = campaign
        self.activity_campaign[primary] = campaign_id
        self.activity_campaign[permalink] = campaign_id
        start = parse_timestamp(sent_at)
        for number, contact_id in enumerate(recipients):
            moment = format_timestamp(start + number * SEND_SPACING)
            self._add(store, primary, TrackingReport.SENDS, contact_id, moment, {})
        return {**campaign, "sent_to": recipients}

    def track(self, store: AccountStore, campaign_activity_id: str, events: list[dict[str, Any]]) -> int:
        """Record what recipients did: ``[{type: open|click|bounce|optout, contact_id, at,
        link_url, bounce_code, reason}]``. Only contacts the activity was sent to can act on it."""
        if campaign_activity_id not in self.activity_campaign:
            raise not_found(f"Campaign activity {campaign_activity_id}")
        sent = {e["contact_id"] for e in self.events.get(campaign_activity_id, {}).get("sends", [])}
        for event in events:
            kind = event.get("type")
            report = EVENT_REPORTS.get(kind)  # type: ignore[arg-type]
            if report is None:
                raise validation_error(f"event type must be one of {sorted(EVENT_REPORTS)}, not {kind!r}")
            contact_id = event.get("contact_id")
            if contact_id not in sent:
                raise validation_error(
                    f"contact {contact_id} was not sent campaign activity {campaign_activity_id}"
                )
            moment = normalise_timestamp(event.get("at"), name="at")
            extra: dict[str, Any] = {}
            if report is TrackingReport.OPENS:
                extra["device_type"] = event.get("device_type") or "computer"
            elif report is TrackingReport.CLICKS:
                url = event.get("link_url")
                if not url:
                    raise validation_error("a click needs link_url")
                extra.update(device_type=event.get("device_type") or "computer", url_id=self._url_id(
                    campaign_activity_id, url), link_url=url)  # fmt: skip
            elif report is TrackingReport.BOUNCES:
                code = event.get("bounce_code") or "B"
                if code not in BOUNCE_CODES:
                    raise validation_error(f"bounce_code must be one of {sorted(BOUNCE_CODES)}")
                extra["bounce_code"] = code
            elif report is TrackingReport.OPTOUTS:
                reason = event.get("reason") or ""
                if reason:
                    extra["opt_out_reason"] = reason
                # The unsubscribe link unsubscribes the contact itself, as in CC.
                store.opt_out(contact_id, at=moment, source="Contact", reason=reason)
            self._add(store, campaign_activity_id, report, contact_id, moment, extra)
        return len(events)

    def _url_id(self, campaign_activity_id: str, url: str) -> str:
        links = self.link_ids.setdefault(campaign_activity_id, {})
        if url not in links:
            links[url] = str(self.next_url_id)
            self.next_url_id += 1
        return links[url]

    def _add(
        self,
        store: AccountStore,
        campaign_activity_id: str,
        report: TrackingReport,
        contact_id: str,
        moment: str,
        extra: dict[str, Any],
    ) -> None:
        contact = store.get_contact(contact_id)
        event: dict[str, Any] = {
            "contact_id": contact_id,
            "campaign_activity_id": campaign_activity_id,
            "tracking_activity_type": report.activity_type,
            "email_address": contact["email_address"]["address"],
            "created_time": moment,
        }
        for name in ("first_name", "last_name"):
            if contact.get(name):
                event[name] = contact[name]
        if report is TrackingReport.BOUNCES:
            event["current_email_address"] = contact["email_address"]["address"]
        event.update(extra)
        rows = self.events.setdefault(campaign_activity_id, {}).setdefault(report.value, [])
        rows.append(event)
        # Kept in time order, so "most recent first" is the reverse, whatever order events came in.
        if len(rows) > 1 and rows[-2]["created_time"] > moment:
            rows.sort(key=lambda e: e["created_time"])

    # ----------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaigns": self.campaigns,
            "events": self.events,
            "link_ids": self.link_ids,
            "next_url_id": self.next_url_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CampaignStore:
        store = cls()
        store.campaigns = data.get("campaigns", {})
        store.events = data.get("events", {})
        store.link_ids = data.get("link_ids", {})
        store.next_url_id = int(data.get("next_url_id", store.next_url_id))
        for campaign_id, campaign in store.campaigns.items():
            for activity in campaign["campaign_activities"]:
                store.activity_campaign[activity["campaign_activity_id"]] = campaign_id
        return store
