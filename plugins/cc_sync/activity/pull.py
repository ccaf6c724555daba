"""Campaign activity flowing back into the member database (Airflow-free; the activity DAG calls it).

For the campaigns updated in a window (widened by a look-back, since opens and clicks keep coming
for days after a send), each sent campaign activity's tracking reports — sends, opens, clicks (with
the link), bounces, opt-outs — are read most recent first down to that report's high-water mark
(watermark stream ``tracking:<campaign_activity_id>:<kind>``), so an hourly pull costs one page per
report when nothing happened. Events are stored per member in the bookkeeping's ``activity`` table:
through the sync's link when the contact is linked, else by normalised email when exactly one
member has it, else with ``member_id`` NULL (counted as unknown). The table's natural key makes
every write idempotent, so a backfill over a window already done adds nothing.

Consent: bounces and opt-outs go to the consent ledger (side ``cc``, source ``tracking:bounce`` /
``tracking:optout``), and an opt-out sets the member's opt-out flag (optimistically, against the
row version just read). Nothing here ever clears a flag. Watermarks advance only after all that
is written: a run that fails half-way is re-read, not lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import pandas as pd
import sqlalchemy as sa

from cc_sync.activity import DEFAULT_LOOKBACK
from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.constant_contact.tracking import EmailCampaign, TrackingKind
from cc_sync.engine.normalise import normalise_email
from cc_sync.fields import CONTACT_ID, MEMBER_ID, OPTED_OUT
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.member_db.hook import ROW_VERSION, MemberDatabaseHook
from cc_sync.timeutil import parse_utc

log = logging.getLogger(__name__)

CONSENT_SIDE = "cc"
# A manual run without a logical date reads the hour before it, as a scheduled run would.
MANUAL_WINDOW = timedelta(hours=1)
RUN_KIND = "activity"
LOOKUP_CHUNK = 5_000
# An opt-out write skipped because the member row changed meanwhile is retried this many times.
OPT_OUT_ATTEMPTS = 3
# Filters on /v3/emails are exclusive: move the lower bound back a millisecond to include it.
_EXCLUSIVE_BOUND = timedelta(milliseconds=1)


class ActivityEvent(StrEnum):
    """``event_type`` in the activity table, one per tracking report."""

    SEND = "send"
    OPEN = "open"
    CLICK = "click"
    BOUNCE = "bounce"
    OPT_OUT = "optout"


EVENT_OF_KIND = {
    TrackingKind.SENDS: ActivityEvent.SEND,
    TrackingKind.OPENS: ActivityEvent.OPEN,
    TrackingKind.CLICKS: ActivityEvent.CLICK,
    TrackingKind.BOUNCES: ActivityEvent.BOUNCE,
    TrackingKind.OPTOUTS: ActivityEvent.OPT_OUT,
}
# Per kind, the report fields kept in ``detail`` (part of the natural key, so kept deterministic).
DETAIL_FIELDS = {
    TrackingKind.CLICKS: ("url_id", "link_url"),
    TrackingKind.BOUNCES: ("bounce_code",),
    TrackingKind.OPTOUTS: ("opt_out_reason",),
}
CONSENT_SOURCES = {
    ActivityEvent.OPT_OUT: "tracking:optout",
    ActivityEvent.BOUNCE: "tracking:bounce",
}


class MatchedBy(StrEnum):
    LINK = "link"
    EMAIL = "email"
    UNKNOWN = "unknown"  # no member has the address
    SHARED_EMAIL = "shared_email"  # several members have it: attributed to none of them


def watermark_stream(campaign_activity_id: str, kind: TrackingKind) -> str:
    return f"tracking:{campaign_activity_id}:{kind.value}"


@dataclass(frozen=True)
class ActivityWindow:
    """The campaigns to read: those updated in ``[start - lookback, end)``."""

    start: datetime
    end: datetime
    lookback: timedelta = DEFAULT_LOOKBACK

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("the activity window needs timezone-aware (UTC) bounds")
        if self.end <= self.start:
            raise ValueError(f"the activity window is empty: {self.start} .. {self.end}")
        if self.lookback < timedelta(0):
            raise ValueError("the look-back cannot be negative")

    @property
    def campaigns_after(self) -> datetime:
        return self.start - self.lookback - _EXCLUSIVE_BOUND


@dataclass
class ActivitySummary:
    """What one pull did: counts only (no address ever), for the log, XCom and the runs table."""

    campaigns: int = 0
    campaign_activities: int = 0
    events_read: int = 0
    events_added: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_match: dict[str, int] = field(default_factory=dict)
    opt_outs_recorded: int = 0
    bounces_recorded: int = 0
    members_opted_out: int = 0
    opt_outs_not_written: int = 0
    api_calls: int = 0

    def counts(self) -> dict[str, int]:
        flat = {k: v for k, v in asdict(self).items() if isinstance(v, int)}
        flat.update({f"events_{k}": v for k, v in self.by_kind.items()})
        flat.update({f"matched_{k}": v for k, v in self.by_match.items()})
        return flat


# --------------------------------------------------------------------------------------------------
# Reading CC


def campaigns_in_window(cc: ConstantContactHook, window: ActivityWindow) -> list[EmailCampaign]:
    """The window's campaigns with their activities (one ``GET /emails/{id}`` each)."""
    listed = list(cc.iter_campaigns(after=window.campaigns_after, before=window.end))
    return [cc.get_campaign(c.campaign_id) for c in listed]


