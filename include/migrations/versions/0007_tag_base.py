"""The tags' base: per linked member and tag column, the value both sides agreed on (cc_sync.tags).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = 64
RUN_ID = 250


def _prefix() -> str:
    return context.config.attributes.get("table_prefix", "ccsync_")


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}tag_base",
        sa.Column("member_id", sa.String(ID), primary_key=True),
        sa.Column("tag_column", sa.String(100), primary_key=True),
        sa.Column("contact_id", sa.String(ID), nullable=False),
        sa.Column("value", sa.String(255)),
        sa.Column("run_id", sa.String(RUN_ID)),
        sa.Column("saved_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table(f"{_prefix()}tag_base")
