"""Compare: line up each linked pair's member, contact and base, and find what changed.

The three-way comparison against the base (the values both sides agreed on after the last
successful sync) is what lets the sync merge instead of overwrite: a field that differs from the
base on one side was changed on that side. A side not extracted this run is taken to be unchanged
since the base. This module does the full-length, vectorised pass: it finds the pairs where any
field or the opt-out flag may have changed; ``resolve`` then looks closely at those few.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from cc_sync.engine.align import is_identity, positions, same_values, take_column, to_arrow
from cc_sync.fields import CANONICAL_FIELDS, CONTACT_ID, DELETED, MEMBER_ID, OPTED_OUT, FieldKind

NEW_LINK = "new_link"


def arrow_type(name: str) -> pa.DataType:
    known = CANONICAL_FIELDS.get(name)
    return pa.int64() if known is not None and known.kind == FieldKind.INTEGER else pa.large_string()


def arrow_column(frame: pd.DataFrame, name: str) -> pa.Array:
    """A canonical column as a pyarrow array of its canonical type; all-null when absent."""
    wanted = arrow_type(name)
    if name not in frame.columns:
        return pa.nulls(len(frame), type=wanted)
    try:
        array = to_arrow(frame[name], contiguous=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed Python objects (say, a postal code column with ints and strings): compare as text.
        array = to_arrow(frame[name].map(str, na_action="ignore").astype("string[pyarrow]"), contiguous=True)
    if array.type != wanted:
        if pa.types.is_floating(array.type) and wanted == pa.int64():
            array = array.cast(pa.int64(), safe=False)
        array = array.cast(wanted)
    return array


def flag_column(frame: pd.DataFrame, name: str = OPTED_OUT) -> np.ndarray:
    if name not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[name].fillna(False).astype(bool).to_numpy(dtype=bool)


@dataclass
class AlignedPairs:
    """Linked pairs and where each finds its member, contact and base row (-1: not there)."""

    pairs: pd.DataFrame  # member_id, contact_id, new_link
    members: pd.DataFrame
    contacts: pd.DataFrame
    base: pd.DataFrame
    m_pos: np.ndarray
    c_pos: np.ndarray
    b_pos: np.ndarray
    _cache: dict[tuple[str, str], pa.Array] = field(default_factory=dict, repr=False)
    _identity: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    @property
    def has_member(self) -> np.ndarray:
        return self.m_pos >= 0

    @property
    def has_contact(self) -> np.ndarray:
        return self.c_pos >= 0

    def source_column(self, side: str, name: str) -> pa.Array:
        """The column of one input (``member``, ``contact`` or ``base``), converted once."""
        key = (side, name)
        if key not in self._cache:
            frame = {"member": self.members, "contact": self.contacts, "base": self.base}[side]
            self._cache[key] = arrow_column(frame, name)
        return self._cache[key]

    def aligned(self, side: str, name: str, rows: np.ndarray | None = None) -> pa.Array:
        """A column in pair order (or for the pair positions ``rows``); null where the side is absent."""
        pos = {"member": self.m_pos, "contact": self.c_pos, "base": self.b_pos}[side]
        source = self.source_column(side, name)
        if rows is not None:
            return take_column(source, pos[rows])
        if (side, "") not in self._identity:
            self._identity[(side, "")] = is_identity(pos, len(source))
        return take_column(source, pos, identity=self._identity[(side, "")])

    def select(self, keep: np.ndarray) -> AlignedPairs:
        if keep.all():  # a first sync keeps every pair: no need to copy them
            return self
        return AlignedPairs(
            self.pairs[keep].reset_index(drop=True),
            self.members,
            self.contacts,
            self.base,
            self.m_pos[keep],
            self.c_pos[keep],
            self.b_pos[keep],
            self._cache,
        )


def align_pairs(
    pairs: pd.DataFrame,
    members: pd.DataFrame,
    contacts: pd.DataFrame,
    base: pd.DataFrame,
    *,
    m_pos: np.ndarray | None = None,
    c_pos: np.ndarray | None = None,
) -> AlignedPairs:
    """Find each pair's rows; keep the pairs where at least one side was extracted this run.

    ``pairs``: member_id, contact_id, new_link. The base of a new link is ignored (it is a first
    merge: both sides count as changed from empty), and so is a base recorded for another contact.
    """
    if m_pos is None:
        m_pos = positions(pairs[MEMBER_ID], members[MEMBER_ID])
    if c_pos is None:
        c_pos = positions(pairs[CONTACT_ID], contacts[CONTACT_ID])
    touched = (m_pos >= 0) | (c_pos >= 0)
    if not touched.all():
        pairs, m_pos, c_pos = pairs[touched].reset_index(drop=True), m_pos[touched], c_pos[touched]
    b_pos = (
        positions(pairs[MEMBER_ID], base[MEMBER_ID])
        if MEMBER_ID in base.columns
        else np.full(len(pairs), -1, dtype=np.int64)
    )
    new_link = pairs[NEW_LINK].to_numpy(dtype=bool)
    b_pos = b_pos.copy()
    b_pos[new_link] = -1
    if CONTACT_ID in base.columns and (b_pos >= 0).any():
        base_contact = take_column(to_arrow(base[CONTACT_ID]), b_pos, identity=is_identity(b_pos, len(base)))
        other_contact = ~same_values(base_contact, to_arrow(pairs[CONTACT_ID])) & (b_pos >= 0)
        b_pos[other_contact] = -1
    return AlignedPairs(pairs, members, contacts, base, m_pos, c_pos, b_pos)


def base_opted_out(aligned: AlignedPairs) -> np.ndarray:
    flags = flag_column(aligned.base)
    return np.where(aligned.b_pos >= 0, flags[np.maximum(aligned.b_pos, 0)] if len(flags) else False, False)


def side_opted_out(aligned: AlignedPairs, side: str) -> np.ndarray:
    """The side's opt-out flag now: as extracted, else as in the base."""
    frame, pos = (aligned.members, aligned.m_pos) if side == "member" else (aligned.contacts, aligned.c_pos)
    flags = flag_column(frame)
    current = flags[np.maximum(pos, 0)] if len(flags) else np.zeros(len(pos), dtype=bool)
    return np.where(pos >= 0, current, base_opted_out(aligned))


def changed_pairs(aligned: AlignedPairs, fields: list[str]) -> np.ndarray:
    """True for pairs where some field or the opt-out flag differs from the base on either side.

    A deleted contact counts (it is to be unlinked). A superset on purpose (raw comparison: an
    email that only changed case counts here); the
    resolver decides with normalised values. New links always count.
    """
    changed = aligned.pairs[NEW_LINK].to_numpy(dtype=bool).copy()
    base_flag = base_opted_out(aligned)
    changed |= side_opted_out(aligned, "member") != base_flag
    changed |= side_opted_out(aligned, "contact") != base_flag
    has_member, has_contact = aligned.has_member, aligned.has_contact
    deleted = flag_column(aligned.contacts, DELETED)
    if len(deleted):
        changed |= has_contact & deleted[np.maximum(aligned.c_pos, 0)]
    for name in fields:
        if changed.all():  # a first sync: every pair is a new link, nothing left to find
            break
        base_values = aligned.aligned("base", name)
        if has_member.any() and name in aligned.members.columns:
            changed |= has_member & ~same_values(aligned.aligned("member", name), base_values)
        if has_contact.any() and name in aligned.contacts.columns:
            changed |= has_contact & ~same_values(aligned.aligned("contact", name), base_values)
    return changed
