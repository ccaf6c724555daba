"""The one-writer lease on SQLite, PostgreSQL and MariaDB: take, renew, expire, take over, refuse.

Real databases only: the lease is one conditional UPDATE per change, and what matters is how each
database serialises two of them on the same row.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from cc_sync.member_db import migrate
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.member_db.hook import create_member_engine
from cc_sync.sync import lease
from cc_sync.sync.lease import LeaseLost
from cc_sync.timeutil import utcnow

DEAD = "scheduled__2026-11-30T03:00:00+00:00"
NEXT = "manual__2026-12-01T09:00:00+00:00"


@pytest.fixture
def books(database_url: str) -> Iterator[Bookkeeping]:
    engine = create_member_engine(database_url)
    migrate.upgrade(engine)
    yield Bookkeeping(engine)
    engine.dispose()


def go_stale(books: Bookkeeping, ago: timedelta = timedelta(minutes=3)) -> None:
    """What a killed holder leaves behind: its last renewal's expiry, ``ago`` in the past."""
    with books.engine.begin() as conn:
        conn.execute(
            books.lease.update()
            .where(books.lease.c.name == lease.LEASE_NAME)
            .values(expires_at=utcnow() - ago)
        )


def take_over_from_a_live_heartbeat(books: Bookkeeping, run_id: str) -> None:
    """Stall the holder past its TTL and take its lease; its heartbeat may renew in between (it
    is alive, after all), so try again until the takeover lands."""
    for _ in range(100):
        go_stale(books)
        if lease.acquire(books, run_id):
            return
    pytest.fail("the heartbeat renewed the lease every time")


def test_one_run_holds_it_and_a_retry_of_that_run_takes_it_again(books: Bookkeeping) -> None:
    assert lease.current(books) == lease.LeaseState(None, None, None)
    assert lease.acquire(books, DEAD)
    assert lease.holder(books) == DEAD
    assert not lease.acquire(books, NEXT)
    assert lease.acquire(books, DEAD), "a rescheduled or retried first task of the holder"
    state = lease.current(books)
    assert state.holder == DEAD
    # Minutes, not hours: a killed holder blocks the next run for one TTL at most.
    assert timedelta(minutes=9) < state.expires_at - utcnow() <= lease.LEASE_TTL


def test_renewal_extends_the_hold_from_now(books: Bookkeeping) -> None:
    assert lease.acquire(books, DEAD, ttl=timedelta(seconds=30))
    before = lease.current(books)
    lease.renew(books, DEAD)
    after = lease.current(books)
    assert after.expires_at - before.expires_at > timedelta(minutes=9)
    assert after.acquired_at == before.acquired_at


def test_a_stale_lease_is_taken_over_and_the_log_says_whose_and_since_when(
    books: Bookkeeping, caplog: pytest.LogCaptureFixture
) -> None:
    assert lease.acquire(books, DEAD)
    go_stale(books, timedelta(minutes=3))
    stale = lease.current(books)
    assert lease.holder(books) is None, "an expired lease has no holder"
    with caplog.at_level(logging.WARNING, logger=lease.__name__):
        assert lease.acquire(books, NEXT)
    assert lease.holder(books) == NEXT
    takeover = [r.getMessage() for r in caplog.records if "Took over a stale lease" in r.getMessage()]
    assert len(takeover) == 1
    assert DEAD in takeover[0]
    assert stale.expires_at.isoformat() in takeover[0]


def test_a_renewal_after_a_takeover_is_refused(books: Bookkeeping) -> None:
    assert lease.acquire(books, DEAD)
    go_stale(books)
    assert lease.acquire(books, NEXT)
    with pytest.raises(LeaseLost, match=re.escape(NEXT)):
        lease.renew(books, DEAD)
    with pytest.raises(LeaseLost), lease.kept(books, DEAD):
        pytest.fail("a task of the run that lost the lease started its work")
    assert lease.holder(books) == NEXT, "the refused renewals left the new holder's lease alone"


def test_a_stale_lease_nobody_took_is_still_its_holders(books: Bookkeeping) -> None:
    # A task queued longer than the TTL, with no other run waiting: the run goes on.
    assert lease.acquire(books, DEAD)
    go_stale(books)
    lease.renew(books, DEAD)
    assert lease.holder(books) == DEAD


def test_release_frees_it_for_the_next_run_without_a_takeover(
    books: Bookkeeping, caplog: pytest.LogCaptureFixture
) -> None:
    assert lease.acquire(books, DEAD)
    assert not lease.release(books, NEXT), "only the holder releases"
    assert lease.holder(books) == DEAD
    assert lease.release(books, DEAD)
    assert lease.holder(books) is None
    # A task of the released run, cleared and re-run while nobody else ran: it may hold it again.
    lease.renew(books, DEAD)
    assert lease.holder(books) == DEAD
    assert lease.release(books, DEAD)
    with caplog.at_level(logging.WARNING, logger=lease.__name__):
        assert lease.acquire(books, NEXT)
    assert not [r for r in caplog.records if "Took over" in r.getMessage()]
    # Once another run held it, the old run's tasks are refused, held or released since.
    with pytest.raises(LeaseLost):
        lease.renew(books, DEAD)
    assert lease.release(books, NEXT)
    with pytest.raises(LeaseLost):
        lease.renew(books, DEAD)


