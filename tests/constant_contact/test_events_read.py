"""Events and registrations through the hook, over real HTTP against the emulator: the events
listing in pages of 100, an event's track, a track's registrations page by page (100 a page, one
call each) with their statuses, and an unknown event refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cc_sync.constant_contact.errors import ConstantContactApiError
from cc_sync.constant_contact.events import REGISTRATION_PAGE_SIZE

START = datetime(2026, 7, 1, 18, 0, tzinfo=UTC)


def _calls(emulator, endpoint: str) -> int:
    return emulator.admin.counters()["endpoints"].get(endpoint, 0)


def test_events_are_listed_in_pages_of_100(emulator, hook):
    for number in range(101):
        emulator.admin.create_event(f"E{number}", start=START, end=START + timedelta(hours=1))
    events = list(hook.iter_events())
    assert sorted(e.name for e in events) == sorted(f"E{n}" for n in range(101))
    assert events[0].end_time == START + timedelta(hours=1)
    assert _calls(emulator, "GET /v3/events") == 2


def test_a_tracks_registrations_page_by_page(emulator, hook):
    event = emulator.admin.create_event("Gala", start=START, end=START + timedelta(hours=3))
    people = [{"email": f"guest{n}@example.org", "at": START - timedelta(days=1)} for n in range(150)]
    people[0] |= {"payment_method": "CHECK", "price": 12.5, "tickets": 2}
    emulator.admin.register(event["event_id"], people)
    track_id = hook.get_event_track(event["event_id"])
    assert track_id == event["track_id"]
    pages = list(hook.registration_pages(event["event_id"], track_id))
    assert [len(p) for p in pages] == [REGISTRATION_PAGE_SIZE, 50]
    assert _calls(emulator, "GET /v3/events/{event_id}/tracks/{track_id}/registrations") == 2
    first = next(r for page in pages for r in page if r.email == "guest0@example.org")
    assert (first.payment_status, first.tickets, first.total) == ("PENDING", 2, 25.0)
    assert first.registered_at == START - timedelta(days=1)
    assert len({r.registration_id for page in pages for r in page}) == 150


def test_an_unknown_event_is_refused(hook):
    with pytest.raises(ConstantContactApiError) as refused:
        hook.get_event_track("00000000-0000-0000-0000-000000000000")
    assert refused.value.status == 404
