"""The change log loses its hashed key: a change is the same change by its run, direction,
member, contact and field, and only a run that logged before is looked up (cc_sync's
``Bookkeeping.append_changes``).

The unique index on a SHA-1 of those five took inserts at random places of a B-tree as large as
the log: ~40% of the CPU of a first install's change-log insert (772,016 rows, SQLite 7.9 -> 4.7
CPU s). The lookup goes through ``ix_changes_run_field`` (run, field), which replaces the run's
index: a step that logs other fields later in the run (the tags after the sync's record) finds
its own fields' rows only, not the hundreds of thousands the record logged.

Downgrade puts the column and its unique index back, each existing row keyed by its id (unique,
not the old hash): a run logged before the downgrade is not recognised by the older code if it
reruns, which the older code's idempotence then does not cover.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

KEY = 40


def _prefix() -> str:
    return context.config.attributes.get("table_prefix", "ccsync_")


def upgrade() -> None:
    p = _prefix()
    op.drop_index(f"{p}ix_changes_key", table_name=f"{p}changes")
    op.drop_index(f"{p}ix_changes_run", table_name=f"{p}changes")
    op.create_index(f"{p}ix_changes_run_field", f"{p}changes", ["run_id", "field"])
    with op.batch_alter_table(f"{p}changes") as batch:
        batch.drop_column("change_key")


def downgrade() -> None:
    p = _prefix()
    with op.batch_alter_table(f"{p}changes") as batch:
        batch.add_column(sa.Column("change_key", sa.String(KEY), nullable=True))
    changes = sa.table(f"{p}changes", sa.column("id"), sa.column("change_key"))
    op.execute(changes.update().values(change_key=sa.cast(changes.c.id, sa.String(KEY))))
    with op.batch_alter_table(f"{p}changes") as batch:
        batch.alter_column("change_key", existing_type=sa.String(KEY), nullable=False)
    op.create_index(f"{p}ix_changes_key", f"{p}changes", ["change_key"], unique=True)
    op.drop_index(f"{p}ix_changes_run_field", table_name=f"{p}changes")
    op.create_index(f"{p}ix_changes_run", f"{p}changes", ["run_id"])