def test_the_heartbeat_keeps_a_long_task_s_lease_alive(books: Bookkeeping) -> None:
    ttl, every = timedelta(seconds=2), timedelta(milliseconds=100)
    assert lease.acquire(books, DEAD, ttl=ttl)
    with lease.kept(books, DEAD, ttl=ttl, every=every) as heartbeat:
        for _ in range(30):  # three TTLs of work, checking no other run could take it meanwhile
            time.sleep(0.1)
            assert not lease.acquire(books, NEXT, ttl=ttl)
    assert heartbeat.renewals >= 10
    assert lease.holder(books) == DEAD
    # Without a heartbeat, the same wait lets the lease go stale and the next run in.
    time.sleep(ttl.total_seconds() + 0.2)
    assert lease.acquire(books, NEXT)


def test_a_task_whose_lease_is_taken_over_while_it_works_fails(books: Bookkeeping) -> None:
    ttl, every = timedelta(seconds=30), timedelta(milliseconds=50)
    assert lease.acquire(books, DEAD, ttl=ttl)

    def work_while_another_run_takes_over() -> None:
        with lease.kept(books, DEAD, ttl=ttl, every=every) as heartbeat:
            # The holder stalls past its TTL (a paused worker), and another run takes the lease over.
            take_over_from_a_live_heartbeat(books, NEXT)
            deadline = time.monotonic() + 10
            while heartbeat.lost is None and time.monotonic() < deadline:
                time.sleep(0.05)
            with pytest.raises(LeaseLost):
                heartbeat.check()

    with pytest.raises(LeaseLost, match=re.escape(NEXT)):
        work_while_another_run_takes_over()
    assert lease.holder(books) == NEXT


def test_the_work_of_a_task_whose_lease_is_taken_over_is_stopped_at_once(books: Bookkeeping) -> None:
    ttl, every = timedelta(seconds=30), timedelta(milliseconds=50)
    assert lease.acquire(books, DEAD, ttl=ttl)
    batches_written = 0

    def write_batches() -> None:
        nonlocal batches_written
        with lease.kept(books, DEAD, ttl=ttl, every=every):
            for batch in range(400):  # 20 s of work, if nothing stopped it
                if batch == 5:
                    take_over_from_a_live_heartbeat(books, NEXT)
                time.sleep(0.05)
                batches_written += 1

    started = time.monotonic()
    with pytest.raises(LeaseLost, match=re.escape(NEXT)):
        write_batches()
    # Stopped within a few renewals of the takeover, not at the end of the work.
    assert batches_written < 40
    assert time.monotonic() - started < 5
    assert lease.holder(books) == NEXT


def test_two_runs_racing_for_a_stale_lease_get_it_once(database_url: str, books: Bookkeeping) -> None:
    assert lease.acquire(books, DEAD)
    go_stale(books)
    runs = [f"manual__racer_{i}" for i in range(6)]
    won: list[str] = []
    start = threading.Barrier(len(runs))
    engines = [create_member_engine(database_url) for _ in runs]

    def race(run_id: str, engine: sa.Engine) -> None:
        start.wait()
        if lease.acquire(Bookkeeping(engine), run_id):
            won.append(run_id)

    threads = [threading.Thread(target=race, args=pair) for pair in zip(runs, engines, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert len(won) == 1
    assert lease.holder(books) == won[0]


def test_a_renewal_waits_for_another_writer_instead_of_failing(database_url: str, books: Bookkeeping) -> None:
    """The renewal reads before it writes. While another connection writes (a waiting run's
    poke, the task's own bookkeeping), it must wait its turn: on SQLite a transaction that has read
    and then meets another writer is refused at once ("database is locked"), which failed a Celery
    run's task in CI."""
    assert lease.acquire(books, DEAD)
    other = create_member_engine(database_url)
    outcome: list[BaseException | None] = []
    started = threading.Event()

    def renew() -> None:
        started.set()
        outcome.append(_raised(lease.renew, books, DEAD))

    with other.begin() as writer:
        writer.execute(books.lease.update().where(books.lease.c.name == "another lease").values(holder=NEXT))
        renewal = threading.Thread(target=renew)
        renewal.start()
        started.wait(10)
        time.sleep(0.5)  # the renewal has reached its write (or its BEGIN) by now
    renewal.join(timeout=30)
    other.dispose()
    assert outcome == [None]
    assert lease.holder(books) == DEAD


def _raised(function: Callable[..., object], *args: object) -> BaseException | None:
    try:
        function(*args)
    except BaseException as error:  # handed to the test's thread to assert on
        return error
    return None
