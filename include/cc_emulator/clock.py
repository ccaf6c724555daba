"""Timestamps as the emulator stores and answers them.

Every stored date-time is a UTC ISO-8601 string with milliseconds and a ``Z``
(``2026-11-22T02:41:36.123Z``). One fixed format means filters such as ``updated_after`` compare
plain strings, which keeps a walk over 100,000 contacts cheap.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from include.cc_emulator.errors import validation_error


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_timestamp() -> str:
    return format_timestamp(utc_now())


def parse_timestamp(value: str, *, name: str = "date-time") -> datetime:
    """Parse an ISO-8601 date or date-time as CC accepts them; naive values are taken as UTC."""
    text = value.strip()
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise validation_error(f"{name} must be an ISO-8601 date-time, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def normalise_timestamp(value: str | datetime | None, *, name: str = "date-time") -> str:
    """Any accepted date-time (or None for now) in the stored string form."""
    if value is None:
        return now_timestamp()
    if isinstance(value, datetime):
        return format_timestamp(value)
    return format_timestamp(parse_timestamp(value, name=name))
