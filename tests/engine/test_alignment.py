"""The vectorised path at (small) scale: row order and column dtypes of the inputs do not matter.

The frames come from the benchmark's generator (everyone linked, 1% changed in known ways). The
same data in another row order, or with plain object columns, must give the same plan.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.bench_engine import FIELDS, make_frames
from cc_sync.engine import default_policies, plan_sync
from cc_sync.engine.align import duplicated, shared_codes

N = 2_000


def _plan(frames: dict[str, pd.DataFrame]):
    return plan_sync(
        frames["members"],
        frames["contacts"],
        frames["links"],
        frames["base"],
        frames["directory"],
        policies=default_policies(FIELDS),
    )


def _canonical(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.sort_values([key, *(c for c in frame.columns if c != key)][:2]).reset_index(drop=True)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return make_frames(N)


def test_known_changes_are_all_found(frames: dict[str, pd.DataFrame]) -> None:
    summary = _plan(frames).summary()
    # 20 people changed: 5 member edits, 5 CC edits, 5 edited on both sides (different fields:
    # both kept), 1 member opt-out, 1 CC opt-out, 3 moved email and were deleted in CC.
    assert summary["cc_updates"] == 10
    assert summary["member_updates"] == 10
    assert summary["cc_unsubscribes"] == 1
    assert summary["member_opt_outs"] == 1
    assert summary["unlinks"] == 3
    assert summary["changed_people"] == 5 + 5 + 5 + 1 + 1  # the deleted ones are only unlinked
    assert summary["pairs_compared"] == N


@pytest.mark.parametrize("variant", ["shuffled", "object_dtypes", "shuffled_links_and_base"])
def test_plan_does_not_depend_on_row_order_or_dtypes(frames: dict[str, pd.DataFrame], variant: str) -> None:
    rng = np.random.default_rng(3)
    other = dict(frames)
    if variant == "shuffled":
        other["members"] = frames["members"].sample(frac=1, random_state=1).reset_index(drop=True)
        other["contacts"] = frames["contacts"].sample(frac=1, random_state=2).reset_index(drop=True)
    elif variant == "object_dtypes":
        for name in ("members", "contacts", "base", "links"):
            frame = frames[name].copy()
            for column in frame.columns:
                if frame[column].dtype == "string[pyarrow]":
                    frame[column] = frame[column].astype(object)
            other[name] = frame
    else:
        order = rng.permutation(N)
        other["links"] = frames["links"].iloc[order].reset_index(drop=True)
        other["base"] = frames["base"].iloc[rng.permutation(N)].reset_index(drop=True)
    expected, actual = _plan(frames), _plan(other)
    for name, key in (
        ("member_updates", "member_id"),
        ("cc_updates", "contact_id"),
        ("cc_puts", "contact_id"),
        ("unlinks", "member_id"),
        ("changes", "member_id"),
        ("new_base", "member_id"),
    ):
        left, right = getattr(expected, name), getattr(actual, name)
        assert sorted(left.columns) == sorted(right.columns), name
        pd.testing.assert_frame_equal(
            _canonical(left[sorted(left.columns)], key),
            _canonical(right[sorted(left.columns)], key),
            obj=name,
        )


@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "é"])), max_size=40))
def test_duplicated_agrees_with_pandas(values: list[str | None]) -> None:
    """The Arrow first-occurrence rule flags exactly the rows pandas' duplicated() flags, NA included."""
    keys = pd.Series(values, dtype="string[pyarrow]")
    assert duplicated(keys).tolist() == keys.duplicated(keep="first").tolist()


@given(
    st.lists(st.sampled_from(["x", "y", "z", None]), max_size=30),
    st.lists(st.sampled_from(["x", "y", "w", None]), max_size=10),
    st.booleans(),
)
def test_shared_codes_are_equal_exactly_where_the_values_are(
    left: list[str | None], right: list[str | None], object_dtype: bool
) -> None:
    """Across columns: one code per distinct value, -1 for NA, whatever each column's dtype."""
    dtype = object if object_dtype else "string[pyarrow]"
    (left_codes, right_codes), size = shared_codes(
        pd.Series(left, dtype="string[pyarrow]"), pd.Series(right, dtype=dtype)
    )
    values = left + right
    codes = np.concatenate([left_codes, right_codes]).tolist()
    assert size == len({v for v in values if v is not None})
    for value, code in zip(values, codes, strict=True):
        assert (code == -1) == (value is None)
        assert code < size
    for i, (a, code_a) in enumerate(zip(values, codes, strict=True)):
        for b, code_b in zip(values[i:], codes[i:], strict=True):
            if a is not None and b is not None:
                assert (code_a == code_b) == (a == b)
