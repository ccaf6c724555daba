"""Link: match unlinked members to CC contacts by first name + last name + email.

One rule links: the normalised email, first name and last name all equal (``LinkRule.NAME_EMAIL``).
Everything less certain goes to review, never to a link: the same email under another name
(Anne / Annabelle: ``near_match``), an email shared by several members (a household:
``shared_email``), or an email held by several contacts, or by a contact already linked to
someone else (``ambiguous`` / ``shared_email``). A member with an email nobody in CC holds becomes
a contact to create, unless it is opted out, malformed, or belongs to a deleted CC contact
(whom a new import would revive). CC contacts never create members: they only ever link.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cc_sync.engine.align import duplicated, is_in, positions, take_column, to_arrow
from cc_sync.engine.model import (
    DETAIL,
    FIELD,
    KIND,
    NEW_LINKS_COLUMNS,
    REASON,
    REJECTED_COLUMNS,
    REVIEWS_COLUMNS,
    RULE,
    LinkRule,
    RejectReason,
    ReviewKind,
    empty_frame,
)
from cc_sync.engine.normalise import as_string, is_valid_email, normalise_email, normalise_name
from cc_sync.fields import CONTACT_ID, DELETED, MEMBER_ID, OPTED_OUT, field_max_length

EMAIL = "email"
FIRST_NAME = "first_name"
LAST_NAME = "last_name"
_KEY = "_email_key"
_NAME = "_name_key"
CREATABLE = "creatable"  # column of the unlinked frame: may this member be created in CC?


@dataclass(frozen=True)
class LinkResult:
    new_links: pd.DataFrame  # member_id, contact_id, rule
    reviews: pd.DataFrame  # kind, member_id, contact_id, field, detail
    to_create: pd.Series  # member_id of members to create as CC contacts
    rejected: pd.DataFrame  # member_id, contact_id, field, reason, detail


def _name_key(frame: pd.DataFrame) -> pd.Series:
    first = normalise_name(frame[FIRST_NAME]) if FIRST_NAME in frame else pd.Series(pd.NA, index=frame.index)
    last = normalise_name(frame[LAST_NAME]) if LAST_NAME in frame else pd.Series(pd.NA, index=frame.index)
    # "\x1f" cannot occur in a normalised name, so the join is unambiguous; a missing name is "".
    return as_string(first).fillna("") + "\x1f" + as_string(last).fillna("")


def _display_name(frame: pd.DataFrame) -> pd.Series:
    parts = [as_string(frame[c]).fillna("") for c in (FIRST_NAME, LAST_NAME) if c in frame]
    if not parts:
        return pd.Series("", index=frame.index, dtype="string[pyarrow]")
    return (parts[0] + " " + parts[1]).str.strip() if len(parts) == 2 else parts[0]


def _strings(array: pa.Array) -> pd.Series:
    """Arrow text as a pyarrow-backed string Series (the dtype the linker's keys use)."""
    return pd.Series(pd.arrays.ArrowStringArray(array.cast(pa.large_string())))


def _count_per_key(counted: pd.Series, probe: pd.Series) -> np.ndarray:
    """How many times each ``probe`` key occurs in ``counted`` (0 when never; NA keys never count).

    Arrow's hash kernels: a pandas groupby + map turns a million keys into Python objects twice.
    """
    if len(probe) == 0 or len(counted) == 0:
        return np.zeros(len(probe), dtype=np.int64)
    encoded = to_arrow(counted, contiguous=True).dictionary_encode()  # one hash pass
    unique = encoded.dictionary
    totals = np.bincount(encoded.indices.drop_null().to_numpy(zero_copy_only=False), minlength=len(unique))
    probe_keys = to_arrow(probe, contiguous=True)
    if probe_keys.type != unique.type:
        probe_keys = probe_keys.cast(unique.type)
    where = pc.index_in(probe_keys, value_set=unique)
    found = where.fill_null(-1).to_numpy(zero_copy_only=False)
    return np.where(found >= 0, totals[np.maximum(found, 0)], 0)


def _reviews(frame: pd.DataFrame, kind: ReviewKind, detail: pd.Series | str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            KIND: kind.value,
            MEMBER_ID: frame[MEMBER_ID].to_numpy(),
            CONTACT_ID: frame[CONTACT_ID].to_numpy() if CONTACT_ID in frame else pd.NA,
            FIELD: EMAIL,
            DETAIL: detail.to_numpy() if isinstance(detail, pd.Series) else detail,
        },
        columns=list(REVIEWS_COLUMNS),
    )


