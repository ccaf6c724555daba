"""UTC timestamps: the one way the project parses and produces them."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_utc(value: str | datetime | pd.Timestamp | None) -> datetime | None:
    """ISO-8601 text, a datetime or a Timestamp -> an aware UTC datetime; blanks -> None.

    Naive values are taken as UTC (Airflow's templates render aware times; a naive one typed in a
    trigger form means UTC, as the form says).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in {"", "none", "null"}):
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()
