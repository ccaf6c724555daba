"""The one factory of SQLAlchemy engines: member databases, bookkeeping, the Constant Contact state.

Every engine the project makes comes from :func:`create_engine`, so each database gets the same
treatment wherever it is opened (the hooks, the migrations, the demo, the UI check, the sample
data): on SQLite a busy timeout, a larger page cache and transactions that SQLAlchemy begins
itself (pysqlite's own begin is lazy and only before DML, so a read at the start of a write
transaction would not be protected; the recipe is SQLAlchemy's documented one), elsewhere
pre-pinged pooled connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import sqlalchemy as sa

SQLITE_BUSY_TIMEOUT_SECONDS = 30
# SQLite's page cache per connection (its default is 2 MiB). The bookkeeping's inserts land at
# random places of five indexes (the change log of a first install holds hundreds of thousands of
# rows): with the default cache each insert re-reads pages from the OS, which cost a quarter of
# the insert's CPU (300,000 change rows: 8.6 -> 6.3 CPU s, the system time 2.5 -> 0.7 s). Pages
# are only taken as they are read, up to this size.
SQLITE_CACHE_KIB = 65_536
SqliteBegin = Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"]


def create_engine(url: str | sa.URL, *, sqlite_begin: SqliteBegin = "DEFERRED", **kwargs: Any) -> sa.Engine:
    """An engine on ``url``.

    :param sqlite_begin: how a transaction begins on SQLite when it does not ask itself (a
        connection's ``sqlite_begin`` execution option, e.g. ``IMMEDIATE`` to take the write lock
        before reading); the Constant Contact state always begins IMMEDIATE.
    :param kwargs: passed to :func:`sqlalchemy.create_engine` (pool sizes, ...).
    """
    url = sa.make_url(url)
    if url.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        engine = sa.create_engine(url, **kwargs)
        _sqlite_begin_modes(engine, sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


@contextmanager
def begin_writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """``engine.begin()`` for a transaction that writes: on SQLite it takes the write lock at its
    BEGIN (IMMEDIATE), so a read before its first write cannot deadlock with another writer.

    A DEFERRED transaction that has read holds a shared lock; its first write then needs the
    reserved lock, and if another connection holds that, SQLite answers "database is locked" at
    once, without the busy timeout (waiting could deadlock: the other writer's commit waits for the
    shared lock to go). An IMMEDIATE BEGIN waits its turn in the busy timeout instead. Elsewhere
    this is ``engine.begin()``: the option means nothing to other dialects.
    """
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def _sqlite_begin_modes(engine: sa.Engine, default: SqliteBegin) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite's own BEGIN off
        dbapi_connection.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")

    @sa.event.listens_for(engine, "begin")
    def _emit_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', default)}")
