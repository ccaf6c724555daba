"""The one error family every part of the sync shares: errors a task retry cannot fix.

A guard rail's refusal, a bookkeeping schema behind the code, a form choice that cannot be carried
out, a refused authorization or a spent daily quota give the same answer on every attempt: a person
has to act first (change the choice, run ``make migrate``, re-authorize, wait for the reset).
Deriving from Airflow's ``AirflowFailException`` makes the task fail at once, with the message,
instead of retrying it ``retries`` times ``retry_delay`` apart for the same result.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException


class NotRetryableError(AirflowFailException):
    """An error the next attempt would meet again; the message says what a person must do."""
