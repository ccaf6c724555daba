"""The one engine factory (cc_sync/databases.py): what every SQLite connection it opens is given."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from cc_sync.databases import SQLITE_BUSY_TIMEOUT_SECONDS, SQLITE_CACHE_KIB, create_engine


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
            try:
                other.begin()
                raised = None
            except sa.exc.OperationalError as error:
                raised = str(error)
    assert raised is not None
    assert "locked" in raised
    first.dispose()
    second.dispose()
