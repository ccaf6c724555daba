"""Normalisation used for matching and comparing: one vectorised function per kind of value.

Emails are trimmed, Unicode-normalised (NFKC) and case-folded; names the same, with inner
whitespace collapsed. NFKC and ``casefold`` only change non-ASCII text beyond what ``lower`` does,
so they run on the non-ASCII rows alone and ASCII rows stay in fast pyarrow kernels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cc_sync.engine.align import to_arrow
from cc_sync.fields import CANONICAL_FIELDS, FieldKind, is_custom_field

STRING = "string[pyarrow]"

# Deliberately loose: one "@", no blanks, a dot in the domain. CC is the final judge; this catches
# typing accidents before they cost an API call.
_EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"
# Line breaks and other whitespace controls (tab, LF, VT, FF, CR, NEL, LS, PS) become one space: a
# name or an address line is one line in Constant Contact. Every other control (NUL, BEL, ESC, DEL,
# the C1 range) is dropped: it has no visible meaning and breaks CSV exports and mail merges.
_WHITESPACE_CONTROLS = r"[\t\n\x0b\x0c\r\x85\x{2028}\x{2029}]+"
_OTHER_CONTROLS = r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]"


def as_string(values: pd.Series) -> pd.Series:
    """The series as pyarrow-backed strings with NA for "no value" (no copy when it already is)."""
    if values.dtype == STRING:
        return values
    return values.astype(STRING)


def constant_text(value: str | None, length: int) -> pd.arrays.ArrowStringArray:
    """``value`` (or NA) ``length`` times as Arrow text, without a Python object per row."""
    if value is None:
        return pd.arrays.ArrowStringArray(pa.nulls(length, pa.large_string()))
    single = pa.array([value], pa.large_string())
    return pd.arrays.ArrowStringArray(pc.take(single, pa.array(np.zeros(length, dtype=np.int64))))


def _unicode_fold(text: pd.Series) -> pd.Series:
    """NFKC + casefold on non-ASCII values, ``lower`` (the same thing for ASCII) on the rest."""
    folded = text.str.lower()
    non_ascii = ~text.str.isascii().fillna(True).astype(bool)
    if non_ascii.any():
        folded = folded.where(~non_ascii, text[non_ascii].str.normalize("NFKC").str.casefold())
    return folded


def _blank_to_na(text: pd.Series) -> pd.Series:
    return text.where(text != "", pd.NA)


def normalise_email(values: pd.Series) -> pd.Series:
    """`` Anne@Example.ORG `` -> ``anne@example.org``; blank -> NA."""
    return _blank_to_na(_unicode_fold(as_string(values).str.strip()).str.strip())


def normalise_name(values: pd.Series) -> pd.Series:
    """``"  ANNE   Marie "`` -> ``"anne marie"``; blank -> NA."""
    folded = _unicode_fold(as_string(values))
    # NFKC already turned exotic spaces (no-break, thin, ...) into plain ones; RE2 does the rest.
    collapsed = pc.utf8_trim_whitespace(pc.replace_substring_regex(to_arrow(folded), r"[\s\p{Z}]+", " "))
    return _blank_to_na(
        pd.Series(pd.arrays.ArrowStringArray(collapsed.cast(pa.large_string())), index=values.index)
    )


def is_blank(values: pd.Series) -> np.ndarray:
    """True where there is no value: NA, or text that is empty or only whitespace."""
    if pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        text = as_string(values)
        return (text.isna() | (text.str.strip() == "").fillna(True)).to_numpy(dtype=bool)
    return values.isna().to_numpy(dtype=bool)


def is_valid_email(values: pd.Series) -> np.ndarray:
    """True where the value looks like an email address (see the pattern's comment)."""
    text = as_string(values).str.strip()
    return text.str.fullmatch(_EMAIL_PATTERN).fillna(False).to_numpy(dtype=bool)


def clean_text(values: pd.Series) -> pd.Series:
    """Text as it may be stored on either side: control characters dropped, line breaks as a space.

    The one rule both directions of the sync (and the send-list) apply before comparing or writing
    a text field, so a stray NUL or newline is neither sent as is nor seen as a change later.
    Values without a control character come back unchanged (and the series itself when none has).
    """
    if not pd.api.types.is_string_dtype(values.dtype):
        return values
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        return values  # mixed Python objects (numbers, dates) are left to the comparison's own rules
    text = as_string(values)
    arrow = to_arrow(text)
    has_control = pc.match_substring_regex(arrow, r"[\x00-\x1f\x7f-\x9f\x{2028}\x{2029}]")
    if not pc.any(has_control).as_py():
        return values
    spaced = pc.replace_substring_regex(arrow, _WHITESPACE_CONTROLS, " ")
    cleaned = pc.replace_substring_regex(spaced, _OTHER_CONTROLS, "")
    return pd.Series(pd.arrays.ArrowStringArray(cleaned.cast(pa.large_string())), index=values.index)


def clean_frame_text(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`clean_text` on every canonical text column of ``frame`` (ids and flags left alone)."""
    text = {n for n, spec in CANONICAL_FIELDS.items() if spec.kind == FieldKind.TEXT}
    names = [name for name in frame.columns if name in text or is_custom_field(name)]
    changed = {}
    for name in names:
        column = frame[name]
        cleaned = clean_text(column)
        if cleaned is not column:
            changed[name] = cleaned
    return frame.assign(**changed) if changed else frame
