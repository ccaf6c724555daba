"""The member side's preflight: is the database reachable, does the mapping fit it, is the
bookkeeping schema current, and how many members are in scope.

Run by the member database connection's Test button and by the first task of the sync and the
send-list, before the lease is taken and before any Constant Contact call: a wrong URL, a refused
login, a missing table or column or a schema behind the code fails the run at once with the
connection or file to fix (a :class:`~cc_sync.errors.NotRetryableError`), instead of an extract
failing after the Constant Contact side spent API calls, or a sensor retrying for minutes.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import sqlalchemy as sa

from cc_sync.member_db.connection import (
    MemberDatabaseConfigError,
    MemberDbSettings,
    check_connects,
    create_member_engine,
    parse_url,
)
from cc_sync.member_db.mapping import MappingError, MemberMapping

log = logging.getLogger(__name__)


class SchemaNotCurrent(MemberDatabaseConfigError):
    """The bookkeeping tables are missing or behind the code: run `make migrate`."""


@dataclass(frozen=True)
class PreflightReport:
    """What the preflight found (no password: the URL is shown with *** for it)."""

    conn_id: str
    shown_url: str
    table: str
    members_in_scope: int | None  # counted only when asked (the connection's Test)
    schema_revision: str | None

    def describe(self) -> str:
        counted = "" if self.members_in_scope is None else f"{self.members_in_scope} member(s) in scope, "
        return (
            f"Connected to {self.shown_url}: table {self.table!r} matches the mapping, "
            f"{counted}bookkeeping schema current ({self.schema_revision})."
        )


def check_member_database(
    settings: MemberDbSettings, mapping: MemberMapping, *, count_members: bool = False
) -> PreflightReport:
    """Check the member database against the mapping; raise a configuration error naming the fix.

    ``count_members`` adds the count of members in scope (a scan of the member table): the
    connection's Test shows it; a run's preflight, which the lease sensor repeats on every poke,
    does not need it."""
    from cc_sync.member_db.migrate import current_revision, head_revision

    engine = create_member_engine(settings.url)
    bookkeeping_engine: sa.Engine | None = None
    try:
        check_connects(engine, settings)
        try:
            mapping.validate_against(engine)
        except MappingError as exc:
            raise MappingError(
                f"{exc} (checked against the database of connection {settings.conn_id!r}, "
                f"{settings.shown_url}): fix the mapping or the connection's URL"
            ) from None
        book = mapping.bookkeeping
        if book.database_url:
            book_settings = MemberDbSettings(
                f"{settings.conn_id} (the mapping's bookkeeping.database_url)",
                parse_url(book.database_url, f"{mapping.source}: bookkeeping.database_url"),
            )
            bookkeeping_engine = create_member_engine(book_settings.url)
            check_connects(bookkeeping_engine, book_settings)
        current, head = current_revision(bookkeeping_engine or engine, book.table_prefix), head_revision()
        if current != head:
            raise SchemaNotCurrent(
                f"connection {settings.conn_id!r} ({settings.shown_url}): the sync's bookkeeping tables "
                f"({book.table_prefix}*) are at revision {current or 'none (not created)'}, the code "
                f"needs {head}: run `make migrate` (python -m cc_sync.member_db.migrate upgrade "
                "--db-url <the URL>)"
            )
        count = _members_in_scope(engine, mapping) if count_members else None
    finally:
        engine.dispose()
        if bookkeeping_engine is not None:
            bookkeeping_engine.dispose()
    report = PreflightReport(settings.conn_id, settings.shown_url, mapping.table, count, current)
    log.info("Member database preflight: %s", report.describe())
    return report


def _members_in_scope(engine: sa.Engine, mapping: MemberMapping) -> int:
    with warnings.catch_warnings():
        # Functional indexes (lower(email)) cannot be reflected; the count does not need them.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        table = sa.Table(mapping.table, sa.MetaData(), autoload_with=engine, schema=mapping.schema)
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(table).where(mapping.where_in_scope(table))
        return int(conn.execute(query).scalar_one())
