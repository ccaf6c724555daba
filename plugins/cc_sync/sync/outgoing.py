"""The mapping's rules for what may leave for Constant Contact, applied to a sync plan.

The engine decides what changes; this decides whether each row it would send is fit to go, with
the same :func:`~cc_sync.member_db.validate.validate_outgoing` the send-list uses: required
fields, the name placeholder, lengths, email validity and clean text. A refused person is taken
out of every write to Constant Contact, the fields held back keep CC's value in the new base (so
the next run sees the same difference and sends it once the member's row is fixed), and the
person is reported in ``rejected``, which the recording step turns into review items. Writes to
the member database go ahead, and so does an unsubscribe: consent never waits for a name to be
fixed.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from cc_sync.engine import SyncPlan
from cc_sync.engine.model import (
    CLEARED_FIELDS,
    DETAIL,
    DIRECTION,
    EMAIL_CHANGE,
    FIELD,
    REASON,
    REJECTED_COLUMNS,
    UNSUBSCRIBE,
    RejectReason,
    WriteDirection,
)
from cc_sync.fields import CONTACT_ID, MEMBER_ID, OPTED_OUT, is_known_field
from cc_sync.member_db.mapping import MemberMapping
from cc_sync.member_db.validate import validate_outgoing

EMAIL = "email"
_NAME_FIELDS = ("first_name", "last_name")


def _as_rejected(report: pd.DataFrame, contact_ids: pd.Series) -> pd.DataFrame:
    """validate_outgoing's report in the plan's ``rejected`` shape."""
    return pd.DataFrame(
        {
            MEMBER_ID: report[MEMBER_ID].astype("string").to_numpy(),
            CONTACT_ID: report[MEMBER_ID].astype(str).map(contact_ids).astype("string").to_numpy(),
            FIELD: report["field"].astype("string").to_numpy(),
            REASON: report["code"].astype("string").to_numpy(),
            DETAIL: report["reason"].astype("string").to_numpy(),
        },
        columns=list(REJECTED_COLUMNS),
    )


def _contact_ids(*frames: pd.DataFrame) -> pd.Series:
    pairs = [f[[MEMBER_ID, CONTACT_ID]] for f in frames if CONTACT_ID in f.columns and len(f)]
    if not pairs:
        return pd.Series(dtype="string")
    both = pd.concat(pairs, ignore_index=True).dropna(subset=[MEMBER_ID]).drop_duplicates(MEMBER_ID)
    return both.set_index(both[MEMBER_ID].astype(str))[CONTACT_ID]


def _written_fields(frame: pd.DataFrame) -> pd.DataFrame:
    """member_id and the canonical fields a row writes (its email column, the import's key, left out)."""
    return frame[[c for c in frame.columns if c == MEMBER_ID or (is_known_field(c) and c != EMAIL)]]


def _cleared(row_value: object) -> list[str]:
    return [n.strip() for n in str(row_value).split(",") if n.strip()] if not pd.isna(row_value) else []


def _cleared_required(puts: pd.DataFrame, mapping: MemberMapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A PUT that would blank a required field: a name takes the placeholder, anything else is refused."""
    if CLEARED_FIELDS not in puts.columns or not len(puts):
        return puts, pd.DataFrame(columns=[MEMBER_ID, "field", "reason", "code"])
    required = set(mapping.required_fields)
    puts = puts.copy()
    refused = []
    for position, value in enumerate(puts[CLEARED_FIELDS].tolist()):
        names = _cleared(value)
        hit = [n for n in names if n in required]
        if not hit:
            continue
        keep = [n for n in names if n not in hit]
        for name in hit:
            if name in _NAME_FIELDS and mapping.name_placeholder:
                if name not in puts.columns:
                    puts[name] = pd.Series(pd.NA, index=puts.index, dtype="string")
                puts.iloc[position, puts.columns.get_loc(name)] = mapping.name_placeholder
            else:
                refused.append(
                    {
                        MEMBER_ID: puts.iloc[position][MEMBER_ID],
                        "field": name,
                        "reason": f"required field {name} would be blanked",
                        "code": RejectReason.REQUIRED_BLANK.value,
                    }
                )
        puts.iloc[position, puts.columns.get_loc(CLEARED_FIELDS)] = ",".join(keep) if keep else pd.NA
    return puts, pd.DataFrame(refused, columns=[MEMBER_ID, "field", "reason", "code"])


def _held_back_base(plan: SyncPlan, held_back: pd.DataFrame, refused_ids: set[str]) -> pd.DataFrame:
    """The new base with what was held back from CC left where CC still is.

    A refused person's writes to the member database go ahead, so their base moves for those
    fields; a field held back from CC keeps CC's value (the change row's old value: CC had not
    changed it, or it lost the merge to the member's later edit). The next run then sees the same
    member-side change, and refuses or sends it, while every other field stays one-sided. A refused
    create has no contact yet: its base row goes.
    """
    base = plan.new_base
    if not len(base):
        return base
    created = base[CONTACT_ID].isna().to_numpy(bool) & base[MEMBER_ID].astype(str).isin(refused_ids).to_numpy(
        bool
    )
    base = base[~created].reset_index(drop=True).copy()
    rows = pd.Series(range(len(base)), index=base[MEMBER_ID].astype(str).to_numpy())
    for change in held_back.itertuples(index=False):
        name = getattr(change, FIELD)
        member = str(getattr(change, MEMBER_ID))
        if name not in base.columns or member not in rows.index:
            continue
        old = change.old_value
        base.iloc[rows[member], base.columns.get_loc(name)] = None if pd.isna(old) else old
    return base


def screen_outgoing(plan: SyncPlan, mapping: MemberMapping) -> SyncPlan:
    """The plan with every row for Constant Contact checked against the mapping's rules."""
    if not all(MEMBER_ID in f.columns for f in (plan.cc_creates, plan.cc_updates, plan.cc_puts)):
        raise ValueError("screen_outgoing needs member_id on cc_creates, cc_updates and cc_puts")
    creates, refused_creates = validate_outgoing(plan.cc_creates, mapping)

    # An update's email is the import's key, CC's own address: only the fields it changes are checked.
    _, refused_updates = validate_outgoing(_written_fields(plan.cc_updates), mapping, partial=True)

    puts, refused_clearing = _cleared_required(plan.cc_puts, mapping)
    put_rows = _written_fields(puts)
    if EMAIL_CHANGE in puts.columns:
        put_rows = put_rows.assign(**{EMAIL: puts[EMAIL_CHANGE]})
    _, refused_puts = validate_outgoing(put_rows, mapping, partial=True)

    reports = [r for r in (refused_creates, refused_updates, refused_puts, refused_clearing) if len(r)]
    if not reports:
        return dataclasses.replace(plan, cc_creates=creates, cc_puts=puts)
    report = pd.concat(reports, ignore_index=True)
    refused_ids = set(report[MEMBER_ID].astype(str))

    def without_refused(frame: pd.DataFrame) -> pd.DataFrame:
        if not len(frame):
            return frame
        return frame[~frame[MEMBER_ID].astype(str).isin(refused_ids).to_numpy(bool)].reset_index(drop=True)

    # Consent never waits: a refused person's unsubscribe still goes, without the refused fields.
    refused_puts_mask = puts[MEMBER_ID].astype(str).isin(refused_ids).to_numpy(bool)
    unsubscribes = puts[refused_puts_mask]
    if len(unsubscribes) and UNSUBSCRIBE in unsubscribes.columns:
        unsubscribes = unsubscribes[unsubscribes[UNSUBSCRIBE].fillna(False).astype(bool).to_numpy()]
        fields = [c for c in unsubscribes.columns if is_known_field(c) and c != EMAIL]
        unsubscribes = unsubscribes.assign(
            **{name: pd.Series(pd.NA, index=unsubscribes.index, dtype="string") for name in fields},
            **{EMAIL_CHANGE: pd.NA, CLEARED_FIELDS: pd.NA},
        )
    else:
        unsubscribes = puts.iloc[0:0]

    to_cc = plan.changes[DIRECTION].astype(str).eq(WriteDirection.TO_CC.value).to_numpy(bool)
    refused_change = plan.changes[MEMBER_ID].astype(str).isin(refused_ids).to_numpy(bool)
    is_opt_out = plan.changes[FIELD].astype(str).eq(OPTED_OUT).to_numpy(bool)
    unsubscribed = set(unsubscribes[MEMBER_ID].astype(str)) if len(unsubscribes) else set()
    still_sent = is_opt_out & plan.changes[MEMBER_ID].astype(str).isin(unsubscribed).to_numpy(bool)
    held_back = to_cc & refused_change & ~still_sent
    contact_ids = _contact_ids(plan.cc_updates, plan.cc_puts, plan.new_base)
    return dataclasses.replace(
        plan,
        cc_creates=without_refused(creates),
        cc_updates=without_refused(plan.cc_updates),
        cc_puts=pd.concat([without_refused(puts), unsubscribes], ignore_index=True)
        if len(unsubscribes)
        else without_refused(puts),
        changes=plan.changes[~held_back].reset_index(drop=True),
        new_base=_held_back_base(plan, plan.changes[held_back], refused_ids),
        rejected=pd.concat([plan.rejected, _as_rejected(report, contact_ids)], ignore_index=True),
    )
