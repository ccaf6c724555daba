"""The sync's run state: the CC contact directory, the one-sync-at-a-time lease, the load journal.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = 64
RUN_ID = 250


def _prefix() -> str:
    return context.config.attributes.get("table_prefix", "ccsync_")


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}cc_directory",
        sa.Column("contact_id", sa.String(ID), primary_key=True),
        sa.Column("email_key", sa.String(100)),
        sa.Column("email", sa.String(100)),
        sa.Column("first_name", sa.String(100)),
        sa.Column("last_name", sa.String(100)),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
    )
    op.create_index(f"{p}ix_cc_directory_email", f"{p}cc_directory", ["email_key"])
    op.create_table(
        f"{p}lease",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(RUN_ID)),
        sa.Column("acquired_at", sa.DateTime()),
        sa.Column("expires_at", sa.DateTime()),
    )
    op.create_table(
        f"{p}load_steps",
        sa.Column("run_id", sa.String(RUN_ID), primary_key=True),
        sa.Column("step", sa.String(200), primary_key=True),
        sa.Column("detail", sa.Text()),
        sa.Column("done_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    p = _prefix()
    op.drop_table(f"{p}load_steps")
    op.drop_table(f"{p}lease")
    op.drop_index(f"{p}ix_cc_directory_email", table_name=f"{p}cc_directory")
    op.drop_table(f"{p}cc_directory")
