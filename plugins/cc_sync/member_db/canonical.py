"""Member rows as the canonical frame: pure conversions of driver values (no database).

The extract reads raw source columns as Arrow (:mod:`cc_sync.member_db.reading`); this module turns
them into the canonical fields every other part of the sync uses: names split, dates to month and
day, timestamps to UTC, opt-out flags, states converted, and the row hash that stands in for a
missing last-modified column. Whole Arrow columns at a time: never a Python object per value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from cc_sync.fields import CANONICAL_FIELDS, FieldKind, is_custom_field
from cc_sync.member_db.mapping import FieldMapping, MemberMapping, NamePart
from cc_sync.member_db.states import convert_states

UTC_DTYPE = pd.DatetimeTZDtype("us", "UTC")


def _field_kind(name: str) -> FieldKind:
    return FieldKind.TEXT if is_custom_field(name) else CANONICAL_FIELDS[name].kind


def is_missing(value: Any) -> bool:
    return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))


def pk_value(member_id: Any, pk_type: sa.types.TypeEngine[Any]) -> Any:
    return int(member_id) if isinstance(pk_type, sa.Integer) else str(member_id)


def frame_to_arrow(raw: pd.DataFrame) -> pa.Table:
    """A frame of driver values (Python objects) as an Arrow table, each column typed by its values."""
    return pa.table({str(c): _column_to_arrow(raw[c]) for c in raw.columns})


def _column_to_arrow(values: pd.Series) -> pa.Array:
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types (SQLite lets a column hold any)
        return pa.array(values.astype("string"), type=pa.large_string(), from_pandas=True)


def as_text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Any column as large strings; numbers and dates in Arrow's text form, booleans as 1/0."""
    if pa.types.is_large_string(values.type):
        return values
    if pa.types.is_boolean(values.type):
        values = values.cast(pa.int8())
    return values.cast(pa.large_string())


def _blank_to_null(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trimmed, with blanks as nulls."""
    trimmed = pc.utf8_trim_whitespace(text)
    blank = pc.equal(trimmed, "")
    if not pc.any(blank).as_py():  # the usual case; if_else would copy every string
        return trimmed
    return pc.if_else(blank, pa.scalar(None, pa.large_string()), trimmed)


def string_series(text: pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(text), copy=False)


def _int_series(values: pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.Int64Dtype().__from_arrow__(values.cast(pa.int64())), copy=False)


def _arrow_text(values: pd.Series) -> pa.ChunkedArray:
    return pa.chunked_array([_column_to_arrow(values)])


def _blank_to_na(values: pd.Series) -> pd.Series:
    """Text, trimmed, with blanks as NA, computed in Arrow."""
    return pd.Series(
        pd.arrays.ArrowStringArray(_blank_to_null(as_text(_arrow_text(values)))),
        index=values.index,
        copy=False,
    )


def split_full_name(full: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split on the first space: "Maria de la Cruz" -> ("Maria", "de la Cruz"); one word is a first name."""
    text = _blank_to_na(full)
    parts = text.str.split(" ", n=1, expand=True).reindex(columns=[0, 1])
    first = _blank_to_na(parts[0])
    last = _blank_to_na(parts[1].astype("string"))
    return first, last


def join_full_name(first: Any, last: Any) -> str | None:
    parts = [str(p).strip() for p in (first, last) if not is_missing(p) and str(p).strip()]
    return " ".join(parts) or None


def canonical_values(
    name: str, fm: FieldMapping, raw: pa.ChunkedArray, mapping: MemberMapping, parsed: dict[str, Any]
) -> pd.Series:
    """One canonical field from its source column; ``parsed`` keeps splits and dates for the sibling field."""
    if fm.part in (NamePart.FIRST_NAME, NamePart.LAST_NAME):
        key = f"name:{fm.column}"
        if key not in parsed:
            parsed[key] = split_full_name(string_series(as_text(raw)))
        first, last = parsed[key]
        return first if fm.part == NamePart.FIRST_NAME else last
    if fm.part in (NamePart.MONTH, NamePart.DAY):
        key = f"date:{fm.column}"
        if key not in parsed:
            parsed[key] = _month_and_day(raw)
        month, day = parsed[key]
        return month if fm.part == NamePart.MONTH else day
    if _field_kind(name) == FieldKind.INTEGER:
        if pa.types.is_integer(raw.type):
            return _int_series(raw)
        return pd.to_numeric(string_series(as_text(raw)), errors="coerce").astype("Int64")
    values = string_series(_blank_to_null(as_text(raw)))
    if name == "state" and fm.holds and fm.holds != mapping.state_format:
        values = convert_states(values, mapping.state_format)
    return values


def _month_and_day(raw: pa.ChunkedArray) -> tuple[pd.Series, pd.Series]:
    """Month and day of a date column; text dates are ISO (YYYY-MM-DD) in Arrow, anything else by pandas."""
    if pa.types.is_null(raw.type):
        raw = raw.cast(pa.date32())
    if pa.types.is_date(raw.type) or pa.types.is_timestamp(raw.type):
        return _int_series(pc.month(raw)), _int_series(pc.day(raw))
    text = _blank_to_null(as_text(raw))
    dates = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    month, day = _int_series(pc.month(dates)), _int_series(pc.day(dates))
    other = pc.and_(pc.is_valid(text), pc.is_null(dates)).to_numpy(zero_copy_only=False)
    if other.any():  # another format, or not a date (NA, as pandas' errors="coerce" makes it)
        slow = pd.to_datetime(string_series(text).loc[other], errors="coerce", format="mixed")
        month.loc[other] = slow.dt.month.astype("Int64")
        day.loc[other] = slow.dt.day.astype("Int64")
    return month, day


def utc_series(raw: pa.ChunkedArray) -> pd.Series:
    """Timestamps in UTC (microseconds); naive values are taken as UTC (how the sync and most member
    systems store them), text is ISO 8601."""
    utc = pa.timestamp("us", tz="UTC")
    if pa.types.is_timestamp(raw.type) or pa.types.is_date(raw.type) or pa.types.is_null(raw.type):
        return raw.cast(utc, safe=False).to_pandas()
    text = as_text(raw)
    try:
        return text.cast(pa.timestamp("us")).cast(utc).to_pandas()
    except pa.ArrowInvalid:  # offsets, odd spacing, or not a time: pandas parses or gives NaT
        parsed = pd.to_datetime(string_series(text), utc=True, format="ISO8601", errors="coerce")
        return parsed.astype(UTC_DTYPE)


def opted_out_flags(values: pa.ChunkedArray, opted_out_values: tuple[Any, ...]) -> pd.Series:
    # Compared as text: booleans arrive as 0/1 (SQLite, MariaDB, the extract's cast) or true/false.
    wanted: set[str] = set()
    for v in opted_out_values:
        wanted.add(str(v))
        if isinstance(v, bool):
            wanted.add(str(int(v)))
    hits = pc.is_in(as_text(values), value_set=pa.array(sorted(wanted), pa.large_string()))
    return pd.Series(pc.fill_null(hits, False).to_numpy(zero_copy_only=False), dtype=bool)


def hash_frame(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """A stable 64-bit hash per row of ``columns`` as text (16 hex digits); NA hashes apart from ""."""
    text = pd.DataFrame(
        {c: frame[c].astype("string").fillna("\x00").astype(object) for c in columns}, index=frame.index
    )
    hashed = pd.util.hash_pandas_object(text, index=False, categorize=False).to_numpy(np.uint64)
    return pd.Series(np.char.mod("%016x", hashed), index=frame.index, dtype=object)
