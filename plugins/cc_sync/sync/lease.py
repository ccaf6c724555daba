"""One writer at a time: the lease the sync and the send-list runs hold while they work.

Whatever starts a run (the scheduler, a manual trigger, a backfill, ``airflow dags test``), its
first task waits for the lease and takes it; every later task renews it when it starts and, while
it works, from a background thread (:func:`kept`); the teardown gives it back. The lease expires
:data:`LEASE_TTL` after its last renewal, so a run killed where no teardown can run (``dag.test()``
under Ctrl-C or SIGKILL, a lost worker) blocks the next one for minutes, not hours: the next run
finds the lease stale, takes it over and says so in its log.

Why a thread and not renewals at natural points (each page read, each load batch): a task can
spend long stretches inside one call (a bulk import's polling, a big SELECT, an XCom read), and
the loaders are not this module's to instrument. The thread renews while the task process lives
and stops with it, which is exactly "the holder is alive". When the thread finds the lease taken
over, it raises :class:`LeaseLost` in the thread doing the task's work (at its next Python
instruction, as Airflow's own SIGTERM handling does), so the task stops writing then, not at its
end; the end of the block checks again, for work that caught the exception and went on.

The row (``<prefix>lease``: name, holder, acquired_at, expires_at) reads:

- ``holder`` NULL: never held.
- ``acquired_at`` NULL: released by ``holder`` at ``expires_at``; free. The holder's name stays, so
  a task of that run cleared and re-run later may hold it again only while nobody else took it
  since (:func:`renew` checks the holder, nothing else).
- ``expires_at`` in the future: held by ``holder``.
- ``expires_at`` past, ``acquired_at`` set: stale, its holder stopped renewing; the next
  :func:`acquire` takes it over.

The activity DAG takes no lease: it writes no link, base or directory row, its member writes are
optimistic against the row version (as the sync's are), and its ledger and event writes are
idempotent, so it may run beside a sync.

Every change is one conditional UPDATE, so two runs racing for the lease cannot both get it on any
of the three dialects (the database serialises the writes to the one row).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from cc_sync import settings
from cc_sync.databases import begin_writing
from cc_sync.errors import NotRetryableError
from cc_sync.member_db.bookkeeping import Bookkeeping, upsert
from cc_sync.sync.resources import DEFAULT_MAPPING_PATH, SyncResources
from cc_sync.timeutil import iso, utcnow

log = logging.getLogger(__name__)

# The timings live with every other setting (cc_sync.settings, which the DAG files read at parse time).
LEASE_NAME = settings.LEASE_NAME
LEASE_TTL = settings.LEASE_TTL
RENEW_EVERY = settings.LEASE_RENEW_EVERY
POKE_INTERVAL = settings.LEASE_POKE_INTERVAL
WAIT_TIMEOUT = settings.LEASE_WAIT_TIMEOUT


class LeaseLost(NotRetryableError, RuntimeError):
    """Another run holds the lease this run was working under: this task must not write."""


class _TakenOverMidTask(LeaseLost):
    """Raised asynchronously in the working thread (an exception class, raised without arguments);
    :func:`kept` replaces it with the heartbeat's :class:`LeaseLost`, which names the new holder."""

    def __init__(
        self, message: str = "another run took this run's lease over while this task worked"
    ) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class LeaseState:
    """The lease row as read: who holds it (or last held it) and until when."""

    holder: str | None
    acquired_at: datetime | None
    expires_at: datetime | None

    def held_at(self, now: datetime) -> bool:
        """Held and not yet expired at ``now``."""
        return self.acquired_at is not None and self.expires_at is not None and self.expires_at >= now

    def stale_at(self, now: datetime) -> bool:
        """Taken and never given back, and no renewal for ``LEASE_TTL``: its holder stopped."""
        return self.acquired_at is not None and self.expires_at is not None and self.expires_at < now

    def describe(self) -> str:
        if self.holder is None:
            return "never held"
        if self.acquired_at is None:
            return f"released by {self.holder} at {iso(self.expires_at)}"
        return f"held by {self.holder} since {iso(self.acquired_at)}, until {iso(self.expires_at)}"


def current(bookkeeping: Bookkeeping, name: str = LEASE_NAME) -> LeaseState:
    table = bookkeeping.lease
    with bookkeeping.engine.connect() as conn:
        row = conn.execute(
            sa.select(table.c.holder, table.c.acquired_at, table.c.expires_at).where(table.c.name == name)
        ).one_or_none()
    return LeaseState(None, None, None) if row is None else LeaseState(*row)


