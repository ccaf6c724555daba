"""Event registrations per member: one row per Constant Contact registration id (cc_sync.events).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = 64
RUN_ID = 250


def _prefix() -> str:
    return context.config.attributes.get("table_prefix", "ccsync_")


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}event_registrations",
        sa.Column("registration_id", sa.String(ID), primary_key=True),
        sa.Column("event_id", sa.String(ID), nullable=False),
        sa.Column("track_id", sa.String(ID), nullable=False),
        sa.Column("member_id", sa.String(ID)),
        sa.Column("contact_id", sa.String(ID)),
        sa.Column("matched_by", sa.String(30), nullable=False),
        sa.Column("email", sa.Text()),
        sa.Column("registration_status", sa.String(30)),
        sa.Column("payment_status", sa.String(30)),
        sa.Column("checkin_status", sa.String(30)),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.Column("checked_in_tickets", sa.Integer(), nullable=False),
        sa.Column("total", sa.Numeric(12, 2)),
        sa.Column("registered_at", sa.DateTime()),
        sa.Column("first_run_id", sa.String(RUN_ID)),
        sa.Column("run_id", sa.String(RUN_ID)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index(f"{p}ix_event_registrations_event", f"{p}event_registrations", ["event_id"])
    op.create_index(f"{p}ix_event_registrations_member", f"{p}event_registrations", ["member_id"])


def downgrade() -> None:
    p = _prefix()
    op.drop_index(f"{p}ix_event_registrations_member", table_name=f"{p}event_registrations")
    op.drop_index(f"{p}ix_event_registrations_event", table_name=f"{p}event_registrations")
    op.drop_table(f"{p}event_registrations")
