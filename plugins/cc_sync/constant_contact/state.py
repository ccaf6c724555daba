"""The hook's state shared by every task, process and machine: tokens, call budget, rate limiter.

Why a SQL database and not an Airflow Variable: the refresh token rotates (each one works once), so
two workers refreshing at the same moment would both spend the same token and one would lock the
account out. A Variable has no lock and no compare-and-set; a database row has. The tables
(prefix ``ccsync_api_``) live in the database named by the connection's ``state_db_uri``: SQLite on
one machine, PostgreSQL or MariaDB when workers run on several.

Locking: PostgreSQL and MariaDB take a row lock (``SELECT ... FOR UPDATE``); SQLite has no row
locks, so every transaction here starts with ``BEGIN IMMEDIATE``, which takes the database's write
lock at once (the pysqlite driver would otherwise start transactions late, after the read).

Time is the wall clock (epoch microseconds): machines sharing one state database must keep their
clocks in sync (NTP), as the limiter's slots are compared across them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cc_sync.constant_contact.errors import ConstantContactBudgetExhausted
from cc_sync.constant_contact.models import QuotaUsage
from cc_sync.databases import create_engine

TABLE_PREFIX = "ccsync_api_"
MICROS = 1_000_000
# The limiter spaces calls 25% wider than 1/rate. The server counts arrivals in a sliding
# one-second window, and scheduling jitter on either side can bunch calls that left on time: at
# 10% a 1,000-call burst on a busy 2-core machine drew one 429; the daily budget, not this rate,
# is what bounds a sync's calls, so the slack costs nothing that matters.
RATE_SAFETY_MARGIN = 1.25
# SQLite waits this long for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 120

metadata = sa.MetaData()

tokens_table = sa.Table(
    f"{TABLE_PREFIX}tokens",
    metadata,
    sa.Column("token_key", sa.String(200), primary_key=True, comment="client id + seed hash"),
    sa.Column("refresh_token", sa.Text, nullable=True, comment="encrypted with Fernet when a key is set"),
    sa.Column("access_token", sa.Text, nullable=True, comment="encrypted with Fernet when a key is set"),
    sa.Column("access_expires_us", sa.BigInteger, nullable=True),
    sa.Column("seed_hash", sa.String(64), nullable=True, comment="sha256 of the connection's refresh token"),
    # Added after the first release: older tables get it on first use (_add_missing_columns).
    sa.Column(
        "credentials_hash",
        sa.String(64),
        nullable=True,
        comment="sha256 of the API key and secret the access token was obtained with",
    ),
    sa.Column("refreshed_us", sa.BigInteger, nullable=True),
    sa.Column("refresh_count", sa.Integer, nullable=False, default=0),
)

calls_table = sa.Table(
    f"{TABLE_PREFIX}daily_calls",
    metadata,
    sa.Column("client_key", sa.String(200), primary_key=True, comment="the API key (client id)"),
    sa.Column("day", sa.String(10), primary_key=True, comment="UTC day, YYYY-MM-DD"),
    sa.Column("calls", sa.Integer, nullable=False, default=0),
)

limiter_table = sa.Table(
    f"{TABLE_PREFIX}rate_limiter",
    metadata,
    sa.Column("limiter_key", sa.String(200), primary_key=True, comment="client id + channel"),
    sa.Column("next_free_us", sa.BigInteger, nullable=False, default=0),
)


# Every call a task made, for a run's downloadable API log: method, path (never its query string,
# which may hold an email), status and duration; never a header, so never a token.
call_log_table = sa.Table(
    f"{TABLE_PREFIX}call_log",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("task_id", sa.String(250)),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("status", sa.Integer, nullable=True, comment="NULL: no answer (transport error)"),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Index(f"{TABLE_PREFIX}ix_call_log_run", "run_id"),
)


@dataclass(frozen=True)
class TokenRow:
    """The token row as stored (token values still encrypted)."""

    refresh_token: str | None
    access_token: str | None
    access_expires_us: int | None
    seed_hash: str | None
    refresh_count: int
    credentials_hash: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> TokenRow:
        return cls(
            refresh_token=row.refresh_token,
            access_token=row.access_token,
            access_expires_us=row.access_expires_us,
            seed_hash=row.seed_hash,
            refresh_count=row.refresh_count or 0,
            credentials_hash=row.credentials_hash,
        )

    def __repr__(self) -> str:  # never show token values, even encrypted
        return f"TokenRow(refresh_count={self.refresh_count}, access_expires_us={self.access_expires_us})"


def now_us() -> int:
    return int(time.time() * MICROS)


def utc_day(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%d")


def next_utc_midnight(at: datetime | None = None) -> datetime:
    at = at or datetime.now(UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC) + timedelta(days=1)


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
# Rows this process has seen exist (url, table, key): rows are never deleted, so once is enough.
_known_rows: set[tuple[str, str, tuple[Any, ...]]] = set()


def _make_engine(url: str) -> Engine:
    if sa.make_url(url).get_backend_name() == "sqlite":
        # Every state transaction writes (a limiter slot, a count, a token): it takes SQLite's write
        # lock when it begins, and waits longer for it than a member database does.
        engine = create_engine(
            url, sqlite_begin="IMMEDIATE", connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        )
        sa.event.listen(engine, "connect", _write_ahead_log, insert=True)
        return engine
    return create_engine(url, pool_size=2, max_overflow=2)


def _write_ahead_log(dbapi_connection: Any, _record: Any) -> None:
    """Two commits per API call (the budget count before it, the API log after it) cost 3 ms of
    CPU each with SQLite's rollback journal, which creates, syncs and deletes a file per commit;
    with a write-ahead log and NORMAL sync, under 1.5 ms. This file is the sync's own (never a
    member database), local to the workers that share it; a power cut may forget the last
    counted calls, never corrupt the file."""
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _missing_columns(engine: Engine) -> list[sa.Column[Any]]:
    inspector = sa.inspect(engine)
    missing = []
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing += [c for c in table.columns if c.name not in present]
    return missing


def _add_missing_columns(engine: Engine) -> None:
    """Bring a table made by an older release up to date: ``ALTER TABLE ... ADD COLUMN``.

    Only nullable columns are ever added, so old rows stay valid (a NULL reads as "unknown"). The
    state tables are created by ``create_all``, not migrated with Alembic like the bookkeeping
    schema: they hold a cache and counters that any release can read, and this one step is all an
    upgrade needs.
    """
    for column in _missing_columns(engine):
        column_type = column.type.compile(dialect=engine.dialect)
        ddl = f"ALTER TABLE {column.table.name} ADD COLUMN {column.name} {column_type}"
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(ddl))
        except sa.exc.DatabaseError:
            # Another process added it between our look and our ALTER; anything else is real.
            still_missing = {(c.table.name, c.name) for c in _missing_columns(engine)}
            if (column.table.name, column.name) in still_missing:
                raise


def get_engine(url: str) -> Engine:
    """One engine per state database per process, with the tables created (or brought up to date)
    on first use."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _make_engine(url)
            try:
                metadata.create_all(engine, checkfirst=True)
            except sa.exc.DatabaseError:
                # Another process created the tables between our check and our CREATE.
                metadata.create_all(engine, checkfirst=True)
            _add_missing_columns(engine)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests, and after a fork)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _known_rows.clear()


