"""Resolve: decide, field by field, what each changed pair writes on each side, and why.

Rules (DESIGN.md, issue 4), for each field of each pair, against the base:

- changed on one side only: that side wins, if the field's policy lets it flow that way;
- changed on both, to different values: the policy's owner wins; with owner ``latest`` the side
  whose record changed later wins, a tie goes to the member database (and the change log says so);
  a one-way field is owned by its source;
- both changed to the same value: nothing to write;
- a blank never wipes a value unless the policy's ``blank_overwrites`` allows it: a blanked field
  simply does not count as a change;
- an email change propagates (to CC by a PUT, as the bulk import is keyed by email); a new email
  that another contact or member already holds goes to review (``email_collision``), unwritten;
- an opt-out on either side (opted out now, not in the base) opts the person out on both sides and
  writes a consent-ledger row. Nothing ever clears an opt-out: a side that shows "subscribed"
  while the base says opted out is sent to review and never copied;
- a deleted CC contact is unlinked and reported; its member is untouched.

Consent is not subject to the sync direction: an opt-out reaches the other side even in a
one-way sync, because emailing someone who said no is the one failure that cannot be undone.

A value that CC would refuse (too long, malformed email) is rejected with a reason; the rest of
the pair still goes through and the base keeps the old value, so the next run tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cc_sync.engine.align import positions, take_column, to_arrow
from cc_sync.engine.compare import AlignedPairs, arrow_column, flag_column, side_opted_out
from cc_sync.engine.compare import base_opted_out as _base_opted_out
from cc_sync.engine.model import (
    CHANGES_COLUMNS,
    CLEARED_FIELDS,
    CONSENT_COLUMNS,
    DETAIL,
    DIRECTION,
    EMAIL_CHANGE,
    FIELD,
    KIND,
    MEMBER_OPT_OUTS_COLUMNS,
    NEW_VALUE,
    OLD_VALUE,
    REASON,
    REJECTED_COLUMNS,
    REVIEWS_COLUMNS,
    ROW_VERSION,
    SOURCE,
    UNLINKS_COLUMNS,
    UNSUBSCRIBE,
    WHEN,
    ChangeReason,
    RejectReason,
    ReviewKind,
    Side,
    UnlinkReason,
    WriteDirection,
    empty_frame,
)
from cc_sync.engine.normalise import is_valid_email, normalise_email
from cc_sync.fields import (
    CONTACT_ID,
    DELETED,
    MEMBER_ID,
    OPTED_OUT,
    OPTED_OUT_AT,
    UPDATED_AT,
    field_max_length,
)
from cc_sync.policy import FieldOwner, FieldPolicy, SyncDirection

EMAIL = "email"
_STRING = "string[pyarrow]"


def _to_series(array: pa.Array) -> pd.Series:
    return array.to_pandas(types_mapper=pd.ArrowDtype).reset_index(drop=True)


def _take(frame: pd.DataFrame, name: str, pos: np.ndarray) -> pd.Series:
    """``frame[name]`` at positions ``pos`` (NA where -1 or the column is absent)."""
    if name not in frame.columns or len(frame) == 0:
        return pd.Series([pd.NA] * len(pos), dtype="object")
    return _to_series(take_column(to_arrow(frame[name]), pos))


_TIMESTAMP = pa.timestamp("ns", tz="UTC")


def _times(frame: pd.DataFrame, pos: np.ndarray) -> pa.Array:
    """The side's record updated_at at ``pos`` (null where -1 or unknown)."""
    if UPDATED_AT not in frame.columns or len(frame) == 0:
        return pa.nulls(len(pos), type=_TIMESTAMP)
    array = to_arrow(frame[UPDATED_AT])
    if not pa.types.is_timestamp(array.type):
        array = to_arrow(pd.to_datetime(frame[UPDATED_AT], utc=True, errors="coerce"))
    return take_column(array.cast(_TIMESTAMP, safe=False), pos)