def holder(bookkeeping: Bookkeeping, name: str = LEASE_NAME) -> str | None:
    """The run holding the lease now, if any (a stale or released lease has none)."""
    state = current(bookkeeping, name)
    return state.holder if state.held_at(utcnow()) else None


def acquire(
    bookkeeping: Bookkeeping, run_id: str, *, name: str = LEASE_NAME, ttl: timedelta = LEASE_TTL
) -> bool:
    """Take the lease if it is free, stale or already this run's; True when this run holds it.

    The UPDATE is conditioned on the holder and state just read (compare and swap): a takeover
    logged here is the takeover that happened, even when another run raced for the same lease.
    """
    table = bookkeeping.lease
    with begin_writing(bookkeeping.engine) as conn:
        upsert(
            conn, table, [{"name": name, "holder": None, "acquired_at": None, "expires_at": None}], ["name"]
        )
    before = current(bookkeeping, name)
    now = utcnow()
    c = table.c
    if before.holder == run_id:
        # A retried or rescheduled first task: the lease is still this run's, whatever its state.
        condition = c.holder == run_id
    elif before.held_at(now):
        log.info("The lease is %s; waiting", before.describe())
        return False
    elif before.holder is None:
        condition = c.holder.is_(None)
    else:
        # Released or stale: swap only if nobody renewed or took it since it was read.
        condition = sa.and_(c.holder == before.holder, c.expires_at < now)
    with begin_writing(bookkeeping.engine) as conn:
        taken = conn.execute(
            table.update()
            .where(c.name == name, condition)
            .values(holder=run_id, acquired_at=now, expires_at=now + ttl)
        ).rowcount
    if taken != 1:
        log.info("Another run took the lease first (%s); waiting", current(bookkeeping, name).describe())
        return False
    if before.holder not in (None, run_id) and before.stale_at(now):
        log.warning(
            "Took over a stale lease: %s held it since %s and stopped renewing it; it went stale at %s "
            "(%s ago). That run was killed or lost: it can no longer write.",
            before.holder,
            iso(before.acquired_at),
            iso(before.expires_at),
            now - before.expires_at,  # type: ignore[operator]  # stale_at: expires_at is set
        )
    return True


def renew(
    bookkeeping: Bookkeeping, run_id: str, *, name: str = LEASE_NAME, ttl: timedelta = LEASE_TTL
) -> None:
    """Extend this run's hold on the lease by ``ttl`` from now; :class:`LeaseLost` if another run
    has it (or had it since this run last did): what this run planned may be out of date."""
    now = utcnow()
    c = bookkeeping.lease.c
    with begin_writing(bookkeeping.engine) as conn:
        previous = conn.execute(
            sa.select(c.acquired_at, c.expires_at).where(c.name == name, c.holder == run_id)
        ).one_or_none()
        renewed = conn.execute(
            bookkeeping.lease.update()
            .where(c.name == name, c.holder == run_id)
            .values(
                acquired_at=sa.func.coalesce(c.acquired_at, sa.literal(now, c.acquired_at.type)),
                expires_at=now + ttl,
            )
        ).rowcount
    if renewed != 1:
        raise LeaseLost(
            f"run {run_id} no longer holds the {name!r} lease ({current(bookkeeping, name).describe()}): "
            "another run took it over, so this task stops before writing. If this run was stalled or "
            "killed, trigger a new run; do not clear this one's tasks."
        )
    if previous is not None and previous[1] is not None and previous[1] < now:
        how = "was released" if previous[0] is None else "had gone stale"
        log.warning(
            "This run's lease %s at %s; nobody took it since, so it holds it again", how, iso(previous[1])
        )


def release(bookkeeping: Bookkeeping, run_id: str, *, name: str = LEASE_NAME) -> bool:
    """Give the lease back if this run holds it; False (and a warning) when another run does."""
    now = utcnow()
    c = bookkeeping.lease.c
    with begin_writing(bookkeeping.engine) as conn:
        released = conn.execute(
            bookkeeping.lease.update()
            .where(c.name == name, c.holder == run_id, c.acquired_at.is_not(None))
            .values(acquired_at=None, expires_at=now)
        ).rowcount
    if released != 1:
        state = current(bookkeeping, name)
        if state.holder != run_id:
            log.warning("Run %s did not hold the %r lease to release it (%s)", run_id, name, state.describe())
    return released == 1


