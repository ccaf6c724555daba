"""The events DAG with dag.test(), the emulator and real databases: registrations land per member
(through the link even where the member's own email differs, else by a unique email), a registrant
who is no member is counted and queued for review but never created, a rerun over the same window
adds nothing, paid and checked-in registrations are updated in place, and drafts and settled events
are not read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from cc_sync.events.pull import watermark_stream
from tests.emulator.conftest import ApiClient

_NOW = datetime.now(UTC)
# The last 05:00 UTC (the DAG's daily schedule) and the day before it: a scheduled run's interval.
TODAY = _NOW.replace(hour=5, minute=0, second=0, microsecond=0) - timedelta(days=int(_NOW.hour < 5))
WINDOW = TODAY - timedelta(days=1)
EVENT_START = TODAY + timedelta(days=10)  # the event is ahead: its registrations are still open


def _members_with_email(world, email: str) -> int:
    with world.engine.connect() as conn:
        query = sa.text("SELECT COUNT(*) FROM members WHERE lower(trim(email)) = :email")
        return int(conn.execute(query, {"email": email.strip().lower()}).scalar_one())


def _member_count(world) -> int:
    with world.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT COUNT(*) FROM members")).scalar_one())


@pytest.mark.all_dialects
def test_registrations_land_per_member_and_a_rerun_adds_nothing(world_factory, database_url):
    world = world_factory(database_url)
    admin = world.emulator.admin
    linked, by_email = world.pick(linked=True), world.pick(linked=False)
    # A CC contact no member has (the world's other member-less contacts share a household email).
    cc_only = next(
        p for p in world.people if p.member_id is None and _members_with_email(world, p.email) == 0
    )
    # The linked member's own email is another one now: only the link can find them.
    world.edit_member(int(linked.member_id), email="moved.elsewhere@example.net")
    event = admin.create_event("AGM", start=EVENT_START, end=EVENT_START + timedelta(hours=2), at=WINDOW)
    made = admin.register(
        event["event_id"],
        [
            {
                "email": linked.email,
                "at": WINDOW + timedelta(hours=1),
                "payment_method": "STRIPE",
                "price": 20.0,
            },
            {"email": by_email.email.upper(), "at": WINDOW + timedelta(hours=2)},
            {"email": cc_only.email, "at": WINDOW + timedelta(hours=3)},
            {"email": "walk.in@example.com", "at": WINDOW + timedelta(hours=4), "tickets": 2},
        ],
    )
    ids = [m["registration_id"] for m in made]
    admin.create_event("Draft", start=EVENT_START, end=EVENT_START, status="DRAFT", at=WINDOW)
    long_ago = WINDOW - timedelta(days=60)
    old = admin.create_event(
        "Last year", start=long_ago, end=long_ago + timedelta(hours=2), status="COMPLETE", at=long_ago
    )
    admin.register(old["event_id"], [{"email": linked.email, "at": long_ago}])
    members_before = _member_count(world)

    first = world.run(WINDOW)
    assert first["state"] == "success", first["tasks"]
    counts = first["counts"]
    assert counts["events_listed"] == 3
    assert counts["events_read"] == 1, "the draft and the settled event are not read"
    assert counts["registrations_added"] == counts["registrations_read"] == 4
    assert counts["matched_link"] == 1
    assert counts["matched_email"] == 1
    assert counts["non_members"] == counts["reviews_added"] == 2
    stored = world.registrations().set_index("registration_id")
    assert sorted(stored.index) == sorted(ids)
    assert stored.loc[ids[0], "member_id"] == linked.member_id
    assert stored.loc[ids[0], "contact_id"] == linked.contact_id
    assert stored.loc[ids[0], "payment_status"] == "PENDING"
    assert stored.loc[ids[1], "member_id"] == by_email.member_id
    assert pd.isna(stored.loc[ids[2], "member_id"])
    assert pd.isna(stored.loc[ids[3], "member_id"])
    assert stored.loc[ids[3], "tickets"] == 2
    assert _member_count(world) == members_before, "a registrant is never created as a member"
    reviews = world.reviews("event_registrant")
    assert len(reviews) == 2
    assert sorted(reviews["email_hint"]) == sorted([f"{cc_only.email[0]}***@{cc_only.email.split('@')[1]}",
                                                    "w***@example.com"])  # fmt: skip
    assert {json.loads(d)["registration_id"] for d in reviews["detail"]} == {ids[2], ids[3]}
    assert world.bookkeeping.get_watermark(watermark_stream(event["event_id"])) is not None
    assert world.bookkeeping.get_watermark(watermark_stream(old["event_id"])) is None

    # The same window again: nothing added, nothing changed, no new review; the account line, the
    # events page, the event (its track) and its one registrations page.
    second = world.run(WINDOW)
    assert second["state"] == "success", second["tasks"]
    assert second["counts"]["registrations_added"] == 0
    assert second["counts"]["registrations_changed"] == 0
    assert second["counts"]["reviews_added"] == 0
    assert second["api_calls"] == 1 + 1 + 1 + 1
    assert len(world.registrations()) == 4
    assert len(world.reviews("event_registrant")) == 2

    # The registrant pays and checks in (through the v3 API): the next run updates that row only.
    api = ApiClient(world.emulator, admin.issue_access_token())
    track = f"/events/{event['event_id']}/tracks/{event['track_id']}/registrations"
    assert api.put(track + "/payment_status", json={"registration_ids": ids[:1], "payment_status": "PAID"}).ok
    keys = admin.ticket_keys(event["event_id"], ids[3])
    assert api.post(f"/events/{event['event_id']}/check_in/tickets", json={"order_ticket_keys": keys}).ok
    third = world.run(WINDOW + timedelta(days=1))
    assert third["state"] == "success", third["tasks"]
    assert third["counts"]["registrations_added"] == 0
    assert third["counts"]["registrations_changed"] == 2
    after = world.registrations().set_index("registration_id")
    assert after.loc[ids[0], "payment_status"] == "PAID"
    assert (after.loc[ids[3], "checkin_status"], after.loc[ids[3], "checked_in_tickets"]) == ("CHECKED_IN", 2)
    assert after.loc[ids[1], "run_id"] == first["run_id"], "an unchanged row is not rewritten"
    assert after.loc[ids[0], "first_run_id"] == first["run_id"]
    assert after.loc[ids[0], "run_id"] != first["run_id"]
