"""Email campaigns and their tracking reports, as the hook returns them.

Tracking is keyed on a campaign *activity* (the ``primary_email`` one is what contacts receive),
not on the campaign: ``GET /v3/emails`` lists campaigns, ``GET /v3/emails/{id}`` names their
activities, and ``/v3/reports/email_reports/{campaign_activity_id}/tracking/{kind}`` lists events
most recent first. The API has no "since" filter on reports: an incremental pull pages until it
reaches an event at or before its high-water mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from cc_sync.timeutil import parse_utc


class TrackingKind(StrEnum):
    """The tracking reports the activity pull reads (path segment of the report)."""

    SENDS = "sends"
    OPENS = "opens"
    CLICKS = "clicks"
    BOUNCES = "bounces"
    OPTOUTS = "optouts"

    @property
    def activity_type(self) -> str:
        """CC's ``tracking_activity_type`` of the report's rows (``em_opens``...)."""
        return f"em_{self.value}"


class CampaignActivityRole(StrEnum):
    PRIMARY_EMAIL = "primary_email"
    PERMALINK = "permalink"
    RESEND = "resend"


@dataclass(frozen=True)
class EmailCampaign:
    """One email campaign; ``activities`` maps role -> campaign_activity_id (from ``GET /emails/{id}``)."""

    campaign_id: str
    name: str | None
    status: str | None
    updated_at: datetime | None
    activities: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> EmailCampaign:
        activities: dict[str, list[str]] = {}
        for ref in body.get("campaign_activities") or []:
            if ref.get("campaign_activity_id"):
                activities.setdefault(str(ref.get("role")), []).append(str(ref["campaign_activity_id"]))
        return cls(
            campaign_id=str(body["campaign_id"]),
            name=body.get("name"),
            status=body.get("current_status"),
            updated_at=parse_utc(body.get("updated_at")),
            activities=activities,
        )

    @property
    def sent_activity_ids(self) -> list[str]:
        """The activities contacts receive (primary emails and resends; permalinks have no recipients)."""
        return [
            activity_id
            for role in (CampaignActivityRole.PRIMARY_EMAIL, CampaignActivityRole.RESEND)
            for activity_id in self.activities.get(role.value, [])
        ]
