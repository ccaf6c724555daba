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

STRING = "string[pyarrow]"

# Deliberately loose: one "@", no blanks, a dot in the domain. CC is the final judge; this catches
# typing accidents before they cost an API call.
_EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"


def as_string(values: pd.Series) -> pd.Series:
    """The series as pyarrow-backed strings with NA for "no value" (no copy when it already is)."""
    if values.dtype == STRING:
        return values
    return values.astype(STRING)


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