def read_new_events(
    cc: ConstantContactHook,
    campaign: EmailCampaign,
    campaign_activity_id: str,
    kind: TrackingKind,
    high_water_mark: datetime | None,
) -> pd.DataFrame:
    """One report's events newer than the mark, as activity rows (without member ids yet)."""
    rows = []
    detail_fields = DETAIL_FIELDS.get(kind, ())
    for event in cc.iter_tracking(campaign_activity_id, kind, stop_at=high_water_mark):
        detail = {name: event[name] for name in detail_fields if event.get(name) not in (None, "")}
        rows.append(
            {
                CONTACT_ID: event.get("contact_id"),
                "email": event.get("email_address"),
                "campaign_id": campaign.campaign_id,
                "campaign_activity_id": campaign_activity_id,
                "event_type": EVENT_OF_KIND[kind].value,
                "occurred_at": parse_utc(event.get("created_time")),
                "detail": json.dumps(detail, sort_keys=True) if detail else None,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            CONTACT_ID,
            "email",
            "campaign_id",
            "campaign_activity_id",
            "event_type",
            "occurred_at",
            "detail",
        ],
    )


# --------------------------------------------------------------------------------------------------
# Attributing events to members


def linked_members(bookkeeping: Bookkeeping, contact_ids: Iterable[str]) -> dict[str, str]:
    """contact_id -> member_id for the linked contacts among ``contact_ids`` (reads only those)."""
    ids = sorted({str(c) for c in contact_ids if c})
    links = bookkeeping.links
    found: dict[str, str] = {}
    with bookkeeping.engine.connect() as conn:
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[start : start + LOOKUP_CHUNK]
            rows = conn.execute(
                sa.select(links.c.contact_id, links.c.member_id).where(links.c.contact_id.in_(chunk))
            )
            found.update({str(cid): str(mid) for cid, mid in rows})
    return found


def attribute_members(
    events: pd.DataFrame, bookkeeping: Bookkeeping, members: MemberDatabaseHook
) -> pd.DataFrame:
    """``events`` with ``member_id`` and ``matched_by``: the link first, else a unique email match."""
    result = events.copy()
    by_link = linked_members(bookkeeping, result[CONTACT_ID].dropna())
    result[MEMBER_ID] = result[CONTACT_ID].map(by_link).astype(object)
    result["matched_by"] = MatchedBy.LINK.value
    unlinked = result[MEMBER_ID].isna()
    result.loc[unlinked, "matched_by"] = MatchedBy.UNKNOWN.value
    if unlinked.any():
        keys = normalise_email(result.loc[unlinked, "email"].astype("string"))
        found = members.lookup_by_email(keys.dropna().unique().tolist())
        found_keys = normalise_email(found["email"])
        per_email = found.assign(email_key=found_keys).groupby("email_key")[MEMBER_ID].agg(list)
        unique = {k: str(v[0]) for k, v in per_email.items() if len(v) == 1}
        shared = {k for k, v in per_email.items() if len(v) > 1}
        result.loc[unlinked, MEMBER_ID] = keys.map(unique).astype(object).to_numpy()
        matched = unlinked & result[MEMBER_ID].notna()
        result.loc[matched, "matched_by"] = MatchedBy.EMAIL.value
        result.loc[unlinked & keys.reindex(result.index).isin(shared), "matched_by"] = (
            MatchedBy.SHARED_EMAIL.value
        )
    result[MEMBER_ID] = result[MEMBER_ID].where(result[MEMBER_ID].notna(), None)
    return result


# --------------------------------------------------------------------------------------------------
# Writing


def _activity_count(bookkeeping: Bookkeeping) -> int:
    with bookkeeping.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(bookkeeping.activity)).scalar_one())


