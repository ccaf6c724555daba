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

from cc_sync.engine.align import duplicated, is_in, shared_codes, take_column, to_arrow
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
    # Only the columns linking reads: filtering a member frame of every mapped field, a million
    # rows at a first sync, cost more than the linking itself.
    wanted = (MEMBER_ID, EMAIL, FIRST_NAME, LAST_NAME, OPTED_OUT, CREATABLE)
    members = unlinked[[c for c in wanted if c in unlinked.columns]].reset_index(drop=True)
    members[_KEY] = normalise_email(members[EMAIL]) if EMAIL in members else pd.NA
    no_email = members[_KEY].isna().to_numpy()
    rejected = [_rejected(members[no_email], RejectReason.NO_EMAIL, EMAIL, "the member has no email address")]
    members = members[~no_email].reset_index(drop=True)
    keys = members[_KEY]

    # Every email key of this run in one dictionary: the members', the linked members' and the
    # contacts'. Households, contacts per key and the lookup of each member's contact are then
    # counts and indexing on integer codes.
    pool = contact_pool.reset_index(drop=True)
    linked_keys, pool_keys = normalise_email(linked_members[EMAIL]), normalise_email(pool[EMAIL])
    (member_code, linked_code, pool_code), n_keys = shared_codes(keys, linked_keys, pool_keys)
    looked_at = np.zeros(n_keys + 1, dtype=bool)  # the extra slot answers for code -1 (no email)
    looked_at[member_code] = True

    # Households: every member (linked or not) on each email this run looks at.
    linked_here = looked_at[linked_code]
    everyone_ids = pd.concat(
        [members[MEMBER_ID], linked_members[MEMBER_ID].reset_index(drop=True)[linked_here]], ignore_index=True
    )
    everyone_codes = np.concatenate([member_code, linked_code[linked_here]])
    everyone_codes = everyone_codes[~duplicated(everyone_ids)]
    n_members = np.maximum(np.bincount(everyone_codes, minlength=n_keys)[member_code], 1)

    in_pool = looked_at[pool_code]
    deleted = (
        pool[DELETED].fillna(False).astype(bool).to_numpy() if DELETED in pool else np.zeros(len(pool), bool)
    )
    deleted_key = np.zeros(n_keys, dtype=bool)
    deleted_key[pool_code[in_pool & deleted]] = True
    live_rows = np.flatnonzero(in_pool & ~deleted)
    live_rows = live_rows[~duplicated(pool[CONTACT_ID].iloc[live_rows])]
    live_code = pool_code[live_rows]
    per_key = np.bincount(live_code, minlength=n_keys)
    n_contacts = per_key[member_code]
    # Each key is held by at most one contact here, so a lookup by code does what a left merge would.
    one_contact_rows = live_rows[per_key[live_code] == 1]
    row_of_key = np.full(n_keys + 1, -1, dtype=np.int64)
    row_of_key[pool_code[one_contact_rows]] = one_contact_rows
    found = row_of_key[member_code]  # the contact's row in the pool, or -1
    matched_contact = _strings(take_column(to_arrow(pool[CONTACT_ID], contiguous=True), found))
    contact_linked = is_in(matched_contact, linked_contact_ids)

    # Names only where they decide: a member whose email one contact holds.
    same_name = np.zeros(len(members), dtype=bool)
    one = np.flatnonzero(found >= 0)
    if len(one):
        # A contact is repeated here when several members (a household) hold its email.
        member_names = to_arrow(_name_key(members.iloc[one].reset_index(drop=True)), contiguous=True)
        contact_names = to_arrow(_name_key(pool.iloc[found[one]].reset_index(drop=True)), contiguous=True)
        same_name[one] = pc.fill_null(pc.equal(member_names, contact_names), False).to_numpy(
            zero_copy_only=False
        )

    apart = np.zeros(len(members), bool)
    if kept_apart:
        pair_contacts = matched_contact.fillna("")
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
    revived = nobody & deleted_key[member_code]
    create = nobody & ~revived

    with_contact = members.assign(**{CONTACT_ID: matched_contact.to_numpy()})
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
            + _display_name(pool.iloc[found[near]].reset_index(drop=True)).to_numpy()
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
