"""Alembic environment for the sync's bookkeeping tables (run programmatically by cc_sync.member_db.migrate).

The caller passes an open connection and the table prefix in ``config.attributes``; the version
table carries the prefix too, so the organisation's own Alembic history is never touched.
"""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes["connection"]
prefix = config.attributes.get("table_prefix", "ccsync_")

context.configure(
    connection=connection,
    version_table=f"{prefix}alembic_version",
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=connection.dialect.name != "mysql",
)

with context.begin_transaction():
    context.run_migrations()