@dataclass(frozen=True)
class _Recency:
    """Which side's record changed later, per pair (a record with no time is the older)."""

    member_later: np.ndarray
    cc_later: np.ndarray

    @classmethod
    def of(cls, member_time: pa.Array, cc_time: pa.Array) -> _Recency:
        def later(first: pa.Array, second: pa.Array) -> np.ndarray:
            only_first = pc.and_(pc.is_valid(first), pc.is_null(second))
            after = pc.fill_null(pc.greater(first, second), False)
            return pc.or_(only_first, after).to_numpy(zero_copy_only=False)

        return cls(later(member_time, cc_time), later(cc_time, member_time))


@dataclass
class EmailOwners:
    """Who holds each email, to catch an email change that would collide with someone else.

    Looked up only for the emails that change, so a million-row directory costs little.
    """

    cc_frames: list[pd.DataFrame]  # contact_id, email: the directory and this run's contacts
    member_frames: list[pd.DataFrame]  # member_id, email: members, candidates, and the base

    def _keys(self, frames: list[pd.DataFrame], id_column: str, probe: pd.Series) -> pd.DataFrame:
        """id, key of the people in ``frames`` whose normalised email is one of ``probe``.

        For ASCII text normalising is lower-casing and trimming, so cheap kernels pick out the
        few possible holders and only those (and any non-ASCII email) are normalised in full.
        """
        wanted = pa.array(probe.dropna().unique().astype(object), type=pa.large_string())
        parts = []
        usable = [f for f in frames if len(f) and EMAIL in f.columns and id_column in f.columns]
        for number, frame in enumerate(usable):
            raw = to_arrow(frame[EMAIL]).cast(pa.large_string())
            cheap = pc.utf8_trim_whitespace(pc.utf8_lower(raw))
            maybe = pc.or_(pc.is_in(cheap, value_set=wanted), pc.invert(pc.string_is_ascii(raw)))
            rows = pc.fill_null(maybe, False).to_numpy(zero_copy_only=False)
            part = frame.loc[rows, [id_column, EMAIL]]
            # An earlier frame holds a fresher row of the same person: its (old) email here is stale.
            for fresher in usable[:number]:
                if len(part):
                    part = part[positions(part[id_column], fresher[id_column]) < 0]
            parts.append(part)
        empty = pd.Series([], dtype=_STRING)
        if not parts:
            return pd.DataFrame({id_column: empty, "key": empty})
        both = pd.concat(parts, ignore_index=True).drop_duplicates(id_column, keep="first")
        keyed = pd.DataFrame(
            {id_column: both[id_column].astype(_STRING), "key": normalise_email(both[EMAIL])}
        )
        return keyed.dropna().drop_duplicates()

    def taken_by_other(self, keys: pd.Series, ids: pd.Series, side: Side) -> np.ndarray:
        """True where ``keys[i]`` is held by someone other than ``ids[i]`` on ``side``."""
        frames, id_column = (
            (self.cc_frames, CONTACT_ID) if side == Side.CC else (self.member_frames, MEMBER_ID)
        )
        owners = self._keys(frames, id_column, keys)
        probe = pd.DataFrame(
            {"key": keys.astype(_STRING).to_numpy(), "_self": ids.astype(_STRING).to_numpy()}
        )
        probe["_row"] = np.arange(len(probe))
        hits = probe.merge(owners, on="key", how="inner")
        hits = hits[(hits[id_column] != hits["_self"]).fillna(True).to_numpy(dtype=bool)]
        taken = np.zeros(len(probe), dtype=bool)
        taken[hits["_row"].to_numpy()] = True
        return taken


@dataclass(frozen=True)
class Resolution:
    member_updates: pd.DataFrame
    member_opt_outs: pd.DataFrame
    cc_updates: pd.DataFrame
    cc_puts: pd.DataFrame
    consent: pd.DataFrame
    unlinks: pd.DataFrame
    reviews: pd.DataFrame
    rejected: pd.DataFrame
    changes: pd.DataFrame
    new_base: pd.DataFrame


# Change reasons as small integer codes while a field is resolved for every pair; turned into text
# only for the rows that are written (a first sync resolves a million pairs x every field).
_REASONS = np.array([r.value for r in ChangeReason], dtype=object)
_REASON_CODE = {r: np.int8(i) for i, r in enumerate(ChangeReason)}


