"""A dry run's plan: what it would have written where, kept so a person can read it before a real run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = 64
RUN_ID = 250


def _prefix() -> str:
    return context.config.attributes.get("table_prefix", "ccsync_")


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}planned_changes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("run_id", sa.String(RUN_ID), nullable=False),
        sa.Column("direction", sa.String(20), nullable=False),
        sa.Column("member_id", sa.String(ID)),
        sa.Column("contact_id", sa.String(ID)),
        sa.Column("field", sa.String(100), nullable=False),
        sa.Column("old_value", sa.Text()),
        sa.Column("new_value", sa.Text()),
        sa.Column("reason", sa.String(255)),
        sa.Column("planned_at", sa.DateTime(), nullable=False),
    )
    op.create_index(f"{p}ix_planned_changes_run", f"{p}planned_changes", ["run_id"])


def downgrade() -> None:
    p = _prefix()
    op.drop_index(f"{p}ix_planned_changes_run", table_name=f"{p}planned_changes")
    op.drop_table(f"{p}planned_changes")
