"""Events in the emulator: the listing pages at most 100 with cursors, an event names its track, a
track's registrations page with their statuses, payment status changes only paid registrations,
check-in counts tickets (and refuses an unknown ticket or a draft event), filters take the spec's
enums only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.cc_emulator.testing import EmulatorHandle
from tests.emulator.conftest import ApiClient

START = datetime(2026, 6, 1, 18, 0, tzinfo=UTC)


@pytest.fixture
def event(emulator: EmulatorHandle) -> dict:
    made = emulator.admin.create_event("AGM", start=START, end=START + timedelta(hours=2))
    people = [
        {
            "email": f"p{i}@example.org",
            "first_name": f"P{i}",
            "last_name": "Doe",
            "at": START - timedelta(days=i),
        }
        for i in range(5)
    ]
    people[0] |= {"payment_method": "STRIPE", "price": 25.0, "tickets": 2}
    made["registrations"] = emulator.admin.register(made["event_id"], people)
    return made


def _registrations(api: ApiClient, event: dict, **params) -> tuple[list[dict], int]:
    path = f"/events/{event['event_id']}/tracks/{event['track_id']}/registrations"
    found, pages, response = [], 0, api.get(path, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        found += body["records"]
        if "next_cursor" not in body:
            return found, pages
        response = api.get(path, params={"next": body["next_cursor"]})


def test_an_event_is_listed_and_names_its_track(api: ApiClient, event: dict) -> None:
    listing = api.get("/events").json()
    assert [e["event_id"] for e in listing["records"]] == [event["event_id"]]
    assert listing["total_records"] == 1
    assert "next_cursor" not in listing
    detail = api.get(f"/events/{event['event_id']}").json()
    assert detail["default_track"]["track_id"] == event["track_id"]
    assert detail["event_end"] == "2026-06-01T20:00:00.000Z"
    assert api.get("/events/no-such-event").status_code == 404


def test_events_page_at_most_100(api: ApiClient, emulator: EmulatorHandle) -> None:
    for number in range(102):
        emulator.admin.create_event(f"E{number}", start=START, end=START + timedelta(hours=1))
    first = api.get("/events").json()
    assert len(first["records"]) == 100
    assert first["total_records"] == 102
    second = api.get("/events", params={"next": first["next_cursor"]}).json()
    assert len(second["records"]) == 2
    assert "next_cursor" not in second
    assert {e["event_id"] for e in first["records"]}.isdisjoint(e["event_id"] for e in second["records"])
    assert api.get("/events", params={"limit": "101"}).status_code == 400
    assert api.get("/events", params={"sort_by": "colour"}).status_code == 400


def test_registrations_page_and_filter(api: ApiClient, event: dict) -> None:
    everyone, pages = _registrations(api, event, limit=2)
    assert pages == 3
    assert sorted(r["email_address"] for r in everyone) == [f"p{i}@example.org" for i in range(5)]
    paid = next(r for r in everyone if r["email_address"] == "p0@example.org")
    assert paid["payment_status"] == "PENDING"
    assert paid["tickets"] == 2
    assert paid["total"] == 50.0
    assert all("payment_status" not in r for r in everyone if r is not paid), "free registrations have none"
    assert _registrations(api, event, payment_status="PENDING")[0] == [paid]
    path = f"/events/{event['event_id']}/tracks/{event['track_id']}/registrations"
    assert api.get(path, params={"registration_status": "GONE"}).status_code == 400
    assert api.get(path, params={"limit": "5", "page_size": "10"}).status_code == 400
    assert api.get(path, params={"limit": "101"}).status_code == 400
    assert api.get(f"/events/{event['event_id']}/tracks/other/registrations").status_code == 404


def test_payment_status_changes_paid_registrations_only(api: ApiClient, event: dict) -> None:
    ids = [r["registration_id"] for r in event["registrations"]]
    path = f"/events/{event['event_id']}/tracks/{event['track_id']}/registrations/payment_status"
    answer = api.put(path, json={"registration_ids": ids[:2], "payment_status": "PAID"})
    assert answer.status_code == 200, answer.text
    statuses = {r["registration_id"]: r.get("payment_status") for r in _registrations(api, event)[0]}
    assert statuses[ids[0]] == "PAID"
    assert statuses[ids[1]] is None
    partial = api.put(path, json={"registration_ids": [ids[0], "nobody"], "payment_status": "REFUNDED"})
    assert partial.status_code == 207
    assert partial.json()["failed_registration_ids"] == ["nobody"]
    assert api.put(path, json={"registration_ids": ids, "payment_status": "FREE"}).status_code == 400
    assert api.put(path, json={"payment_status": "PAID"}).status_code == 400


def test_check_in_counts_tickets(api: ApiClient, emulator: EmulatorHandle, event: dict) -> None:
    registration = event["registrations"][0]
    keys = emulator.admin.ticket_keys(event["event_id"], registration["registration_id"])
    path = f"/events/{event['event_id']}/check_in/tickets"
    assert api.post(path, json={"order_ticket_keys": keys[:1]}).status_code == 204

    def mine() -> dict:
        return next(
            r
            for r in _registrations(api, event)[0]
            if r["registration_id"] == registration["registration_id"]
        )

    assert (mine()["checkedIn_tickets"], mine()["checkin_status"]) == (1, "NOT_CHECKED_IN")
    assert api.post(path, json={"order_ticket_keys": keys}).status_code == 204
    assert (mine()["checkedIn_tickets"], mine()["checkin_status"]) == (2, "CHECKED_IN")
    undo = api.post(
        f"/events/{event['event_id']}/undo_check_in/tickets", json={"order_ticket_keys": keys[1:]}
    )
    assert undo.status_code == 204
    assert mine()["checkedIn_tickets"] == 1
    assert api.post(path, json={"order_ticket_keys": ["nope"]}).status_code == 400
    assert mine()["checkedIn_tickets"] == 1, "a refused check-in changes nothing"
    assert api.post(path, json={}).status_code == 400
    draft = emulator.admin.create_event("Draft", start=START, end=START, status="DRAFT")
    assert (
        api.post(f"/events/{draft['event_id']}/check_in/tickets", json={"order_ticket_keys": []}).status_code
        == 400
    )
