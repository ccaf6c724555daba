"""Constant Contact events and their registrations into the member database: the events job's logic.

- :mod:`.pull`: read the registrations of the events still open in the run's window and store them
  per member (Airflow-free); the DAG (dags/constant_contact_events.py) wraps it in the shared job
  lifecycle (:mod:`cc_sync.job`).

This package module itself stays light (the DAG file reads :data:`DEFAULT_SETTLE` when parsed).
"""

from __future__ import annotations

from datetime import timedelta

# Payments, cancellations and check-ins keep changing an event's registrations for a while after
# it ends: its registrations are read until this long after its end, then never again.
DEFAULT_SETTLE = timedelta(days=7)
