"""The one engine factory (cc_sync/databases.py): what every SQLite connection it opens is given."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from cc_sync.databases import SQLITE_BUSY_TIMEOUT_SECONDS, SQLITE_CACHE_KIB, begin_writing, create_engine


def test_a_sqlite_connection_has_the_busy_timeout_and_the_page_cache(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'members.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_SECONDS * 1000
    engine.dispose()


def test_a_sqlite_transaction_begins_as_the_connection_asks(tmp_path: Path) -> None:
    """IMMEDIATE takes the write lock at BEGIN: a second writer's IMMEDIATE waits, then gives up."""
    url = f"sqlite:///{tmp_path / 'members.db'}"
    first = create_engine(url, sqlite_begin="IMMEDIATE")
    second = create_engine(url, connect_args={"timeout": 0.1})
    with first.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with first.begin() as holder:
        holder.exec_driver_sql("SELECT count(*) FROM t").scalar()
        with second.connect() as other:
            other.execution_options(sqlite_begin="IMMEDIATE")
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                other.begin()
    first.dispose()
    second.dispose()


def test_a_transaction_that_reads_then_writes_waits_for_another_writer(tmp_path: Path) -> None:
    """Why every write transaction uses ``begin_writing``: a plain (DEFERRED) one that has read is
    refused at once while another connection writes; ``begin_writing``'s waits its turn in the
    busy timeout, then writes."""
    url = f"sqlite:///{tmp_path / 'members.db'}"
    engine, other = create_engine(url), create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (0)")

    def read_then_write(conn: sa.Connection) -> None:
        x = conn.exec_driver_sql("SELECT max(x) FROM t").scalar()
        conn.exec_driver_sql(f"INSERT INTO t VALUES ({x + 1})")

    with other.begin() as writer:
        writer.exec_driver_sql("INSERT INTO t VALUES (-1)")  # holds the write lock; readers still get in
        # Refused at once, in this thread: the busy timeout (30 s) is not even waited out.
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="locked"), engine.begin() as conn:
            read_then_write(conn)
        assert time.monotonic() - started < 5

    outcome: list[BaseException | None] = []
    waiting = threading.Event()

    def write_when_allowed() -> None:
        waiting.set()
        try:
            with begin_writing(engine) as conn:
                read_then_write(conn)
            outcome.append(None)
        except BaseException as error:  # handed to the test's thread to assert on
            outcome.append(error)

    with other.begin() as writer:
        writer.exec_driver_sql("INSERT INTO t VALUES (-1)")
        thread = threading.Thread(target=write_when_allowed)
        thread.start()
        waiting.wait(10)
        time.sleep(0.3)  # the thread is at its BEGIN IMMEDIATE, waiting for this writer
    thread.join(timeout=30)
    assert outcome == [None]
    with engine.connect() as conn:
        assert sorted(conn.exec_driver_sql("SELECT x FROM t").scalars()) == [-1, -1, 0, 1]
    engine.dispose()
    other.dispose()