@dataclass
class _FieldOutcome:
    """One field resolved for every pair. Values stay Arrow arrays (null for every kind of blank):
    converting them all to Python objects is what made a first sync slow and memory-hungry."""

    to_cc: np.ndarray  # write the member's value to CC
    to_member: np.ndarray  # write CC's value to the member
    member_value: pa.Array
    cc_value: pa.Array
    base_value: pa.Array  # the new base
    old_base: pa.Array
    cc_reason: np.ndarray  # codes into _REASONS
    member_reason: np.ndarray


def _blank(values: pa.Array) -> np.ndarray:
    """No value: null, or text that is empty or only whitespace."""
    blank = pc.is_null(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), False)
        blank = pc.or_(blank, empty)
    return blank.to_numpy(zero_copy_only=False)


def _email_keys(values: pa.Array) -> pa.Array:
    """Normalised emails: trimming and lower-casing do it for ASCII; the rest takes the full path."""
    if pc.all(pc.fill_null(pc.string_is_ascii(values), True)).as_py():
        return pc.utf8_lower(pc.utf8_trim_whitespace(values))
    return to_arrow(normalise_email(_to_series(values)), contiguous=True).cast(values.type)


def _equal(left: pa.Array, right: pa.Array, left_blank: np.ndarray, right_blank: np.ndarray) -> np.ndarray:
    """Same value, all blanks alike."""
    same = pc.fill_null(pc.equal(left, right), False).to_numpy(zero_copy_only=False)
    return same | (left_blank & right_blank)


def _values(values: pa.Array, blank: np.ndarray) -> pa.Array:
    """The values with every kind of blank as null."""
    if not blank.any():
        return values
    return pc.if_else(pa.array(blank), pa.scalar(None, type=values.type), values)