def take(resources: SyncResources, run_id: str) -> bool:
    """The first task's poke: True once this run holds the lease (checks the schema first, so a
    database behind the code fails the run at once instead of waiting)."""
    resources.require_current_schema()
    return acquire(resources.bookkeeping, run_id)


def give_back(resources: SyncResources, run_id: str) -> bool:
    """The teardown's release: whatever became of the run, the next one need not wait."""
    return release(resources.bookkeeping, run_id)


@contextmanager
def during_task(
    name: str | None, run_id: str, *, member_db_conn_id: str, mapping_path: str | Path | None
) -> Iterator[Heartbeat | None]:
    """:func:`kept` for an operator that may run without a lease (``name`` None, in your own DAGs),
    on its own engine: the operator's work keeps its connections to itself."""
    if name is None:
        yield None
        return
    resources = SyncResources(
        member_db_conn_id=member_db_conn_id, mapping_path=mapping_path or DEFAULT_MAPPING_PATH
    )
    try:
        with kept(resources.bookkeeping, run_id, name=name) as heartbeat:
            yield heartbeat
    finally:
        resources.bookkeeping.engine.dispose()
        resources.close()


class Heartbeat:
    """Renews one run's lease from a daemon thread until stopped, and remembers a lost lease.

    A daemon thread dies with the task process, so a killed task stops renewing at once. A failed
    renewal for any reason other than a lost lease (a dropped connection, SQLite busy) is logged and
    tried again next time: ``LEASE_TTL`` leaves room for several.
    """

    def __init__(
        self,
        bookkeeping: Bookkeeping,
        run_id: str,
        *,
        name: str = LEASE_NAME,
        ttl: timedelta = LEASE_TTL,
        every: timedelta = RENEW_EVERY,
        worker: int | None = None,
    ) -> None:
        self.bookkeeping, self.run_id, self.name, self.ttl, self.every = bookkeeping, run_id, name, ttl, every
        self.lost: LeaseLost | None = None
        self.renewals = 0
        # The thread to stop when the lease is lost (``threading.get_ident()``); None: only remember.
        self._worker = worker
        self._armed = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-heartbeat-{name}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._armed:
            # Disarmed first: once the work is over, no exception may land in whatever runs next.
            self._worker = None
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        """Raise :class:`LeaseLost` if the thread found the lease taken over."""
        if self.lost is not None:
            raise self.lost

    def _run(self) -> None:
        while not self._stop.wait(self.every.total_seconds()):
            try:
                renew(self.bookkeeping, self.run_id, name=self.name, ttl=self.ttl)
                self.renewals += 1
            except LeaseLost as exc:
                log.error("%s", exc)
                self.lost = exc
                self._interrupt_worker()
                return
            except Exception as exc:  # a transient database error must not end the renewals
                log.warning("Could not renew the %r lease (will retry): %s", self.name, exc)

    def _interrupt_worker(self) -> None:
        with self._armed:
            if self._worker is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._worker), ctypes.py_object(_TakenOverMidTask)
                )


@contextmanager
def kept(
    bookkeeping: Bookkeeping,
    run_id: str,
    *,
    name: str = LEASE_NAME,
    ttl: timedelta = LEASE_TTL,
    every: timedelta = RENEW_EVERY,
) -> Iterator[Heartbeat]:
    """Hold this run's lease while the block runs: renewed on entry (:class:`LeaseLost` before any
    work if another run has it), then every ``every`` until the block ends. A lease lost meanwhile
    interrupts the block with :class:`LeaseLost` (and fails the task if the block caught that and
    went on), so nothing downstream runs. A last renewal on the way out leaves the next task of the
    run a whole ``ttl`` to start in."""
    renew(bookkeeping, run_id, name=name, ttl=ttl)
    heartbeat = Heartbeat(
        bookkeeping, run_id, name=name, ttl=ttl, every=every, worker=threading.get_ident()
    ).start()
    try:
        try:
            yield heartbeat
        finally:
            heartbeat.stop()
    except _TakenOverMidTask as exc:
        raise (heartbeat.lost or exc) from None
    heartbeat.check()
    renew(bookkeeping, run_id, name=name, ttl=ttl)
