"""Timestamps keep their microseconds on MariaDB/MySQL, as the tables of 0001 always did.

Migrations 0002 to 0007 declared their timestamps as plain ``DATETIME``, which MariaDB and MySQL
store to the whole second, while the table definitions (``UtcDateTime``) and 0001 use
``DATETIME(6)``. A lease's expiry, a load step's time or a directory entry's ``seen_at`` lost up to
a second. PostgreSQL and SQLite were never affected: this revision changes nothing there.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# (table, column, nullable) of every timestamp 0002-0007 created.
TIMESTAMPS = (
    ("cc_directory", "updated_at", True),
    ("cc_directory", "seen_at", False),
    ("lease", "acquired_at", True),
    ("lease", "expires_at", True),
    ("load_steps", "done_at", False),
    ("planned_changes", "planned_at", False),
    ("base_history", "saved_at", False),
    ("decisions", "decided_at", False),
    ("decisions", "applied_at", True),
    ("event_registrations", "registered_at", True),
    ("event_registrations", "updated_at", False),
    ("tag_base", "saved_at", False),
)


def _prefix() -> str:
    return context.config.attributes.get("table_prefix", "ccsync_")


def _retype(new: sa.types.TypeEngine, old: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    p = _prefix()
    for table, column, nullable in TIMESTAMPS:
        op.alter_column(f"{p}{table}", column, type_=new, existing_type=old, existing_nullable=nullable)


def upgrade() -> None:
    _retype(mysql.DATETIME(fsp=6), mysql.DATETIME())


def downgrade() -> None:
    _retype(mysql.DATETIME(), mysql.DATETIME(fsp=6))