def _objects(values: pa.Array) -> np.ndarray:
    """Python objects for the plan's frames (None for null): str for text, int for integers."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values.to_numpy(zero_copy_only=False)
    objects = np.empty(len(values), dtype=object)
    objects[:] = values.to_pylist()
    return objects


def _base_column(values: pa.Array) -> object:
    """A base column as the frame would infer it from :func:`_objects`, text without the round trip
    through Python strings (a million new links' bases cost seconds that way)."""
    text = pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    if not text or values.null_count == len(values):  # no text: the frame keeps Python objects
        return _objects(values)
    return values.to_pandas().array


def _at(values: pa.Array, rows: np.ndarray) -> pa.Array:
    """``values`` at the True positions of ``rows``."""
    return values.filter(pa.array(rows))


def _text_at(values: pa.Array, rows: np.ndarray) -> np.ndarray:
    """Values at ``rows`` as text for the change log (null stays NA)."""
    text = _at(values, rows).cast(pa.large_string())
    return _to_series(text).astype(_STRING).to_numpy()


def _conflict_winner(
    policy: FieldPolicy, recency: _Recency, to_cc_ok: bool, to_member_ok: bool
) -> tuple[np.ndarray, np.ndarray]:
    """For pairs where both sides changed a field differently: does the member win, and why."""
    n = len(recency.member_later)
    owner = policy.owner
    if not to_member_ok:
        owner = FieldOwner.MEMBER_DB  # a field that only flows to CC is owned by the member database
    elif not to_cc_ok:
        owner = FieldOwner.CC
    if owner == FieldOwner.MEMBER_DB:
        return np.ones(n, bool), np.full(n, _REASON_CODE[ChangeReason.OWNER_MEMBER])
    if owner == FieldOwner.CC:
        return np.zeros(n, bool), np.full(n, _REASON_CODE[ChangeReason.OWNER_CC])
    reason = np.where(
        recency.member_later,
        _REASON_CODE[ChangeReason.CONFLICT_MEMBER_LATER],
        np.where(
            recency.cc_later,
            _REASON_CODE[ChangeReason.CONFLICT_CC_LATER],
            _REASON_CODE[ChangeReason.CONFLICT_TIE_MEMBER],
        ),
    )
    return ~recency.cc_later, reason.astype(np.int8)


def _side_or_base(side: pa.Array, present: np.ndarray, base: pa.Array) -> pa.Array:
    """A side's values, and the base's where the pair has no row on that side."""
    if base.null_count == len(base) and side.type == base.type:
        # No base (a first sync): the side's absent rows are already null, as the base's are.
        return side
    return pc.if_else(pa.array(present), side, base)


def _resolve_field(
    aligned: AlignedPairs,
    name: str,
    policy: FieldPolicy,
    direction: SyncDirection,
    recency: _Recency,
) -> _FieldOutcome:
    base = aligned.aligned("base", name)
    member = base
    if name in aligned.members.columns:
        member = _side_or_base(aligned.aligned("member", name), aligned.has_member, base)
    cc = base
    if name in aligned.contacts.columns:
        cc = _side_or_base(aligned.aligned("contact", name), aligned.has_contact, base)
    raw_base, raw_member, raw_cc = base, member, cc
    b_blank, m_blank, c_blank = _blank(base), _blank(member), _blank(cc)
    if name == EMAIL:
        base, member, cc = _email_keys(base), _email_keys(member), _email_keys(cc)
    to_cc_ok, to_member_ok = policy.flows_to_cc(direction), policy.flows_to_member_db(direction)

    agree = _equal(member, cc, m_blank, c_blank)
    member_changed = ~_equal(member, base, m_blank, b_blank)
    cc_changed = ~_equal(cc, base, c_blank, b_blank)
    if not policy.blank_overwrites:
        member_changed &= ~m_blank
        cc_changed &= ~c_blank
    both = member_changed & cc_changed & ~agree
    member_wins_conflict, conflict_reason = _conflict_winner(policy, recency, to_cc_ok, to_member_ok)
    member_wins = member_changed & ~agree & (~cc_changed | member_wins_conflict)
    cc_wins = cc_changed & ~agree & (~member_changed | ~member_wins_conflict)
    to_cc = member_wins & to_cc_ok
    to_member = cc_wins & to_member_ok

    cc_reason = np.where(both, conflict_reason, _REASON_CODE[ChangeReason.MEMBER_CHANGED]).astype(np.int8)
    member_reason = np.where(both, conflict_reason, _REASON_CODE[ChangeReason.CC_CHANGED]).astype(np.int8)
    # Values as the sides hold them (emails un-normalised): they are what gets written.
    b = _values(raw_base, b_blank)
    m = _values(raw_member, m_blank)
    c = _values(raw_cc, c_blank)
    # to_cc and to_member never overlap (a conflict has one winner).
    new_base = _new_base(to_member, agree | to_cc, c, m, b)
    return _FieldOutcome(to_cc, to_member, m, c, new_base, b, cc_reason, member_reason)


def _new_base(
    take_cc: np.ndarray, take_member: np.ndarray, cc: pa.Array, member: pa.Array, base: pa.Array
) -> pa.Array:
    """CC's value where ``take_cc``, else the member's where ``take_member``, else the old base.

    Skips the choices no row makes: at a first sync the old base is never kept, and a pass of
    ``if_else`` over a million strings per field is most of resolving it.
    """
    keep_base = ~(take_cc | take_member)
    if not keep_base.any():
        return member if not take_cc.any() else pc.if_else(pa.array(take_cc), cc, member)
    return pc.if_else(pa.array(take_cc), cc, pc.if_else(pa.array(take_member), member, base))


def _frame(columns: tuple[str, ...], data: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(data, columns=list(columns))


def resolve_pairs(
    aligned: AlignedPairs,
    policies: dict[str, FieldPolicy],
    direction: SyncDirection,
    email_owners: EmailOwners,
) -> Resolution:
    """Resolve every pair of ``aligned`` (the changed ones; see ``compare.changed_pairs``)."""
    deleted = (
        aligned.has_contact & flag_column(aligned.contacts, DELETED)[np.maximum(aligned.c_pos, 0)]
        if len(aligned.contacts)
        else np.zeros(len(aligned.pairs), dtype=bool)
    )
    unlinks = _frame(
        UNLINKS_COLUMNS,
        {
            MEMBER_ID: aligned.pairs.loc[deleted, MEMBER_ID].to_numpy(),
            CONTACT_ID: aligned.pairs.loc[deleted, CONTACT_ID].to_numpy(),
            REASON: UnlinkReason.CC_DELETED.value,
        },
    )
    aligned = aligned.select(~deleted)
    pairs = aligned.pairs
    member_ids, contact_ids = pairs[MEMBER_ID].astype(_STRING), pairs[CONTACT_ID].astype(_STRING)
    member_time = _times(aligned.members, aligned.m_pos)
    cc_time = _times(aligned.contacts, aligned.c_pos)
    recency = _Recency.of(member_time, cc_time)

    reviews: list[pd.DataFrame] = []
    rejected: list[pd.DataFrame] = []
    changes: list[pd.DataFrame] = []

    def review(rows: np.ndarray, kind: ReviewKind, field: str, detail: str) -> None:
        if rows.any():
            reviews.append(
                _frame(
                    REVIEWS_COLUMNS,
                    {
                        KIND: kind.value,
                        MEMBER_ID: member_ids[rows].to_numpy(),
                        CONTACT_ID: contact_ids[rows].to_numpy(),
                        FIELD: field,
                        DETAIL: detail,
                    },
                )
            )

    def reject(rows: np.ndarray, reason: RejectReason, field: str, detail: str) -> None:
        if rows.any():
            rejected.append(
                _frame(
                    REJECTED_COLUMNS,
                    {
                        MEMBER_ID: member_ids[rows].to_numpy(),
                        CONTACT_ID: contact_ids[rows].to_numpy(),
                        FIELD: field,
                        REASON: reason.value,
                        DETAIL: detail,
                    },
                )
            )

    # Consent first: it decides how CC may be written (an opted-out contact gets no import row).
    was_out = _base_opted_out(aligned)
    member_out = side_opted_out(aligned, "member")
    cc_out = side_opted_out(aligned, "contact")
    new_member_out = member_out & ~was_out
    new_cc_out = cc_out & ~was_out
    unsubscribe_cc = new_member_out & ~cc_out
    opt_out_member = new_cc_out & ~member_out
    opted_out_now = was_out | member_out | cc_out
    review(
        was_out & ~cc_out & aligned.has_contact,
        ReviewKind.RESUBSCRIBED_IN_CC,
        OPTED_OUT,
        "CC shows the contact subscribed again; the sync never reverses an opt-out",
    )
    review(
        was_out & ~member_out & aligned.has_member,
        ReviewKind.RESUBSCRIBED_IN_MEMBER_DB,
        OPTED_OUT,
        "the member's opt-out was cleared; the sync never re-subscribes anyone in CC",
    )

    outcomes: dict[str, _FieldOutcome] = {}
    for name, policy in policies.items():
        if not (policy.flows_to_cc(direction) or policy.flows_to_member_db(direction)):
            continue
        outcome = _resolve_field(aligned, name, policy, direction, recency)
        limit = field_max_length(name)
        if limit is not None and outcome.to_cc.any():
            lengths = pc.utf8_length(outcome.member_value.cast(pa.large_string()))
            too_long = outcome.to_cc & pc.fill_null(pc.greater(lengths, limit), False).to_numpy(
                zero_copy_only=False
            )
            reject(too_long, RejectReason.TOO_LONG, name, f"longer than {limit} characters")
            _drop_write(outcome, too_long, to_cc=True)
        if name == EMAIL:
            _check_email(outcome, member_ids, contact_ids, email_owners, review, reject)
        outcomes[name] = outcome
        for rows, target, old, new, why in (
            (outcome.to_cc, WriteDirection.TO_CC, outcome.cc_value, outcome.member_value, outcome.cc_reason),
            (
                outcome.to_member,
                WriteDirection.TO_MEMBER_DB,
                outcome.member_value,
                outcome.cc_value,
                outcome.member_reason,
            ),
        ):
            if rows.any():
                changes.append(
                    _frame(
                        CHANGES_COLUMNS,
                        {
                            DIRECTION: target.value,
                            MEMBER_ID: member_ids[rows].to_numpy(),
                            CONTACT_ID: contact_ids[rows].to_numpy(),
                            FIELD: name,
                            OLD_VALUE: _text_at(old, rows),
                            NEW_VALUE: _text_at(new, rows),
                            REASON: _REASONS[why[rows]],
                        },
                    )
                )
    for rows, target in (
        (unsubscribe_cc, WriteDirection.TO_CC),
        (opt_out_member, WriteDirection.TO_MEMBER_DB),
    ):
        if rows.any():
            changes.append(
                _frame(
                    CHANGES_COLUMNS,
                    {
                        DIRECTION: target.value,
                        MEMBER_ID: member_ids[rows].to_numpy(),
                        CONTACT_ID: contact_ids[rows].to_numpy(),
                        FIELD: OPTED_OUT,
                        OLD_VALUE: "false",
                        NEW_VALUE: "true",
                        REASON: ChangeReason.OPT_OUT.value,
                    },
                )
            )

    member_when = _opt_out_times(aligned.members, aligned.m_pos, member_time.to_pandas())
    cc_when = _opt_out_times(aligned.contacts, aligned.c_pos, cc_time.to_pandas())
    consent = pd.concat(
        [
            _frame(
                CONSENT_COLUMNS,
                {
                    MEMBER_ID: member_ids[new_member_out].to_numpy(),
                    CONTACT_ID: contact_ids[new_member_out].to_numpy(),
                    SOURCE: Side.MEMBER_DB.value,
                    WHEN: member_when[new_member_out].to_numpy(),
                    DIRECTION: np.where(unsubscribe_cc[new_member_out], WriteDirection.TO_CC.value, None),
                },
            ),
            _frame(
                CONSENT_COLUMNS,
                {
                    MEMBER_ID: member_ids[new_cc_out].to_numpy(),
                    CONTACT_ID: contact_ids[new_cc_out].to_numpy(),
                    SOURCE: Side.CC.value,
                    WHEN: cc_when[new_cc_out].to_numpy(),
                    DIRECTION: np.where(opt_out_member[new_cc_out], WriteDirection.TO_MEMBER_DB.value, None),
                },
            ),
        ],
        ignore_index=True,
    )
    row_version = _take(aligned.members, ROW_VERSION, aligned.m_pos)
    if ROW_VERSION in aligned.base.columns:
        from_base = _take(aligned.base, ROW_VERSION, aligned.b_pos)
        row_version = row_version.astype(object).where(aligned.has_member, from_base.astype(object))
    member_opt_outs = _frame(
        MEMBER_OPT_OUTS_COLUMNS,
        {
            MEMBER_ID: member_ids[opt_out_member].to_numpy(),
            ROW_VERSION: row_version[opt_out_member].to_numpy(),
            CONTACT_ID: contact_ids[opt_out_member].to_numpy(),
            SOURCE: Side.CC.value,
            WHEN: cc_when[opt_out_member].to_numpy(),
        },
    )

    member_updates = _wide_writes(
        outcomes, "to_member", "cc_value", member_ids, contact_ids, {ROW_VERSION: row_version}, clear=True
    )
    email_to_cc = outcomes[EMAIL].to_cc if EMAIL in outcomes else np.zeros(len(pairs), bool)
    any_cc_write = np.zeros(len(pairs), bool)
    cleared_cc = np.zeros(len(pairs), bool)
    for outcome in outcomes.values():
        any_cc_write |= outcome.to_cc
        cleared_cc |= outcome.to_cc & pc.is_null(outcome.member_value).to_numpy(zero_copy_only=False)
    # Email changes and unsubscribes need a PUT; so do clears (the import ignores blanks) and
    # contacts whose email CC does not hold (nothing to key the import on). An opted-out person's
    # edits go in bulk only when this run read the contact unsubscribed in CC: an import never
    # changes an existing contact's permission nor adds an unsubscribed contact to a list (the
    # spec's cannot_add_to_list_count). Otherwise CC may show them subscribed again, and an import
    # row would add them to the list: a PUT keeps them off it. Everything else goes in bulk.
    cc_email = (
        outcomes[EMAIL].cc_value
        if EMAIL in outcomes
        else arrow_column(aligned.base, EMAIL).take(pa.array(aligned.b_pos, mask=aligned.b_pos < 0))
    )
    no_import_key = pc.is_null(cc_email).to_numpy(zero_copy_only=False)  # the import keys on email alone
    read_unsubscribed = aligned.has_contact & cc_out
    held_out = opted_out_now & ~read_unsubscribed
    by_put = unsubscribe_cc | email_to_cc | (any_cc_write & (held_out | cleared_cc | no_import_key))
    by_import = any_cc_write & ~by_put
    cc_updates = _wide_writes(
        {k: v for k, v in outcomes.items() if k != EMAIL},
        "to_cc",
        "member_value",
        member_ids,
        contact_ids,
        {EMAIL: cc_email},
        rows=by_import,
        id_first=CONTACT_ID,
    )
    put_extra: dict[str, pa.Array | np.ndarray] = {
        EMAIL_CHANGE: pc.if_else(
            pa.array(email_to_cc),
            pc.utf8_trim_whitespace(outcomes[EMAIL].member_value.cast(pa.large_string())),
            pa.scalar(None, type=pa.large_string()),
        )
        if EMAIL in outcomes
        else pa.nulls(len(pairs), type=pa.large_string()),
        UNSUBSCRIBE: unsubscribe_cc,
    }
    cc_puts = _wide_writes(
        {k: v for k, v in outcomes.items() if k != EMAIL},
        "to_cc",
        "member_value",
        member_ids,
        contact_ids,
        put_extra,
        rows=by_put,
        id_first=CONTACT_ID,
        clear=True,
    )

    base_columns: dict[str, object] = {
        MEMBER_ID: _base_column(pa.array(member_ids.array)),
        CONTACT_ID: _base_column(pa.array(contact_ids.array)),
    }
    for name in policies:
        if name in outcomes:
            base_columns[name] = _base_column(outcomes[name].base_value)
        else:
            base_columns[name] = _base_column(
                arrow_column(aligned.base, name).take(pa.array(aligned.b_pos, mask=aligned.b_pos < 0))
            )
    base_columns[OPTED_OUT] = opted_out_now
    new_base = pd.DataFrame(base_columns)

    return Resolution(
        member_updates=member_updates,
        member_opt_outs=member_opt_outs,
        cc_updates=cc_updates,
        cc_puts=cc_puts,
        consent=consent,
        unlinks=unlinks,
        reviews=_concat(reviews, REVIEWS_COLUMNS),
        rejected=_concat(rejected, REJECTED_COLUMNS),
        changes=_concat(changes, CHANGES_COLUMNS),
        new_base=new_base,
    )


def _drop_write(outcome: _FieldOutcome, rows: np.ndarray, *, to_cc: bool) -> None:
    """Cancel the write for ``rows``; the base keeps its old value so the next run tries again."""
    if not rows.any():
        return
    if to_cc:
        outcome.to_cc = outcome.to_cc & ~rows
    else:
        outcome.to_member = outcome.to_member & ~rows
    outcome.base_value = pc.if_else(pa.array(rows), outcome.old_base, outcome.base_value)


def _check_email(
    outcome: _FieldOutcome,
    member_ids: pd.Series,
    contact_ids: pd.Series,
    email_owners: EmailOwners,
    review: Callable[[np.ndarray, ReviewKind, str, str], None],
    reject: Callable[[np.ndarray, RejectReason, str, str], None],
) -> None:
    """Validate and de-collide email changes in both directions (in place)."""
    n = len(outcome.to_cc)
    if outcome.to_cc.any():
        new = _to_series(_at(outcome.member_value, outcome.to_cc))
        valid = np.asarray(is_valid_email(new), dtype=bool)
        invalid = np.zeros(n, bool)
        invalid[outcome.to_cc] = ~valid
        reject(invalid, RejectReason.INVALID_EMAIL, EMAIL, "not an email address")
        _drop_write(outcome, invalid, to_cc=True)
        rows = outcome.to_cc
        keys = normalise_email(new[valid].reset_index(drop=True))
        taken = np.zeros(n, bool)
        taken[rows] = email_owners.taken_by_other(keys, contact_ids[rows], Side.CC)
        twice = np.zeros(n, bool)
        twice[rows] = keys.duplicated(keep=False).to_numpy(dtype=bool)
        collide = taken | twice
        review(
            collide, ReviewKind.EMAIL_COLLISION, EMAIL, "the member's new email is held by another CC contact"
        )
        _drop_write(outcome, collide, to_cc=True)
    if outcome.to_member.any():
        rows = outcome.to_member
        keys = normalise_email(_to_series(_at(outcome.cc_value, rows)))
        taken = np.zeros(n, bool)
        taken[rows] = email_owners.taken_by_other(keys, member_ids[rows], Side.MEMBER_DB)
        twice = np.zeros(n, bool)
        twice[rows] = keys.duplicated(keep=False).to_numpy(dtype=bool)
        collide = taken | twice
        review(
            collide, ReviewKind.EMAIL_COLLISION, EMAIL, "the contact's new email is held by another member"
        )
        _drop_write(outcome, collide, to_cc=False)


def _opt_out_times(frame: pd.DataFrame, pos: np.ndarray, fallback: pd.Series) -> pd.Series:
    if OPTED_OUT_AT in frame.columns:
        when = pd.to_datetime(_take(frame, OPTED_OUT_AT, pos).astype(object), utc=True, errors="coerce")
        return when.where(when.notna(), fallback)
    return fallback


def _wide_writes(
    outcomes: dict[str, _FieldOutcome],
    flag: str,
    value: str,
    member_ids: pd.Series,
    contact_ids: pd.Series,
    extra: dict[str, pd.Series | pa.Array | np.ndarray],
    *,
    rows: np.ndarray | None = None,
    id_first: str = MEMBER_ID,
    clear: bool = False,
) -> pd.DataFrame:
    """One row per pair with a write: ids, ``extra`` columns, each written field (NA: leave alone)."""
    n = len(member_ids)
    written = np.zeros(n, bool)
    for outcome in outcomes.values():
        written |= getattr(outcome, flag)
    if rows is not None:
        written = rows
    ids = {id_first: (member_ids if id_first == MEMBER_ID else contact_ids)[written].to_numpy()}
    other = CONTACT_ID if id_first == MEMBER_ID else MEMBER_ID
    ids[other] = (contact_ids if id_first == MEMBER_ID else member_ids)[written].to_numpy()
    columns: dict[str, object] = dict(ids)
    for name, values in extra.items():
        if isinstance(values, pa.Array):
            columns[name] = _objects(_at(values, written))
        else:
            columns[name] = pd.Series(values).reset_index(drop=True)[written].to_numpy()
    cleared: dict[int, list[str]] = {}  # pair position -> fields a blank wipes (few, if any)
    for name, outcome in outcomes.items():
        mask = getattr(outcome, flag) & written
        if not mask.any():
            continue
        values: pa.Array = getattr(outcome, value)
        written_values = _objects(_at(values, written))
        written_values[~mask[written]] = None
        columns[name] = written_values
        if clear:
            blanked = mask & pc.is_null(values).to_numpy(zero_copy_only=False)
            for row in np.flatnonzero(blanked):
                cleared.setdefault(int(row), []).append(name)
    if clear:
        column = np.full(n, None, dtype=object)
        for row, names in cleared.items():
            column[row] = ",".join(names)
        columns[CLEARED_FIELDS] = column[written]
    frame = pd.DataFrame(columns)
    if len(frame.columns) and not len(frame):
        return frame.astype(object)
    return frame


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_frame(columns)
    return pd.concat(frames, ignore_index=True)[list(columns)]