def record_consent(events: pd.DataFrame, bookkeeping: Bookkeeping, run_id: str | None) -> dict[str, int]:
    """Bounces and opt-outs into the consent ledger (idempotent on side, member, contact, time)."""
    recorded: dict[str, int] = {}
    for event, source in CONSENT_SOURCES.items():
        chosen = events.loc[events["event_type"] == event.value]
        ledger = pd.DataFrame(
            {
                MEMBER_ID: chosen[MEMBER_ID],
                CONTACT_ID: chosen[CONTACT_ID],
                "side": CONSENT_SIDE,
                "source": source,
                "opted_out_at": chosen["occurred_at"],
                "run_id": run_id,
            }
        )
        recorded[event.value] = bookkeeping.record_opt_outs(ledger)
    return recorded


def opt_out_members(members: MemberDatabaseHook, member_ids: Sequence[str]) -> tuple[int, int]:
    """Set the opt-out flag of ``member_ids`` not yet opted out; (written, not written) counts.

    Each write checks the row version just read; a member edited meanwhile is read again and
    retried, a few times. Never clears a flag (``apply_member_updates`` ignores False anyway).
    """
    if members.mapping.opt_out is None:
        log.warning(
            "%d opt-out(s) from tracking not written to the member table: the mapping has no opt_out column",
            len(member_ids),
        )
        return 0, len(member_ids)
    pending = sorted(set(member_ids))
    written = 0
    for _ in range(OPT_OUT_ATTEMPTS):
        if not pending:
            break
        current = pd.concat(list(members.extract_members(member_ids=pending)) or [members.empty_frame()])
        todo = current.loc[~current[OPTED_OUT].fillna(False).astype(bool), [MEMBER_ID, ROW_VERSION]]
        if todo.empty:
            pending = []
            break
        result = members.apply_member_updates(todo.assign(**{OPTED_OUT: True}))
        written += len(result.updated)
        pending = [str(m) for m in result.skipped]
    return written, len(pending)


def pull_activity(
    cc: ConstantContactHook,
    members: MemberDatabaseHook,
    bookkeeping: Bookkeeping,
    window: ActivityWindow,
    *,
    run_id: str | None = None,
    kinds: Sequence[TrackingKind] = tuple(TrackingKind),
) -> ActivitySummary:
    """Read the window's campaign activity from CC and store it; see the module docstring."""
    summary = ActivitySummary()
    calls_before = cc.api_calls
    campaigns = campaigns_in_window(cc, window)
    summary.campaigns = len(campaigns)
    frames: list[pd.DataFrame] = []
    marks: dict[str, datetime] = {}
    for campaign in campaigns:
        for activity_id in campaign.sent_activity_ids:
            summary.campaign_activities += 1
            for kind in kinds:
                stream = watermark_stream(activity_id, kind)
                events = read_new_events(cc, campaign, activity_id, kind, bookkeeping.get_watermark(stream))
                if not events.empty:
                    frames.append(events)
                    marks[stream] = events["occurred_at"].max().to_pydatetime()
    events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    summary.events_read = len(events)
    if not events.empty:
        events = attribute_members(events, bookkeeping, members)
        summary.by_kind = {k: int(v) for k, v in events["event_type"].value_counts().items()}
        summary.by_match = {k: int(v) for k, v in events["matched_by"].value_counts().items()}
        before = _activity_count(bookkeeping)
        bookkeeping.insert_activity(events.assign(run_id=run_id))
        summary.events_added = _activity_count(bookkeeping) - before
        recorded = record_consent(events, bookkeeping, run_id)
        summary.opt_outs_recorded = recorded[ActivityEvent.OPT_OUT.value]
        summary.bounces_recorded = recorded[ActivityEvent.BOUNCE.value]
        opted_out = events.loc[
            (events["event_type"] == ActivityEvent.OPT_OUT.value) & events[MEMBER_ID].notna()
        ]
        written, not_written = opt_out_members(members, opted_out[MEMBER_ID].astype(str).tolist())
        summary.members_opted_out, summary.opt_outs_not_written = written, not_written
    # Last: a run that failed before this point reads the same events again next time.
    if marks:
        bookkeeping.set_watermarks(marks)
    summary.api_calls = cc.api_calls - calls_before
    log.info("Campaign activity: %s", summary.counts())
    return summary


def window_for_run(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    run_after: datetime,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> ActivityWindow:
    """The run's data interval, or for a manual run without one, the hour before ``run_after``."""
    if (
        data_interval_start is not None
        and data_interval_end is not None
        and data_interval_end > data_interval_start
    ):
        return ActivityWindow(data_interval_start, data_interval_end, lookback)
    return ActivityWindow(run_after - MANUAL_WINDOW, run_after, lookback)
