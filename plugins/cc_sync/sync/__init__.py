"""The two-way sync's steps, as the DAG runs them: window, plan, load, record.

These functions know hooks and the bookkeeping, never the Airflow task context: the DAG
(dags/constant_contact_sync.py) passes them what they need, and the tests call them directly.

- :mod:`.resources`: the hooks and the bookkeeping one run works with, from connection ids.
- :mod:`.window`: what to read this run (full or incremental, from which watermarks).
- :mod:`.lease`: one writer at a time (a sync or a send-list run), whatever started it (scheduler,
  manual, backfill, `airflow dags test`); renewed while the run works, so a killed run frees it
  within minutes.
- :mod:`.planning`: compare, link and resolve: the engine fed from the bookkeeping.
- :mod:`.loading`: the plan written to Constant Contact and to the member database.
- :mod:`.recording`: links, base, change log, consent, reviews, watermarks and the run record.
- :mod:`.xcom`: a plan as a dict of DataFrames, the form XCom stores in object storage.
"""
