"""The base a run replaced: what an undo restores a link's merge base to.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = 64
RUN_ID = 250
KEY = 40


def _prefix() -> str:
    return context.config.attributes.get("table_prefix", "ccsync_")


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}base_history",
        sa.Column("run_id", sa.String(RUN_ID), primary_key=True),
        sa.Column("member_id", sa.String(ID), primary_key=True),
        sa.Column("contact_id", sa.String(ID)),
        sa.Column("field_values", sa.Text(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("member_hash", sa.String(KEY)),
        sa.Column("saved_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table(f"{_prefix()}base_history")
