"""The Celery stack's pure parts (include/airflow_celery.py), fast: the settings it gives Airflow
and the sliding 1-second window the end-to-end test judges the rate limit with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.airflow_celery import busiest_second, celery_env

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_celery_env_puts_metadata_and_results_on_postgresql_with_both_drivers() -> None:
    env = celery_env("postgresql+psycopg2://postgres@127.0.0.1:5432/meta", "redis://127.0.0.1:6379/0", "q1")

    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://postgres@127.0.0.1:5432/meta"
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"]
        == "postgresql+asyncpg://postgres@127.0.0.1:5432/meta"
    )
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://postgres@127.0.0.1:5432/meta"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "q1"


@pytest.mark.parametrize(
    ("offsets_ms", "most"),
    [
        ([], 0),
        ([0, 250, 500, 750], 4),
        # Five within 1 s across a second boundary: per calendar second it would look like 3 + 2.
        ([700, 800, 900, 1100, 1200], 5),
        ([0, 250, 500, 750, 1000], 4),  # the fifth is exactly 1 s after the first: a new window
        ([3000, 0, 2000, 1000], 1),  # unordered, one a second
    ],
)
def test_busiest_second_is_a_sliding_window(offsets_ms: list[int], most: int) -> None:
    assert busiest_second([T0 + timedelta(milliseconds=ms) for ms in offsets_ms]) == most
