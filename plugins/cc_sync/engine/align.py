"""Row alignment on one key with pyarrow kernels: the engine's replacement for wide merges.

The engine never merges wide frames. It looks up, once per key, the position of each linked pair
in each input (``positions``), compares columns through those positions (``take_column``,
``same_values``), and gathers full values only for the few rows that changed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def to_arrow(values: pd.Series, *, contiguous: bool = False) -> pa.Array | pa.ChunkedArray:
    """The values as pyarrow data (zero-copy for pyarrow-backed columns unless ``contiguous``)."""
    array = values.array
    converted = array.__arrow_array__() if hasattr(array, "__arrow_array__") else pa.array(array)
    if contiguous and isinstance(converted, pa.ChunkedArray):
        converted = converted.combine_chunks()
    return converted


def positions(keys: pd.Series, within: pd.Series) -> np.ndarray:
    """For each key, its row position in ``within`` (-1 when absent; the first when repeated)."""
    if len(keys) == 0 or len(within) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    key_array, within_array = to_arrow(keys), to_arrow(within, contiguous=True)
    if key_array.type != within_array.type:
        key_array = key_array.cast(within_array.type)
    if len(key_array) == len(within_array) and pc.all(pc.equal(key_array, within_array)).as_py():
        return np.arange(len(key_array), dtype=np.int64)  # already aligned: the usual case
    found = pc.index_in(key_array, value_set=within_array)
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def is_in(values: pd.Series, candidates: pd.Series) -> np.ndarray:
    """Element-wise membership as a numpy bool array (NA is never in); pyarrow's hash kernel.

    (pandas' own ``isin`` on pyarrow strings turns the candidates into Python objects first.)
    """
    if len(values) == 0 or len(candidates) == 0:
        return np.zeros(len(values), dtype=bool)
    value_set = to_arrow(pd.Series(candidates).dropna(), contiguous=True)
    array = to_arrow(values)
    if array.type != value_set.type:
        array = array.cast(value_set.type)
    return pc.fill_null(pc.is_in(array, value_set=value_set), False).to_numpy(zero_copy_only=False)


def shared_codes(*columns: pd.Series) -> tuple[list[np.ndarray], int]:
    """Each column's values as codes into one dictionary they share (-1 for NA), and its size.

    One hash pass over every column at once: counting keys, membership between the columns and
    lookups by key then become integer array work (``np.bincount``, indexing), where each
    ``is_in`` / ``index_in`` would hash a million strings again.
    """
    arrays = [to_arrow(column, contiguous=True) for column in columns]
    text = pa.large_string() if any(pa.types.is_large_string(a.type) for a in arrays) else pa.string()
    arrays = [a if a.type == text else a.cast(text) for a in arrays]
    encoded = pc.dictionary_encode(pa.concat_arrays(arrays))
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    bounds = np.cumsum([len(a) for a in arrays])[:-1]
    return list(np.split(codes, bounds)), len(encoded.dictionary)


def is_identity(pos: np.ndarray, length: int) -> bool:
    return len(pos) == length and bool((pos == np.arange(length)).all())


def take_column(array: pa.Array | pa.ChunkedArray, pos: np.ndarray, *, identity: bool = False) -> pa.Array:
    """``array`` reordered by ``pos``; null where ``pos`` is -1."""
    if identity:
        return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if len(pos) and pos.max() < 0:  # a first sync: no pair has a base row
        return pa.nulls(len(pos), type=array.type)
    indices = pa.array(pos, mask=pos < 0, type=pa.int64())
    taken = pc.take(array, indices)
    return taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken


def same_values(left: pa.Array, right: pa.Array) -> np.ndarray:
    """Element-wise "equal, or both null" as a numpy bool array."""
    if left.type != right.type:
        right = right.cast(left.type)
    equal = pc.fill_null(pc.equal(left, right), False)
    both_null = pc.and_(pc.is_null(left), pc.is_null(right))
    return pc.or_(equal, both_null).to_numpy(zero_copy_only=False)


def duplicated(keys: pd.Series) -> np.ndarray:
    """True for the second and later rows of a repeated key (fast when the keys are sorted)."""
    n = len(keys)
    if n < 2:
        return np.zeros(n, dtype=bool)
    array = to_arrow(keys, contiguous=True)
    # pc.all skips nulls: with any null the keys are not known to be strictly increasing.
    increasing = array.null_count == 0 and pc.all(pc.less(array.slice(0, n - 1), array.slice(1))).as_py()
    if increasing:
        return np.zeros(n, dtype=bool)
    # Dictionary encoding numbers the keys in order of first appearance, so a row is a key's first exactly
    # where the running maximum of those numbers grows (pandas' duplicated factorizes via objects).
    encoded = pc.dictionary_encode(array, null_encoding="encode")  # one hash pass, nulls a key too
    group = encoded.indices.to_numpy(zero_copy_only=False)
    running = np.maximum.accumulate(group)
    first = np.empty(n, dtype=bool)
    first[0] = True
    first[1:] = running[1:] > running[:-1]
    return ~first