def _rejected(frame: pd.DataFrame, reason: RejectReason, field: str, detail: str) -> pd.DataFrame:
    return pd.DataFrame(
        {MEMBER_ID: frame[MEMBER_ID].to_numpy(), CONTACT_ID: pd.NA, FIELD: field, REASON: reason.value},
        columns=list(REJECTED_COLUMNS),
    ).assign(**{DETAIL: detail})


def find_links(
    unlinked: pd.DataFrame,
    contact_pool: pd.DataFrame,
    linked_members: pd.DataFrame,
    linked_contact_ids: pd.Series,
    *,
    may_create: bool,
    kept_apart: frozenset[tuple[str, str]] = frozenset(),
) -> LinkResult:
    """Link, send to review, or plan to create each unlinked member.

    ``unlinked``: member_id, email, first_name, last_name, opted_out, creatable (False for members
    that were only looked up, not extracted: they may link but are not pushed to CC).
    ``contact_pool``: every CC contact that could match: contact_id, email, first_name, last_name,
    deleted (the directory, overlaid with this run's contacts).
    ``linked_members``: member_id, email of members already linked (to count households).
    ``linked_contact_ids``: contacts already linked to a member.
    ``may_create``: the sync direction lets members become CC contacts.
    ``kept_apart``: (member_id, contact_id) pairs a person decided are not the same person: such a
    pair is neither linked nor sent to review again, whatever their names and emails.
    """
    if unlinked.empty:
        empty = empty_frame(REVIEWS_COLUMNS)
        return LinkResult(
            empty_frame(NEW_LINKS_COLUMNS),
            empty,
            pd.Series([], dtype="string[pyarrow]"),
            empty_frame(REJECTED_COLUMNS),
        )
    members = unlinked.reset_index(drop=True)
    members[_KEY] = normalise_email(members[EMAIL]) if EMAIL in members else pd.NA
    no_email = members[_KEY].isna().to_numpy()
    rejected = [_rejected(members[no_email], RejectReason.NO_EMAIL, EMAIL, "the member has no email address")]
    members = members[~no_email].reset_index(drop=True)
    keys = members[_KEY]

    # Households: every member (linked or not) on each email this run looks at.
    linked = linked_members[[MEMBER_ID, EMAIL]].copy()
    linked[_KEY] = normalise_email(linked[EMAIL])
    linked = linked[is_in(linked[_KEY], keys)]
    everyone = pd.concat([members[[MEMBER_ID, _KEY]], linked[[MEMBER_ID, _KEY]]], ignore_index=True)
    everyone = everyone[~duplicated(everyone[MEMBER_ID])]

    pool = contact_pool.copy()
    pool[_KEY] = normalise_email(pool[EMAIL])
    pool = pool[is_in(pool[_KEY], keys)]
    deleted = (
        pool[DELETED].fillna(False).astype(bool).to_numpy() if DELETED in pool else np.zeros(len(pool), bool)
    )
    deleted_keys = set(pool.loc[deleted, _KEY])
    live = pool[~deleted]
    live = live[~duplicated(live[CONTACT_ID])]
    one_contact = live[_count_per_key(live[_KEY], live[_KEY]) == 1]
    one_contact = one_contact.assign(
        **{_NAME: _name_key(one_contact), "_contact_name": _display_name(one_contact)}
    )

    n_members = np.maximum(_count_per_key(everyone[_KEY], keys), 1)
    n_contacts = _count_per_key(live[_KEY], keys)
    # Each key is held by at most one contact here, so a lookup by position does what a left merge
    # would, without hashing both frames' keys again.
    found = positions(members[_KEY], one_contact[_KEY])
    matched = pd.DataFrame(
        {
            column: _strings(take_column(to_arrow(one_contact[column], contiguous=True), found))
            for column in (CONTACT_ID, _NAME, "_contact_name")
        }
    )
    contact_linked = is_in(matched[CONTACT_ID].astype("string[pyarrow]"), linked_contact_ids)
    same_name = (_name_key(members) == matched[_NAME]).fillna(False).to_numpy(dtype=bool)

    apart = np.zeros(len(members), bool)
    if kept_apart:
        pair_contacts = matched[CONTACT_ID].astype("string").fillna("")
        apart = np.array(
            [(str(m), str(c)) in kept_apart for m, c in zip(members[MEMBER_ID], pair_contacts, strict=True)],
            dtype=bool,
        )
    household = (n_members > 1) & ~apart
    ambiguous = ~household & (n_contacts > 1)
    taken = ~household & (n_contacts == 1) & contact_linked & ~apart
    link = ~household & (n_contacts == 1) & ~contact_linked & same_name & ~apart
    near = ~household & (n_contacts == 1) & ~contact_linked & ~same_name & ~apart
    nobody = ~household & (n_contacts == 0)
    revived = nobody & is_in(keys, pd.Series(sorted(deleted_keys), dtype="string[pyarrow]"))
    create = nobody & ~revived

    with_contact = members.assign(**{CONTACT_ID: matched[CONTACT_ID].to_numpy()})
    reviews = [
        _reviews(with_contact[household], ReviewKind.SHARED_EMAIL, "several members share this email"),
        _reviews(members[ambiguous], ReviewKind.AMBIGUOUS, "several CC contacts hold this email"),
        _reviews(with_contact[taken], ReviewKind.SHARED_EMAIL, "the CC contact is linked to another member"),
        _reviews(
            with_contact[near],
            ReviewKind.NEAR_MATCH,
            "member '"
            + _display_name(members[near])
            + "' vs contact '"
            + matched.loc[near, "_contact_name"].astype("string[pyarrow]").fillna("")
            + "'",
        ),
        _reviews(members[revived], ReviewKind.DELETED_IN_CC, "the email belongs to a deleted CC contact"),
    ]
    new_links = pd.DataFrame(
        {
            MEMBER_ID: with_contact.loc[link, MEMBER_ID].to_numpy(),
            CONTACT_ID: with_contact.loc[link, CONTACT_ID].to_numpy(),
            RULE: LinkRule.NAME_EMAIL.value,
        },
        columns=list(NEW_LINKS_COLUMNS),
    )

    creatable = (
        members[CREATABLE].fillna(False).astype(bool).to_numpy()
        if CREATABLE in members
        else np.ones(len(members), bool)
    )
    candidates = members[create & creatable & may_create]
    opted_out = (
        candidates[OPTED_OUT].fillna(False).astype(bool).to_numpy()
        if OPTED_OUT in candidates
        else (np.zeros(len(candidates), bool))
    )
    rejected.append(
        _rejected(
            candidates[opted_out],
            RejectReason.OPTED_OUT,
            OPTED_OUT,
            "opted-out members are never created in CC",
        )
    )
    candidates = candidates[~opted_out]
    valid = is_valid_email(candidates[EMAIL])
    rejected.append(_rejected(candidates[~valid], RejectReason.INVALID_EMAIL, EMAIL, "not an email address"))
    candidates = candidates[valid]
    limit = field_max_length(EMAIL) or 0
    too_long = (as_string(candidates[EMAIL]).str.strip().str.len() > limit).fillna(False).to_numpy(dtype=bool)
    rejected.append(
        _rejected(candidates[too_long], RejectReason.TOO_LONG, EMAIL, f"longer than {limit} characters")
    )
    to_create = candidates.loc[~too_long, MEMBER_ID].astype("string[pyarrow]").reset_index(drop=True)

    return LinkResult(
        new_links=new_links.astype("string[pyarrow]"),
        reviews=_concat(reviews, REVIEWS_COLUMNS),
        to_create=to_create,
        rejected=_concat(rejected, REJECTED_COLUMNS),
    )


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_frame(columns)
    return pd.concat(frames, ignore_index=True)[list(columns)].astype("string[pyarrow]")
