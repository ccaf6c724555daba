"""The one engine factory (cc_sync/databases.py): what every SQLite connection it opens is given."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
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
    refused at once while another connection writes; an IMMEDIATE one waits in the busy timeout."""
    url = f"sqlite:///{tmp_path / 'members.db'}"
    engine, other = create_engine(url), create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (0)")

    def read_then_write(begin: Callable[[], ContextManager[sa.Connection]]) -> str | None:
        try:
            with begin() as conn:
                x = conn.exec_driver_sql("SELECT max(x) FROM t").scalar()
                conn.exec_driver_sql(f"INSERT INTO t VALUES ({x + 1})")
        except sa.exc.OperationalError as error:
            return str(error)
        return None

    outcomes: dict[str, str | None] = {}
    for name, begin in {"deferred": engine.begin, "writing": lambda: begin_writing(engine)}.items():
        with other.begin() as writer:
            writer.exec_driver_sql("INSERT INTO t VALUES (-1)")
            # The writer now holds the reserved lock; a reader still gets in (SQLite's rollback journal).
            thread = threading.Thread(target=lambda n=name, b=begin: outcomes.update({n: read_then_write(b)}))
            thread.start()
            time.sleep(0.5)
        thread.join(timeout=30)
    assert outcomes["deferred"] is not None
    assert "locked" in outcomes["deferred"]
    assert outcomes["writing"] is None
    with engine.connect() as conn:
        assert sorted(conn.exec_driver_sql("SELECT x FROM t").scalars()) == [-1, -1, 0, 1]
    engine.dispose()
    other.dispose()
