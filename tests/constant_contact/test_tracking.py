"""Campaigns and tracking reports through the hook, over real HTTP against the emulator: the walk
reads every event once, newest first, and an incremental pull stops at the high-water mark having
read only the pages of new events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cc_sync.constant_contact.tracking import TrackingKind
from cc_sync.timeutil import parse_utc

SENT_AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _tracking_calls(emulator, kind: str) -> int:
    endpoint = f"GET /v3/reports/email_reports/{{campaign_activity_id}}/tracking/{kind}"
    return emulator.admin.counters()["endpoints"].get(endpoint, 0)


def test_campaigns_in_a_window_with_their_activities(emulator, hook):
    contacts = emulator.admin.seed_contacts(count=2, seed=1)
    sent = [
        emulator.admin.send_campaign(f"Issue {n}", contact_ids=contacts, at=SENT_AT + timedelta(days=n))
        for n in range(4)
    ]
    found = list(
        hook.iter_campaigns(after=SENT_AT + timedelta(hours=1), before=SENT_AT + timedelta(days=2, hours=1))
    )
    assert [c.name for c in found] == ["Issue 1", "Issue 2"]
    assert found[0].updated_at == SENT_AT + timedelta(days=1)
    detail = hook.get_campaign(found[0].campaign_id)
    assert detail.sent_activity_ids == [sent[1]["campaign_activity_id"]]
    assert set(detail.activities) == {"primary_email", "permalink"}


@pytest.mark.parametrize(("events", "limit"), [(23, 5), (10, 500), (0, 500)])
def test_a_full_walk_reads_every_event_once_newest_first(emulator, hook, events, limit):
    contacts = emulator.admin.seed_contacts(count=max(events, 1), seed=2)
    campaign = emulator.admin.send_campaign("Walk", contact_ids=contacts, at=SENT_AT)
    activity = campaign["campaign_activity_id"]
    emulator.admin.track(
        activity,
        [
            {"type": "open", "contact_id": cid, "at": SENT_AT + timedelta(minutes=i)}
            for i, cid in enumerate(contacts[:events])
        ],
    )
    opens = list(hook.iter_tracking(activity, TrackingKind.OPENS, limit=limit))
    assert [o["contact_id"] for o in opens] == list(reversed(contacts[:events]))
    assert _tracking_calls(emulator, "opens") == max(1, -(-events // limit))


def test_an_incremental_pull_stops_at_the_high_water_mark(emulator, hook):
    contacts = emulator.admin.seed_contacts(count=30, seed=3)
    campaign = emulator.admin.send_campaign("Incremental", contact_ids=contacts, at=SENT_AT)
    activity = campaign["campaign_activity_id"]
    old = [
        {"type": "open", "contact_id": cid, "at": SENT_AT + timedelta(minutes=i)}
        for i, cid in enumerate(contacts[:20])
    ]
    emulator.admin.track(activity, old)
    first = list(hook.iter_tracking(activity, "opens", limit=5))
    mark = max(parse_utc(e["created_time"]) for e in first)
    calls_before = _tracking_calls(emulator, "opens")
    new = [
        {"type": "open", "contact_id": cid, "at": SENT_AT + timedelta(hours=2, minutes=i)}
        for i, cid in enumerate(contacts[20:27])
    ]
    emulator.admin.track(activity, new)
    fresh = list(hook.iter_tracking(activity, "opens", stop_at=mark, limit=5))
    assert [e["contact_id"] for e in fresh] == list(reversed(contacts[20:27]))
    # 7 new events at 5 a page: two pages, the second of which reaches the mark. No third page.
    assert _tracking_calls(emulator, "opens") - calls_before == 2
    assert (
        list(hook.iter_tracking(activity, "opens", stop_at=max(parse_utc(e["created_time"]) for e in fresh)))
        == []
    )


def test_each_report_kind_carries_its_fields(emulator, hook):
    contacts = emulator.admin.seed_contacts(count=4, seed=4)
    campaign = emulator.admin.send_campaign("Kinds", contact_ids=contacts, at=SENT_AT)
    activity = campaign["campaign_activity_id"]
    later = SENT_AT + timedelta(minutes=5)
    emulator.admin.track(
        activity,
        [
            {"type": "click", "contact_id": contacts[0], "at": later, "link_url": "https://example.org/x"},
            {"type": "bounce", "contact_id": contacts[1], "at": later, "bounce_code": "D"},
            {"type": "optout", "contact_id": contacts[2], "at": later, "reason": "moved away"},
        ],
    )
    assert len(list(hook.iter_tracking(activity, TrackingKind.SENDS))) == 4
    (click,) = hook.iter_tracking(activity, TrackingKind.CLICKS)
    assert click["link_url"] == "https://example.org/x"
    assert click["url_id"]
    (bounce,) = hook.iter_tracking(activity, TrackingKind.BOUNCES)
    assert bounce["bounce_code"] == "D"
    (optout,) = hook.iter_tracking(activity, TrackingKind.OPTOUTS)
    assert optout["opt_out_reason"] == "moved away"
    assert {e["tracking_activity_type"] for e in (click, bounce, optout)} == {
        "em_clicks",
        "em_bounces",
        "em_optouts",
    }


def test_account_details_cost_one_call_and_carry_the_address(emulator, hook):
    details = hook.get_account_details()
    assert details["organization_name"]
    assert details["physical_address"]["city"]
    assert emulator.admin.counters()["endpoints"] == {"GET /v3/account/summary": 1}