class SharedState:
    """Access to the shared tables in one state database.

    :param url: SQLAlchemy URL of the state database.
    """

    def __init__(self, url: str):
        self.url = url
        self.engine = get_engine(url)

    def __repr__(self) -> str:
        return f"SharedState({sa.make_url(self.url).render_as_string(hide_password=True)!r})"

    # -- helpers -------------------------------------------------------------------------------

    def _ensure_row(self, table: sa.Table, values: dict[str, Any]) -> None:
        """Insert the row unless it exists; safe when several processes race to create it."""
        names = [c.name for c in table.primary_key]
        known = (self.url, table.name, tuple(values[name] for name in names))
        if known in _known_rows:
            return
        key = sa.and_(*(table.c[name] == values[name] for name in names))
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(sa.literal(1)).select_from(table).where(key)).first()
        if not exists:
            try:
                with self.engine.begin() as conn:
                    conn.execute(table.insert().values(**values))
            except sa.exc.IntegrityError:
                pass  # another process inserted it first: exactly what we wanted
        _known_rows.add(known)

    @staticmethod
    def _locked_row(conn: Connection, table: sa.Table, where: Any) -> Any:
        return conn.execute(sa.select(table).where(where).with_for_update()).one()

    # -- rate limiter and budget ---------------------------------------------------------------

    def _take_slot(self, conn: Connection, limiter_key: str, rate_per_second: float) -> int:
        """Reserve the next free slot of a limiter (inside the caller's transaction)."""
        row = self._locked_row(conn, limiter_table, limiter_table.c.limiter_key == limiter_key)
        slot = max(now_us(), row.next_free_us)
        interval = int(MICROS * RATE_SAFETY_MARGIN / rate_per_second)
        conn.execute(
            limiter_table.update()
            .where(limiter_table.c.limiter_key == limiter_key)
            .values(next_free_us=slot + interval)
        )
        return slot

    def reserve_call(
        self,
        client_key: str,
        *,
        rate_per_second: float | None,
        budget: int | None,
        reserve: int = 0,
        channel: str = "api",
    ) -> float:
        """Count one API call against today's budget and reserve its slot in the rate limiter.

        Raises :class:`ConstantContactBudgetExhausted` (and reserves nothing) when the call would
        spend into the reserve. Returns the wall-clock time (epoch seconds) the call may start at;
        :meth:`acquire_call` sleeps until then.
        """
        limiter_key = f"{client_key}:{channel}"
        day = utc_day()
        if rate_per_second:
            self._ensure_row(limiter_table, {"limiter_key": limiter_key, "next_free_us": 0})
        if budget is not None:
            self._ensure_row(calls_table, {"client_key": client_key, "day": day, "calls": 0})
        with self.engine.begin() as conn:
            slot = self._take_slot(conn, limiter_key, rate_per_second) if rate_per_second else now_us()
            if budget is not None:
                where = sa.and_(calls_table.c.client_key == client_key, calls_table.c.day == day)
                used = self._locked_row(conn, calls_table, where).calls
                if used + 1 > budget - reserve:
                    raise ConstantContactBudgetExhausted(used, budget, reserve, next_utc_midnight())
                conn.execute(calls_table.update().where(where).values(calls=calls_table.c.calls + 1))
        return slot / MICROS

    def acquire_call(self, client_key: str, **kwargs: Any) -> None:
        """:meth:`reserve_call`, then wait for the reserved slot."""
        start_at = self.reserve_call(client_key, **kwargs)
        delay = start_at - time.time()
        if delay > 0:
            time.sleep(delay)

    def usage(self, client_key: str, budget: int, reserve: int) -> QuotaUsage:
        day = utc_day()
        with self.engine.begin() as conn:
            used = conn.execute(
                sa.select(calls_table.c.calls).where(
                    calls_table.c.client_key == client_key, calls_table.c.day == day
                )
            ).scalar()
        return QuotaUsage(
            day=day, used=used or 0, budget=budget, reserve=reserve, resets_at=next_utc_midnight()
        )

    # -- the API log ---------------------------------------------------------------------------

    def log_call(self, row: dict[str, Any]) -> None:
        """Append one call to the API log (run_id, dag_id, task_id, method, path, status,
        duration_ms, at_us)."""
        with self.engine.begin() as conn:
            conn.execute(call_log_table.insert().values(**row))

    def call_log(self, run_id: str, dag_id: str | None = None) -> list[dict[str, Any]]:
        """The calls of one run, in the order they were made (of one DAG: two DAGs' scheduled runs
        of the same hour share a run id)."""
        t = call_log_table.c
        query = sa.select(call_log_table).where(*_of_run(run_id, dag_id)).order_by(t.at_us, t.id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def call_count(self, run_id: str, dag_id: str | None = None) -> int:
        """How many calls one run made, every task and every try of it (its API log's rows)."""
        query = sa.select(sa.func.count()).select_from(call_log_table).where(*_of_run(run_id, dag_id))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- tokens --------------------------------------------------------------------------------

    def read_token(self, token_key: str) -> TokenRow | None:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(tokens_table).where(tokens_table.c.token_key == token_key)).first()
        return TokenRow.from_row(row) if row else None

    @contextmanager
    def locked_token(self, token_key: str, client_key: str) -> Iterator[tuple[Connection, TokenRow]]:
        """Hold the token row's lock for the body; commit on a clean exit, roll back on an error.

        Exactly one process at a time runs the body for a given ``token_key``: the refresh.
        """
        self._ensure_row(tokens_table, {"token_key": token_key, "refresh_count": 0})
        self._ensure_row(limiter_table, {"limiter_key": f"{client_key}:token", "next_free_us": 0})
        with self.engine.begin() as conn:
            row = self._locked_row(conn, tokens_table, tokens_table.c.token_key == token_key)
            yield conn, TokenRow.from_row(row)

    def write_token(self, conn: Connection, token_key: str, **values: Any) -> None:
        """Update the token row inside the transaction of :meth:`locked_token`."""
        conn.execute(tokens_table.update().where(tokens_table.c.token_key == token_key).values(**values))

    def take_token_endpoint_slot(self, conn: Connection, client_key: str, rate_per_second: float) -> None:
        """Respect the token endpoint's own limit (1/s) while holding the token lock.

        Uses the caller's transaction: a second transaction would wait on our own SQLite lock.
        """
        slot = self._take_slot(conn, f"{client_key}:token", rate_per_second)
        delay = slot / MICROS - time.time()
        if delay > 0:
            time.sleep(delay)


def _of_run(run_id: str, dag_id: str | None) -> list[sa.ColumnElement[bool]]:
    t = call_log_table.c
    return [t.run_id == run_id, *([t.dag_id == dag_id] if dag_id else [])]
