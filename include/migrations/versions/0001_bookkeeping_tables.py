"""The bookkeeping tables: links, base, watermarks, changes, reviews, consent, activity, runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 64
RUN_ID = 250
KEY = 40
# UTC, naive; MariaDB keeps microseconds only when asked.
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _prefix() -> str:
    return context.config.attributes.get("table_prefix", "ccsync_")


def _pk_id() -> sa.Column:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}links",
        sa.Column("member_id", sa.String(ID), primary_key=True),
        sa.Column("contact_id", sa.String(ID), nullable=False),
        sa.Column("rule", sa.String(50), nullable=False),
        sa.Column("linked_at", TIMESTAMP, nullable=False),
        sa.Column("run_id", sa.String(RUN_ID)),
    )
    op.create_index(f"{p}ix_links_contact", f"{p}links", ["contact_id"], unique=True)
    op.create_table(
        f"{p}base",
        sa.Column("member_id", sa.String(ID), primary_key=True),
        sa.Column("contact_id", sa.String(ID)),
        sa.Column("field_values", sa.Text(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("member_hash", sa.String(KEY)),
        sa.Column("saved_at", TIMESTAMP, nullable=False),
        sa.Column("run_id", sa.String(RUN_ID)),
    )
    op.create_table(
        f"{p}watermarks",
        sa.Column("stream", sa.String(100), primary_key=True),
        sa.Column("watermark", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        f"{p}changes",
        _pk_id(),
        sa.Column("change_key", sa.String(KEY), nullable=False),
        sa.Column("run_id", sa.String(RUN_ID), nullable=False),
        sa.Column("direction", sa.String(20), nullable=False),
        sa.Column("member_id", sa.String(ID)),
        sa.Column("contact_id", sa.String(ID)),
        sa.Column("field", sa.String(100), nullable=False),
        sa.Column("old_value", sa.Text()),
        sa.Column("new_value", sa.Text()),
        sa.Column("reason", sa.String(255)),
        sa.Column("changed_at", TIMESTAMP, nullable=False),
    )
    op.create_index(f"{p}ix_changes_key", f"{p}changes", ["change_key"], unique=True)
    op.create_index(f"{p}ix_changes_run", f"{p}changes", ["run_id"])
    op.create_index(f"{p}ix_changes_member", f"{p}changes", ["member_id"])
    op.create_table(
        f"{p}reviews",
        _pk_id(),
        sa.Column("open_key", sa.String(KEY)),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("member_id", sa.String(ID)),
        sa.Column("contact_id", sa.String(ID)),
        sa.Column("email_hint", sa.String(100)),
        sa.Column("detail", sa.Text()),
        sa.Column("run_id", sa.String(RUN_ID)),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("resolved_at", TIMESTAMP),
    )
    op.create_index(f"{p}ix_reviews_open", f"{p}reviews", ["open_key"], unique=True)
    op.create_index(f"{p}ix_reviews_status", f"{p}reviews", ["status", "kind"])
    op.create_table(
        f"{p}consent",
        _pk_id(),
        sa.Column("consent_key", sa.String(KEY), nullable=False),
        sa.Column("member_id", sa.String(ID)),
        sa.Column("contact_id", sa.String(ID)),
        sa.Column("side", sa.String(20), nullable=False),
        sa.Column("source", sa.String(100)),
        sa.Column("opted_out_at", TIMESTAMP),
        sa.Column("run_id", sa.String(RUN_ID)),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
    )
    op.create_index(f"{p}ix_consent_key", f"{p}consent", ["consent_key"], unique=True)
    op.create_index(f"{p}ix_consent_member", f"{p}consent", ["member_id"])
    op.create_index(f"{p}ix_consent_contact", f"{p}consent", ["contact_id"])
    op.create_table(
        f"{p}activity",
        _pk_id(),
        sa.Column("event_key", sa.String(KEY), nullable=False),
        sa.Column("contact_id", sa.String(ID)),
        sa.Column("member_id", sa.String(ID)),
        sa.Column("campaign_id", sa.String(ID)),
        sa.Column("campaign_activity_id", sa.String(ID)),
        sa.Column("event_type", sa.String(30), nullable=False),
        sa.Column("occurred_at", TIMESTAMP),
        sa.Column("detail", sa.Text()),
        sa.Column("run_id", sa.String(RUN_ID)),
    )
    op.create_index(f"{p}ix_activity_key", f"{p}activity", ["event_key"], unique=True)
    op.create_index(f"{p}ix_activity_member", f"{p}activity", ["member_id"])
    op.create_table(
        f"{p}runs",
        sa.Column("run_id", sa.String(RUN_ID), primary_key=True),
        sa.Column("dag_id", sa.String(250)),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP),
        sa.Column("counts", sa.Text()),
        sa.Column("api_calls", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    p = _prefix()
    for name in ("runs", "activity", "consent", "reviews", "changes", "watermarks", "base", "links"):
        op.drop_table(f"{p}{name}")
