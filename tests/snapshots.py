"""Snapshots of test worlds: build a world once per session, then copy it into each test's database.

A DAG scenario used to build its world from nothing (sample members, seeded contacts, often a first
sync) before the part it tests. :class:`WorldSnapshots` keeps, per key (dialect, DAG, seeding, and
whether the first sync has run), a copy of the member database, the emulator's account (through
``GET /_admin/snapshot``) and the Constant Contact state database (the rotated refresh token, the
budget), and puts them back for the next test that asks for the same world:

- SQLite: the file, copied with SQLite's backup API;
- PostgreSQL: ``CREATE DATABASE <test> TEMPLATE <snapshot>``;
- MariaDB: each table copied into the test's database (``CREATE TABLE … LIKE`` + ``INSERT … SELECT``);
- the emulator: ``POST /_admin/restore`` (its account, counters and request log as they were).

A snapshot is taken only after the world it copies was built and checked by a real test, so a broken
first sync still fails the test that built it, and every later test starts from exactly that state.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from include.cc_emulator.testing import EmulatorHandle


def dialect_of(db_url: str) -> str:
    name = sa.make_url(db_url).get_backend_name()
    return "mariadb" if name in ("mysql", "mariadb") else name


def _sqlite_path(db_url: str) -> Path:
    database = sa.make_url(db_url).database
    assert database, f"not a file database: {db_url}"
    return Path(database)


def copy_sqlite_file(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (its WAL included), whatever connections are open."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _admin_engine(db_url: str) -> sa.Engine:
    """An AUTOCOMMIT engine on the server of ``db_url``, connected to its admin database."""
    url = sa.make_url(db_url)
    admin = url.set(database="postgres" if dialect_of(db_url) == "postgresql" else "mysql")
    return sa.create_engine(admin, isolation_level="AUTOCOMMIT")


def _terminate_other_sessions(conn: sa.Connection, database: str) -> None:
    """PostgreSQL copies a template only while nobody is connected to it."""
    conn.execute(
        sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()"
        ),
        {"name": database},
    )


def copy_database(source_url: str, target_url: str, *, target_exists: bool) -> None:
    """Copy the whole database at ``source_url`` to ``target_url`` (same server and dialect)."""
    dialect = dialect_of(source_url)
    if dialect == "sqlite":
        copy_sqlite_file(_sqlite_path(source_url), _sqlite_path(target_url))
        return
    source = sa.make_url(source_url).database
    target = sa.make_url(target_url).database
    admin = _admin_engine(source_url)
    try:
        with admin.connect() as conn:
            if dialect == "postgresql":
                if target_exists:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
                _terminate_other_sessions(conn, str(source))
                conn.execute(sa.text(f'CREATE DATABASE "{target}" TEMPLATE "{source}"'))
                return
            if not target_exists:
                conn.execute(sa.text(f"CREATE DATABASE `{target}`"))
            tables = conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = :db AND table_type = 'BASE TABLE'"
                ),
                {"db": source},
            ).scalars()
            conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
            for table in list(tables):
                conn.execute(sa.text(f"CREATE TABLE `{target}`.`{table}` LIKE `{source}`.`{table}`"))
                conn.execute(sa.text(f"INSERT INTO `{target}`.`{table}` SELECT * FROM `{source}`.`{table}`"))
            conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 1"))
    finally:
        admin.dispose()


def drop_database(db_url: str) -> None:
    dialect = dialect_of(db_url)
    if dialect == "sqlite":
        _sqlite_path(db_url).unlink(missing_ok=True)
        return
    name = sa.make_url(db_url).database
    admin = _admin_engine(db_url)
    try:
        with admin.connect() as conn:
            if dialect == "postgresql":
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        admin.dispose()


@dataclass
class Snapshot:
    """One saved world: where its member database copy lives, the emulator's account, the CC state
    database copy (if the world had one), and whatever the builder wants to hand on (``extra``)."""

    db_url: str
    emulator_state: dict[str, Any]
    cc_state_file: Path | None
    extra: dict[str, Any] = field(default_factory=dict)


class WorldSnapshots:
    """Session-wide store of world snapshots (one per pytest process, so per xdist worker)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.snapshots: dict[Hashable, Snapshot] = {}

    def _snapshot_url(self, db_url: str) -> str:
        name = f"ccsync_snap_{uuid.uuid4().hex[:12]}"
        if dialect_of(db_url) == "sqlite":
            return f"sqlite:///{self.directory / (name + '.db')}"
        return sa.make_url(db_url).set(database=name).render_as_string(hide_password=False)

    def get(self, key: Hashable) -> Snapshot | None:
        return self.snapshots.get(key)

    def save(
        self,
        key: Hashable,
        *,
        db_url: str,
        emulator: EmulatorHandle,
        cc_state_url: str | None = None,
        extra: dict[str, Any] | None = None,
        before_copy: Callable[[], None] | None = None,
    ) -> Snapshot:
        """Copy the world now at ``db_url`` (and the emulator, and the CC state database) under ``key``.

        ``before_copy`` is called first: it must close the test's connections to ``db_url`` when the
        copy needs that (PostgreSQL copies a template only while nobody is connected to it).
        """
        if before_copy is not None:
            before_copy()
        snapshot_url = self._snapshot_url(db_url)
        copy_database(db_url, snapshot_url, target_exists=False)
        cc_state_file = None
        if cc_state_url is not None and _sqlite_path(cc_state_url).exists():
            cc_state_file = self.directory / f"{uuid.uuid4().hex[:12]}-cc_state.db"
            copy_sqlite_file(_sqlite_path(cc_state_url), cc_state_file)
        snapshot = Snapshot(snapshot_url, emulator.admin.snapshot(), cc_state_file, dict(extra or {}))
        self.snapshots[key] = snapshot
        return snapshot

    def restore(
        self, snapshot: Snapshot, *, db_url: str, emulator: EmulatorHandle, cc_state_url: str | None = None
    ) -> None:
        """Make the (fresh, empty) database at ``db_url`` and the emulator hold the snapshot's world."""
        copy_database(snapshot.db_url, db_url, target_exists=True)
        emulator.admin.restore(snapshot.emulator_state)
        if cc_state_url is not None and snapshot.cc_state_file is not None:
            copy_sqlite_file(snapshot.cc_state_file, _sqlite_path(cc_state_url))

    def drop_all(self) -> None:
        for snapshot in self.snapshots.values():
            drop_database(snapshot.db_url)
        self.snapshots.clear()
