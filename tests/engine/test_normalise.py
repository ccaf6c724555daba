"""Email and name normalisation: one vectorised function each, used by linking and comparing."""

from __future__ import annotations

import pandas as pd
import pytest

from cc_sync.engine.normalise import is_blank, is_valid_email, normalise_email, normalise_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Anne@Example.ORG ", "anne@example.org"),
        ("ＡＮＮＥ@example.org", "anne@example.org"),  # full-width letters (NFKC)
        ("STRASSE@example.de", "strasse@example.de"),
        ("ß@example.de", "ss@example.de"),  # casefold, not just lower
        ("\tbob@example.org\n", "bob@example.org"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalise_email(raw: str | None, expected: str | None) -> None:
    result = normalise_email(pd.Series([raw, "x@y.org"], dtype=object))
    assert (None if pd.isna(result[0]) else result[0]) == expected
    assert result[1] == "x@y.org"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Mary   Ann ", "mary ann"),
        ("ZOË", "zoë"),
        ("ﬁona", "fiona"),  # ligature (NFKC)
        ("O'Neil\u00a0Smith", "o'neil smith"),  # no-break space collapses too
        ("", None),
        (None, None),
    ],
)
def test_normalise_name(raw: str | None, expected: str | None) -> None:
    result = normalise_name(pd.Series([raw], dtype=object))
    assert (None if pd.isna(result[0]) else result[0]) == expected


@pytest.mark.parametrize("dtype", [object, "string[pyarrow]", "str"])
def test_normalisation_accepts_every_text_dtype(dtype: object) -> None:
    values = pd.Series([" A@B.org ", None], dtype=dtype)
    assert normalise_email(values).tolist()[0] == "a@b.org"
    assert pd.isna(normalise_email(values).tolist()[1])
    assert is_blank(values).tolist() == [False, True]


def test_is_valid_email() -> None:
    values = pd.Series(["a@b.org", " a@b.org ", "a.b.org", "a@b", "a b@c.org", None])
    assert is_valid_email(values).tolist() == [True, True, False, False, False, False]
