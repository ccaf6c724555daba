"""Campaign activity from Constant Contact into the member database: the activity job's logic.

- :mod:`.pull`: read the window's tracking reports and store them per member (Airflow-free); the
  DAG (dags/constant_contact_activity.py) wraps it in the shared job lifecycle (:mod:`cc_sync.job`).

This package module itself stays light (the DAG file reads :data:`DEFAULT_LOOKBACK` when parsed).
"""

from __future__ import annotations

from datetime import timedelta

# Opens and clicks keep arriving for days after a send: also read campaigns this much older.
DEFAULT_LOOKBACK = timedelta(days=7)
