"""Review decisions: who decided what about a review item, when and why, and which run applied it.

Also the indexes the sync console reads by (runs per DAG by start, open reviews by age, the change
log by contact), so its status page and review queue stay fast on a million members.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = 64
RUN_ID = 250


def _prefix() -> str:
    return context.config.attributes.get("table_prefix", "ccsync_")


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}decisions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("review_id", sa.BigInteger(), nullable=True),
        sa.Column("decision", sa.String(30), nullable=False),
        sa.Column("member_id", sa.String(ID)),
        sa.Column("contact_id", sa.String(ID)),
        sa.Column("field", sa.String(100)),
        sa.Column("why", sa.Text()),
        sa.Column("decided_by", sa.String(250), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("applied_run_id", sa.String(RUN_ID)),
        sa.Column("applied_at", sa.DateTime()),
        sa.Column("outcome", sa.Text()),
    )
    op.create_index(f"{p}ix_decisions_status", f"{p}decisions", ["status"])
    op.create_index(f"{p}ix_decisions_pair", f"{p}decisions", ["member_id", "contact_id"])
    op.create_index(f"{p}ix_decisions_review", f"{p}decisions", ["review_id"])
    op.create_index(f"{p}ix_runs_dag_started", f"{p}runs", ["dag_id", "started_at"])
    op.create_index(f"{p}ix_runs_started", f"{p}runs", ["started_at"])
    op.create_index(f"{p}ix_reviews_status_created", f"{p}reviews", ["status", "created_at"])
    op.create_index(f"{p}ix_reviews_member", f"{p}reviews", ["member_id"])
    op.create_index(f"{p}ix_reviews_contact", f"{p}reviews", ["contact_id"])
    op.create_index(f"{p}ix_changes_contact", f"{p}changes", ["contact_id"])


def downgrade() -> None:
    p = _prefix()
    op.drop_index(f"{p}ix_changes_contact", table_name=f"{p}changes")
    op.drop_index(f"{p}ix_reviews_contact", table_name=f"{p}reviews")
    op.drop_index(f"{p}ix_reviews_member", table_name=f"{p}reviews")
    op.drop_index(f"{p}ix_reviews_status_created", table_name=f"{p}reviews")
    op.drop_index(f"{p}ix_runs_started", table_name=f"{p}runs")
    op.drop_index(f"{p}ix_runs_dag_started", table_name=f"{p}runs")
    op.drop_index(f"{p}ix_decisions_review", table_name=f"{p}decisions")
    op.drop_index(f"{p}ix_decisions_pair", table_name=f"{p}decisions")
    op.drop_index(f"{p}ix_decisions_status", table_name=f"{p}decisions")
    op.drop_table(f"{p}decisions")
