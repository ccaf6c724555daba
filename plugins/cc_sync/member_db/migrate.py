"""Migrate the bookkeeping tables with Alembic, run programmatically (no alembic.ini at the root).

Usage::

    python -m cc_sync.member_db.migrate upgrade|downgrade|current|check
        [--db-url URL] [--prefix P] [--mapping PATH]

``make migrate`` runs ``upgrade``; the DAGs call :func:`schema_is_current` (or ``check``, which exits
non-zero when the schema is behind) before they touch the tables. The tables are the mapping's
(``--mapping``, else ``$CC_SYNC_MAPPING``, else include/config/member_mapping.yaml), named with its
``bookkeeping.table_prefix`` unless ``--prefix`` is given. The database is, in order: the
``--db-url`` given, the mapping's ``bookkeeping.database_url``, ``$CC_SYNC_MEMBER_DB_URL``, the
demo's var/members.db. The version table is
``<prefix>alembic_version``, so an organisation's own Alembic history is left alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cc_sync import settings
from cc_sync.member_db.bookkeeping import DEFAULT_PREFIX
from cc_sync.member_db.connection import create_member_engine

DEFAULT_MAPPING = settings.DEFAULT_MAPPING_PATH


def alembic_config(connection: sa.Connection | None = None, prefix: str = DEFAULT_PREFIX) -> Config:
    config = Config()
    config.set_main_option("script_location", str(settings.migrations_dir()))
    config.attributes["connection"] = connection
    config.attributes["table_prefix"] = prefix
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: sa.Engine, prefix: str = DEFAULT_PREFIX) -> str | None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": f"{prefix}alembic_version"})
        return context.get_current_revision()


def schema_is_current(engine: sa.Engine, prefix: str = DEFAULT_PREFIX) -> bool:
    """True when the bookkeeping tables are at the newest migration."""
    return current_revision(engine, prefix) == head_revision()


def upgrade(engine: sa.Engine, revision: str = "head", prefix: str = DEFAULT_PREFIX) -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn, prefix), revision)


def downgrade(engine: sa.Engine, revision: str = "base", prefix: str = DEFAULT_PREFIX) -> None:
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn, prefix), revision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cc_sync.member_db.migrate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=["upgrade", "downgrade", "current", "check"])
    parser.add_argument("revision", nargs="?", help="target revision (upgrade: head, downgrade: base)")
    parser.add_argument(
        "--db-url", help="the member database (default: $CC_SYNC_MEMBER_DB_URL, then the demo's)"
    )
    parser.add_argument("--prefix", help="bookkeeping table prefix (default: the mapping's)")
    parser.add_argument("--mapping", default=settings.mapping_path())
    args = parser.parse_args(argv)
    from cc_sync.member_db.mapping import load_mapping

    bookkeeping = load_mapping(args.mapping).bookkeeping
    args.prefix = args.prefix or bookkeeping.table_prefix
    db_url = bookkeeping.database_url or args.db_url or settings.member_db_url()
    url = sa.make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_member_engine(url)
    shown = url.render_as_string(hide_password=True)
    try:
        if args.action == "upgrade":
            upgrade(engine, args.revision or "head", args.prefix)
            print(f"{shown}: bookkeeping schema at {current_revision(engine, args.prefix)}")
        elif args.action == "downgrade":
            downgrade(engine, args.revision or "base", args.prefix)
            print(f"{shown}: bookkeeping schema at {current_revision(engine, args.prefix)}")
        elif args.action == "current":
            print(f"{shown}: current {current_revision(engine, args.prefix)}, head {head_revision()}")
        else:
            current, head = current_revision(engine, args.prefix), head_revision()
            if current != head:
                print(f"{shown}: bookkeeping schema is at {current}, needs {head}: run `make migrate`")
                return 1
            print(f"{shown}: bookkeeping schema is current ({head})")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
