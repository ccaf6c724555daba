"""pull_registrations itself (no DAG): a pull that dies after its first page is resumed by the next
run without storing anything twice, and an event read after it settled is final (never read again)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cc_sync.constant_contact.events import REGISTRATION_PAGE_SIZE
from cc_sync.events.pull import EventsWindow, pull_registrations, watermark_stream
from cc_sync.sync.resources import SyncResources

NOW = datetime.now(UTC)


@pytest.fixture
def resources() -> Iterator[SyncResources]:
    made = SyncResources()
    yield made
    made.close()


class WorkerDied(RuntimeError):
    pass


def test_a_pull_that_died_after_a_page_is_resumed_without_duplicates(world_factory, sqlite_url, resources):
    world = world_factory(sqlite_url)
    start = NOW + timedelta(days=5)
    event = world.emulator.admin.create_event(
        "Gala", start=start, end=start + timedelta(hours=3), at=NOW - timedelta(days=2)
    )
    registrants = 2 * REGISTRATION_PAGE_SIZE + 50
    world.emulator.admin.register(
        event["event_id"],
        [{"email": f"guest{n}@example.com", "at": NOW - timedelta(hours=1)} for n in range(registrants)],
    )
    window = EventsWindow(NOW - timedelta(days=1), NOW)
    cc = resources.cc
    read_pages = cc.registration_pages

    def dies_after_one_page(*args, **kwargs):
        pages = read_pages(*args, **kwargs)
        yield next(pages)
        raise WorkerDied("the worker was killed after its first page")

    cc.registration_pages = dies_after_one_page  # the hook's own reads; the process "dies" between pages
    with pytest.raises(WorkerDied):
        pull_registrations(cc, resources.members, resources.bookkeeping, window, run_id="died")
    assert len(world.registrations()) == REGISTRATION_PAGE_SIZE, "the first page was committed"
    assert world.bookkeeping.get_watermark(watermark_stream(event["event_id"])) is None

    del cc.registration_pages
    resumed = pull_registrations(cc, resources.members, resources.bookkeeping, window, run_id="resumed")
    assert resumed.registrations_read == registrants
    assert resumed.registrations_added == registrants - REGISTRATION_PAGE_SIZE
    assert resumed.registration_pages == 3
    stored = world.registrations()
    assert len(stored) == stored["registration_id"].nunique() == registrants
    assert set(stored.loc[stored["first_run_id"] == "died", "registration_id"]).isdisjoint(
        stored.loc[stored["first_run_id"] == "resumed", "registration_id"]
    )
    assert world.bookkeeping.get_watermark(watermark_stream(event["event_id"])) is not None


def test_an_event_read_after_it_settled_is_never_read_again(world_factory, sqlite_url, resources):
    world = world_factory(sqlite_url)
    ended = NOW - timedelta(days=8)  # settled (7 days after its end) yesterday
    event = world.emulator.admin.create_event(
        "Picnic",
        start=ended - timedelta(hours=4),
        end=ended,
        status="COMPLETE",
        at=ended - timedelta(days=30),
    )
    world.emulator.admin.register(
        event["event_id"], [{"email": world.people[0].email, "at": ended - timedelta(days=2)}]
    )
    window = EventsWindow(NOW - timedelta(days=3), NOW - timedelta(days=2))  # before it settled
    first = pull_registrations(resources.cc, resources.members, resources.bookkeeping, window)
    assert (first.events_read, first.events_final, first.registrations_added) == (1, 1, 1)
    again = pull_registrations(resources.cc, resources.members, resources.bookkeeping, window)
    assert again.events_read == 0
    assert again.api_calls == 1, "the events listing only"
    assert len(world.registrations()) == 1
