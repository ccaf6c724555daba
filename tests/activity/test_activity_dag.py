"""The activity DAG with dag.test(), the emulator and real databases: tracking events stored per
member (linked, found by email, unknown), consent handed over (opt-out flag and ledger, bounces in
the ledger), and backfills that add nothing the second time over the same window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cc_sync.activity.pull import watermark_stream
from cc_sync.constant_contact.tracking import TrackingKind

WINDOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # the hour [10:00, 11:00)
SENT_AT = WINDOW + timedelta(minutes=15)
TRACKING_REPORTS = len(TrackingKind)


def _events(campaign_activity_id, world, *, at=SENT_AT + timedelta(minutes=20)):
    """Opens by a linked member, a member found by email and an unknown address; a click with a
    link; a bounce; an opt-out by a linked member and one by a member found by email."""
    linked, by_email, unknown = world.pick(linked=True), world.pick(linked=False), world.pick(member=False)
    plan = {
        "linked": linked,
        "by_email": by_email,
        "unknown": unknown,
        "bounced": world.pick(linked=False, skip=1),
        "opted_out": world.pick(linked=True, skip=1),
        "opted_out_by_email": world.pick(linked=False, skip=2),
    }
    events = [
        {"type": "open", "contact_id": linked.contact_id, "at": at},
        {"type": "open", "contact_id": by_email.contact_id, "at": at + timedelta(minutes=1)},
        {"type": "open", "contact_id": unknown.contact_id, "at": at + timedelta(minutes=2)},
        {"type": "click", "contact_id": linked.contact_id, "at": at + timedelta(minutes=3),
         "link_url": "https://example.org/agm"},
        {"type": "bounce", "contact_id": plan["bounced"].contact_id, "at": at + timedelta(minutes=4),
         "bounce_code": "B"},
        {"type": "optout", "contact_id": plan["opted_out"].contact_id, "at": at + timedelta(minutes=5),
         "reason": "too many emails"},
        {"type": "optout", "contact_id": plan["opted_out_by_email"].contact_id,
         "at": at + timedelta(minutes=6)},
    ]  # fmt: skip
    world.emulator.admin.track(campaign_activity_id, events)
    return plan


@pytest.mark.all_dialects
def test_activity_is_stored_per_member_and_a_backfill_twice_adds_nothing(world_factory, database_url):
    world = world_factory(database_url)
    admin = world.emulator.admin
    campaign = admin.send_campaign(
        "March newsletter", contact_ids=[p.contact_id for p in world.people], at=SENT_AT
    )
    activity_id = campaign["campaign_activity_id"]
    plan = _events(activity_id, world)
    sends = len(campaign["sent_to"])

    first = world.run(WINDOW)
    assert first["state"] == "success", first["tasks"]
    counts = first["counts"]
    assert counts["campaigns"] == 1
    assert counts["events_read"] == counts["events_added"] == sends + 7
    assert counts["events_send"] == sends
    assert counts["matched_unknown"] >= 2  # the unknown address's send and open
    assert counts["members_opted_out"] == 2
    stored = world.activity()
    assert len(stored) == sends + 7

    def rows(person, event_type):
        return stored.loc[(stored["contact_id"] == person.contact_id) & (stored["event_type"] == event_type)]

    assert rows(plan["linked"], "open")["member_id"].tolist() == [plan["linked"].member_id]
    assert rows(plan["by_email"], "open")["member_id"].tolist() == [plan["by_email"].member_id]
    assert rows(plan["unknown"], "open")["member_id"].isna().all()
    assert len(rows(plan["unknown"], "open")) == 1
    (click,) = rows(plan["linked"], "click")["detail"]
    assert json.loads(click)["link_url"] == "https://example.org/agm"
    (bounce,) = rows(plan["bounced"], "bounce")["detail"]
    assert json.loads(bounce)["bounce_code"] == "B"
    assert set(stored["campaign_id"]) == {campaign["campaign_id"]}

    # Consent: both opt-outs set the member's flag; ledger rows for them and for the bounce.
    assert world.member_opted_out(plan["opted_out"].member_id)
    assert world.member_opted_out(plan["opted_out_by_email"].member_id)
    assert not world.member_opted_out(plan["bounced"].member_id)
    ledger = world.bookkeeping.get_opt_outs()
    sources = dict(zip(ledger["contact_id"], ledger["source"], strict=True))
    assert sources[plan["opted_out"].contact_id] == "tracking:optout"
    assert sources[plan["opted_out_by_email"].contact_id] == "tracking:optout"
    assert sources[plan["bounced"].contact_id] == "tracking:bounce"
    assert set(ledger["side"]) == {"cc"}
    assert first["account"]["contact_email"] == "o***@example.org"
    mark = world.bookkeeping.get_watermark(watermark_stream(activity_id, TrackingKind.OPTOUTS))
    assert mark == SENT_AT + timedelta(minutes=26)

    # The same window again (a backfill over a window already done): nothing added, one page per report.
    second = world.run(WINDOW)
    assert second["state"] == "success", second["tasks"]
    assert second["counts"]["events_added"] == 0
    assert second["counts"]["events_read"] == 0
    # The account line, /emails, /emails/{id}, one page per report.
    assert second["api_calls"] == 1 + 1 + 1 + TRACKING_REPORTS
    assert len(world.activity()) == sends + 7
    assert len(world.bookkeeping.get_opt_outs()) == len(ledger)
    assert world.bookkeeping.get_run(first["run_id"])["status"] == "success"


def test_later_activity_is_read_by_a_later_window_and_old_campaigns_drop_out(world_factory, sqlite_url):
    world = world_factory(sqlite_url)
    admin = world.emulator.admin
    everyone = [p.contact_id for p in world.people]
    old = admin.send_campaign("Last month", contact_ids=everyone[:5], at=SENT_AT - timedelta(days=30))
    campaign = admin.send_campaign("March newsletter", contact_ids=everyone, at=SENT_AT)
    assert world.run(WINDOW)["counts"]["campaigns"] == 1  # the old one is past the 7-day look-back

    # Two hours later someone opens it: the 13:00 window reads that open and nothing else.
    person = world.pick(linked=True, skip=2)
    admin.track(campaign["campaign_activity_id"], [{"type": "open", "contact_id": person.contact_id,
                                                    "at": SENT_AT + timedelta(hours=2)}])  # fmt: skip
    admin.track(old["campaign_activity_id"], [{"type": "open", "contact_id": everyone[0],
                                               "at": SENT_AT + timedelta(hours=2)}])  # fmt: skip
    later = world.run(WINDOW + timedelta(hours=3))
    assert later["state"] == "success", later["tasks"]
    assert later["counts"]["events_added"] == 1
    assert later["counts"]["events_open"] == 1
    opens = world.activity().query("event_type == 'open'")
    assert opens["member_id"].tolist() == [person.member_id]

    # Widening the look-back takes the old campaign in: its sends and the open.
    wide = world.run(WINDOW + timedelta(hours=3), lookback_days=45)
    assert wide["counts"]["campaigns"] == 2
    assert wide["counts"]["events_added"] == 5 + 1


@pytest.mark.parametrize("lookback_days", [0])
def test_a_window_without_campaigns_costs_one_call_after_the_summary(
    world_factory, sqlite_url, lookback_days
):
    world = world_factory(sqlite_url)
    world.emulator.admin.send_campaign("Elsewhere", contact_ids=[world.people[0].contact_id], at=SENT_AT)
    result = world.run(WINDOW + timedelta(days=1), lookback_days=lookback_days)
    assert result["state"] == "success", result["tasks"]
    assert result["counts"]["campaigns"] == 0
    assert result["api_calls"] == 2, "the account line, then one campaign listing"
    assert world.activity().empty
