"""Two-way sync between a SQL member database and Constant Contact (v3 API), run by Airflow.

Subpackages:

- ``cc_sync.fields``: the canonical contact fields both sides are mapped onto.
- ``cc_sync.constant_contact``: the Constant Contact hook (auth, rate limit, budget, retries,
  pagination, bulk activities) and the conversion of CC contacts to and from canonical rows.
- ``cc_sync.member_db``: the member-table mapping, the member database hook and the sync's
  bookkeeping tables.
- ``cc_sync.engine``: the pure pandas sync engine (compare, link, resolve); no Airflow imports.
- ``cc_sync.operators``: the reusable extract and load operators.
"""
