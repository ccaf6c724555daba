"""The member database layer: how the organisation's table maps to contacts, and the sync's bookkeeping.

- :mod:`cc_sync.member_db.mapping`: the YAML mapping (table, columns, policies, scope, segments),
  validated on load with line numbers, and against the live database.
- :mod:`cc_sync.member_db.hook`: :class:`MemberDatabaseHook`, chunked extract into DataFrames and
  batched optimistic writes.
- :mod:`cc_sync.member_db.bookkeeping`: the sync's own tables (links, base, watermarks, change log,
  review queue, consent ledger, activity, runs) and dialect-portable upserts.
- :mod:`cc_sync.member_db.migrate`: Alembic migrations of the bookkeeping tables.
- :mod:`cc_sync.member_db.validate`: checks on outgoing rows (email, lengths, control characters).
"""
