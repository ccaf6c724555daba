"""Send a member segment to a Constant Contact list (Realm's "send a list"), as plain functions.

The DAG ``constant_contact_send_list`` calls :func:`plan_send` (read-only: who would be sent, who
is skipped and why) and then :func:`execute_send` (the writes). Tests call them directly too.

How people are matched, and why this way:

- **On email alone** (normalised: trimmed, Unicode-folded, lower-cased), as CC keys its contacts.
- **Before sending**, what we already know about CC is used, not a contact-by-contact lookup (a
  read of every segment email is 1 call per person, far too many for a large account): the sync's
  CC **directory** (every contact a sync read, with its opt-out state) and, when the list already
  exists, one **read of the list's members** (500 a call). A contact known to be unsubscribed is
  reported and not sent.
- **The bulk import** (``contacts_json_import``, 40,000 a request) does the rest: it updates the
  contact that has the email, or creates it, makes its names and mapped fields those of the member
  database (a blank never wipes a CC value), and adds it to the list. CC never puts an unsubscribed
  contact back on a list, and never changes its permission through an import: an opt-out we did
  not know about is still kept (and reported below).
- **After the import**, each sent member's contact id is needed to link it (rule ``send_list``),
  and CC's import answers no ids. Cheapest first (a list read costs one call per 500 contacts:
  188 of the 208 calls of a 100,000-member send when it was always done):

  1. **Known ids, no read.** A sent email is *known* when the list held it when the plan read it,
     or when the directory holds one live (not deleted) contact for it. The directory is only as
     fresh as the run that recorded it, so before the import the contacts changed in CC since its
     oldest entry relied on (less the sync's read overlap) are read (``updated_after``; usually one
     call) and recorded, so a contact whose email moved or that was deleted since is not taken for
     its old email (that read is given up past half a list read's cost: then step 3). When every
     sent email is known, and the import reported no error and ``cannot_add_to_list_count == 0``
     (so every sent contact is on the list), the known ids are linked: added = not on the list
     before, updated = the rest (created = 0: each had a contact). Replace takes off who was on
     the list before and is not in the segment (the import only adds).
  2. **A few unknown, looked up.** When U sent emails are unknown and U is smaller than the pages
     a list read would cost (list size estimated as on the list before + sent), those U are looked
     up by email after the import (one call each), recorded in the directory, and counted created
     when CC created them during the send.
  3. **Otherwise, one read of the list's members**: a contact export of the list (its POST, its
     polls and one file read: about 20 calls for 100,000 members, where reading it 500 a call
     took 200) once the list is :func:`settings.list_export_min_pages` pages long, else page by
     page. It gives the ids, refreshes the directory, and is what the job falls back to whenever
     the import reported errors or contacts it could not add to the list, or a lookup did not
     find its contact. Members sent but not on the list afterwards (CC refused them) are looked
     up one by one, at most :data:`MAX_REFUSAL_LOOKUPS`, to say why.

  What a stale directory entry does: a contact **deleted** in CC after the directory recorded it
  (its DELETED flag not yet set) is brought back by the import, with the same id (CC revives a
  deleted contact added to a list), so its known id is still right; the changes read before the
  import usually show the deletion anyway, and the member is then looked up instead. A contact that
  **unsubscribed** meanwhile is refused by the import (``cannot_add_to_list_count``): step 3. An
  email moved in CC between that read of changes and the import (seconds) is not seen: the member
  is linked to the contact that held the email, and the scheduled sync's review rules take it from
  there. Whoever joined the list by other means during the send is not taken off by replace in
  steps 1-2 (it was not on the list the plan read).
- **Consent across the member table**: an email any member opted out of (in the segment or not,
  in the sync's scope or not, soft-deleted or not: one query over the opted-out rows) is not sent
  for anyone sharing it; they are reported ``opted_out``, naming that member.

Replace removes from the list only contacts whose email is no longer a segment member's, through
``remove_list_memberships``: nobody is unsubscribed. Nothing here ever sends a permission.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd

from cc_sync import settings
from cc_sync.constant_contact.convert import frame_to_import_rows
from cc_sync.constant_contact.errors import ConstantContactApiError
from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.constant_contact.models import ContactList, PermissionToSend
from cc_sync.engine.normalise import normalise_email
from cc_sync.errors import NotRetryableError
from cc_sync.fields import CONTACT_ID, DELETED, MEMBER_ID, OPTED_OUT, UPDATED_AT, is_custom_field
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.member_db.hook import MemberDatabaseHook
from cc_sync.member_db.mapping import Condition, ConditionOp, MemberMapping
from cc_sync.member_db.validate import mask_email, mask_name_placeholder, validate_outgoing
from cc_sync.send_list.form import SendMode, filterable_fields
from cc_sync.sync.loading import ensure_custom_fields
from cc_sync.sync.resources import SyncResources
from cc_sync.timeutil import utcnow

log = logging.getLogger(__name__)

LINK_RULE = "send_list"
RUN_KIND = "send_list"
# The segment the form's choices add up to, added to a copy of the mapping under this name.
FORM_SEGMENT = "__send_list_form__"
# Members refused by the import are looked up by email to say why; beyond this many, they are
# reported without a lookup (each lookup is one API call).
MAX_REFUSAL_LOOKUPS = 200
# Contacts per call when reading a list or what changed in CC (the API's maximum).
PAGE_SIZE = 500
# The columns of a list's export: what contacts_frame needs of a member.
EXPORT_FIELDS = ("email_address", "first_name", "last_name", "email_permission", "created_at", "updated_at")
EMAIL_KEY = "email_key"
SKIPPED_COLUMNS = (MEMBER_ID, "email_hint", "category", "reason")
_VALUELESS_OPS = {ConditionOp.IS_NULL, ConditionOp.NOT_NULL}
_LIST_OPS = {ConditionOp.IN, ConditionOp.NOT_IN}


class SkipCategory(StrEnum):
    """Why a member of the segment was not sent (the ``category`` of the skipped report)."""

    OPTED_OUT = "opted_out"  # in the member database
    UNSUBSCRIBED_IN_CC = "unsubscribed_in_cc"
    INVALID = "invalid"  # missing or invalid email, over-long value... (validate_outgoing)
    DUPLICATE_EMAIL = "duplicate_email"  # another segment member has the same email
    REFUSED_BY_CC = "refused_by_cc"  # sent, but not on the list after the import


# Skips a person has to fix (the member row, or what CC holds), queued in the review table as
# ``send_list_<category>`` like the sync's rejected rows. Opt-outs and unsubscribes are consent
# working as meant, and a shared email is a household, not a fault: those are only reported.
REVIEWED_SKIPS = (SkipCategory.INVALID, SkipCategory.REFUSED_BY_CC)


class SendListError(NotRetryableError, ValueError):
    """The form's choices cannot be carried out (unknown segment, bad filter, list exists...)."""


# ---- the form's choices ------------------------------------------------------------------------


def filter_conditions(
    raw: Sequence[Mapping[str, Any]] | None, mapping: MemberMapping
) -> tuple[Condition, ...]:
    """The form's filter (``[{field, op, value}]`` on mapped fields) as mapping conditions.

    Declarative on purpose: a field name and an operator from a fixed list, never SQL. Every problem
    is a :class:`SendListError` naming the condition.
    """
    if not raw:
        return ()
    if not isinstance(raw, list | tuple):
        raise SendListError("the filter must be a list of {field, op, value} conditions")
    columns = {name: mapping.fields[name].column for name in filterable_fields(mapping)}
    conditions = []
    for number, item in enumerate(raw, 1):
        where = f"filter condition {number}"
        if not isinstance(item, Mapping):
            raise SendListError(f"{where}: expected an object with field, op and value")
        unknown = set(item) - {"field", "op", "value"}
        if unknown:
            raise SendListError(f"{where}: unknown key(s) {sorted(unknown)} (use field, op, value)")
        name = item.get("field")
        if name not in columns:
            raise SendListError(f"{where}: {name!r} is not a mapped field (choose from {sorted(columns)})")
        try:
            op = ConditionOp(item.get("op"))
        except ValueError:
            raise SendListError(
                f"{where}: unknown op {item.get('op')!r} (choose from {[o.value for o in ConditionOp]})"
            ) from None
        value = item.get("value")
        if op in _VALUELESS_OPS:
            value = None
        elif op in _LIST_OPS:
            if not isinstance(value, list | tuple) or not value or not all(_is_scalar(v) for v in value):
                raise SendListError(f"{where}: {op.value} needs a non-empty list of values")
            value = list(value)
        elif value is None or not _is_scalar(value):
            raise SendListError(f"{where}: {op.value} needs one value (text, number or true/false)")
        conditions.append(Condition(columns[name], op, value))
    return tuple(conditions)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def selection_mapping(
    mapping: MemberMapping, segment: str | None, conditions: Sequence[Condition]
) -> MemberMapping:
    """A copy of the mapping with the chosen segment and filter combined as :data:`FORM_SEGMENT`."""
    segment = segment or None
    if segment is None and not conditions:
        raise SendListError("choose a segment, a filter, or both: sending every member is not a default")
    if segment is not None and segment not in mapping.segments:
        raise SendListError(f"unknown segment {segment!r}; the mapping defines {sorted(mapping.segments)}")
    combined = (*mapping.segments.get(segment or "", ()), *conditions)
    return dataclasses.replace(mapping, segments={**mapping.segments, FORM_SEGMENT: combined})


# ---- reading both sides ------------------------------------------------------------------------


def find_list(hook: ConstantContactHook, ref: str) -> ContactList | None:
    """The list whose id or exact name is ``ref``, with its size (accounts hold at most 1,000 lists:
    1-2 calls)."""
    return find_list_in(hook.iter_lists(include_count=True), ref)


def find_list_in(lists: Iterable[ContactList], ref: str) -> ContactList | None:
    """Of ``lists``, the one whose id is ``ref``, else the first whose exact name is ``ref``."""
    ref = ref.strip()
    by_name = None
    for contact_list in lists:
        if contact_list.list_id == ref:
            return contact_list
        if contact_list.name == ref and by_name is None:
            by_name = contact_list
    return by_name


def list_members(hook: ConstantContactHook, list_id: str, *, expected: int = 0) -> pd.DataFrame:
    """The list's members (contact_id, email, names, opted_out, deleted, updated_at, created_at, email_key).

    ``expected``: about how many members it has. From :func:`settings.list_export_min_pages` pages
    on, one contact export reads it (its POST, polls and file: a constant few calls; deleted
    contacts are not in it); below, :data:`PAGE_SIZE` a call without subresources.
    """
    min_pages = settings.list_export_min_pages()
    if min_pages is not None and math.ceil(expected / PAGE_SIZE) >= min_pages:
        return contacts_frame(exported_contacts(hook.export_contacts(list_id=list_id, fields=EXPORT_FIELDS)))
    return contacts_frame(hook.iter_contacts(status="all", lists=[list_id], include=None, limit=PAGE_SIZE))


def exported_contacts(rows: Iterable[Mapping[str, str]]) -> Iterator[dict[str, Any]]:
    """An export's rows in the shape ``GET /contacts`` answers (an empty cell is no value)."""
    for row in rows:
        value = {k: (v or None) for k, v in row.items()}
        yield {
            "contact_id": value.get("contact_id"),
            "email_address": {
                "address": value.get("email_address"),
                "permission_to_send": value.get("email_permission"),
            },
            "first_name": value.get("first_name"),
            "last_name": value.get("last_name"),
            "created_at": value.get("created_at"),
            "updated_at": value.get("updated_at"),
        }


def contacts_frame(contacts: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Contacts as read from ``GET /contacts`` -> the frame :func:`list_members` returns."""
    contacts = list(contacts)
    emails = [c.get("email_address") or {} for c in contacts]
    frame = pd.DataFrame(
        {
            CONTACT_ID: pd.array([c.get("contact_id") for c in contacts], dtype="string"),
            "email": pd.array([e.get("address") for e in emails], dtype="string"),
            "first_name": pd.array([c.get("first_name") for c in contacts], dtype="string"),
            "last_name": pd.array([c.get("last_name") for c in contacts], dtype="string"),
            OPTED_OUT: pd.array(
                [e.get("permission_to_send") == PermissionToSend.UNSUBSCRIBED for e in emails], dtype="bool"
            ),
            DELETED: pd.array([bool(c.get("deleted_at")) for c in contacts], dtype="bool"),
            UPDATED_AT: pd.to_datetime([c.get("updated_at") for c in contacts], utc=True, format="ISO8601"),
            "created_at": pd.to_datetime([c.get("created_at") for c in contacts], utc=True, format="ISO8601"),
        }
    )
    frame[EMAIL_KEY] = normalise_email(frame["email"])
    return frame


def read_segment(member_hook: MemberDatabaseHook) -> pd.DataFrame:
    """Every in-scope member of :data:`FORM_SEGMENT` (the hook's mapping must come from
    :func:`selection_mapping`), as one canonical frame."""
    chunks = list(member_hook.extract_members(segment=FORM_SEGMENT))
    return pd.concat(chunks, ignore_index=True) if chunks else member_hook.empty_frame()


# ---- the plan ----------------------------------------------------------------------------------


@dataclass
class SendPlan:
    """Who goes to the list and who does not; computed without writing anything."""

    list_ref: str
    mode: SendMode
    list_id: str | None  # None: the list is to be created
    list_name: str
    # The members to send: member_id, email_key and the fields that flow to CC.
    send: pd.DataFrame
    # member_id, email_hint (masked), category, reason.
    skipped: pd.DataFrame
    # Every segment member's normalised email (replace keeps these on the list).
    segment_keys: pd.DataFrame
    # The list's members before the send (contact_id, email_key); empty for a new list.
    before: pd.DataFrame

    @property
    def to_remove(self) -> pd.DataFrame:
        """Replace mode: who the list holds now that the segment does not (as the plan sees it)."""
        if self.mode != SendMode.REPLACE or self.before.empty:
            return self.before.iloc[0:0]
        keep = set(self.segment_keys[EMAIL_KEY].dropna())
        return self.before.loc[~self.before[EMAIL_KEY].isin(keep).fillna(False).to_numpy(bool)]

    def counts(self) -> dict[str, int]:
        counts = {
            "segment_members": len(self.segment_keys),
            "to_send": len(self.send),
            "skipped": len(self.skipped),
            "on_list_before": len(self.before),
        }
        counts.update(skip_counts(self.skipped))
        if self.mode == SendMode.REPLACE:
            counts["to_remove"] = len(self.to_remove)
        return counts

    def as_xcom(self) -> dict[str, Any]:
        return {
            "list_ref": self.list_ref,
            "mode": self.mode.value,
            "list_id": self.list_id,
            "list_name": self.list_name,
            "send": self.send,
            "skipped": self.skipped,
            "segment_keys": self.segment_keys,
            "before": self.before[[CONTACT_ID, EMAIL_KEY]],
            "counts": self.counts(),
        }

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> SendPlan:
        from cc_sync.xcom_retention import require_stored

        require_stored(value, "The send plan")
        return cls(
            list_ref=value["list_ref"],
            mode=SendMode(value["mode"]),
            list_id=value["list_id"],
            list_name=value["list_name"],
            send=value["send"],
            skipped=value["skipped"],
            segment_keys=value["segment_keys"],
            before=value["before"],
        )


def skip_counts(skipped: pd.DataFrame) -> dict[str, int]:
    """``skipped_<category>`` -> count."""
    if skipped.empty:
        return {}
    return {f"skipped_{k}": int(v) for k, v in skipped["category"].value_counts().items()}


def _skipped(members: pd.DataFrame, category: SkipCategory, reason: str | pd.Series) -> pd.DataFrame:
    hints = [
        mask_email(e) if isinstance(e, str) else None for e in members.get("email", [None] * len(members))
    ]
    return pd.DataFrame(
        {
            MEMBER_ID: members[MEMBER_ID].astype("string").to_numpy(),
            "email_hint": pd.array(hints, dtype="string"),
            "category": category.value,
            "reason": reason.to_numpy() if isinstance(reason, pd.Series) else reason,
        }
    ).astype("string")


def _empty_skipped() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="string") for c in SKIPPED_COLUMNS})


def _concat_skipped(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else _empty_skipped()


def outgoing_fields(mapping: MemberMapping) -> list[str]:
    """The canonical fields a send writes to CC: every mapped field that may flow to CC."""
    return [name for name, fm in mapping.fields.items() if fm.policy.flows_to_cc(mapping.direction)]


def split_members(
    members: pd.DataFrame,
    mapping: MemberMapping,
    unsubscribed_keys: Iterable[str],
    opted_out_emails: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segment members -> (to send [member_id, email_key, fields], skipped report).

    Skipped, in this order: opted out in the member database; invalid (validate_outgoing's
    reasons, per field); sharing the email of a member who opted out, in the segment or not
    (``opted_out_emails``: member_id, email_key of every opted-out row of the member table, see
    ``MemberDatabaseHook.opted_out_emails``); a CC contact known to be unsubscribed; a second member
    with an email already taken by one before it (CC holds one contact per email; the lowest member
    id is sent).
    """
    reports = []
    opted_out = members[OPTED_OUT].fillna(False).astype(bool).to_numpy()
    reports.append(
        _skipped(members.loc[opted_out], SkipCategory.OPTED_OUT, "opted out in the member database")
    )
    candidates = members.loc[~opted_out, [MEMBER_ID, *[f for f in outgoing_fields(mapping) if f in members]]]

    valid, rejected = validate_outgoing(candidates, mapping)
    if len(rejected):
        reasons = (
            (rejected["field"].astype(str) + ": " + rejected["reason"].astype(str))
            .groupby(rejected[MEMBER_ID].astype(str))
            .agg("; ".join)
        )
        bad = candidates.loc[candidates[MEMBER_ID].astype(str).isin(reasons.index)]
        reports.append(
            _skipped(
                bad, SkipCategory.INVALID, bad[MEMBER_ID].astype(str).map(reasons).reset_index(drop=True)
            )
        )
    valid = valid.assign(**{EMAIL_KEY: normalise_email(valid["email"]).to_numpy()})

    # One email, one CC contact: a household member's opt-out holds for the address they share.
    opted_out_keys = set(normalise_email(members.loc[opted_out, "email"]).dropna())
    shared = valid[EMAIL_KEY].isin(opted_out_keys).fillna(False).to_numpy(bool)
    reports.append(
        _skipped(
            valid.loc[shared],
            SkipCategory.OPTED_OUT,
            "another member with the same email opted out in the member database",
        )
    )
    valid = valid.loc[~shared]
    # ... and so does the opt-out of a member outside the segment (or outside the sync's scope).
    if opted_out_emails is not None and len(opted_out_emails):
        outside = opted_out_emails.loc[
            ~opted_out_emails[MEMBER_ID].astype(str).isin(set(members[MEMBER_ID].astype(str)))
        ]
        holder = outside.dropna(subset=[EMAIL_KEY]).drop_duplicates(EMAIL_KEY).set_index(EMAIL_KEY)[MEMBER_ID]
        held = valid[EMAIL_KEY].map(holder)
        shared = held.notna().to_numpy(bool)
        reports.append(
            _skipped(
                valid.loc[shared],
                SkipCategory.OPTED_OUT,
                (
                    "member "
                    + held.loc[shared].astype(str)
                    + " (not in this segment) has the same email and opted out in the member database"
                ).reset_index(drop=True),
            )
        )
        valid = valid.loc[~shared]

    unsubscribed = valid[EMAIL_KEY].isin(set(unsubscribed_keys)).fillna(False).to_numpy(bool)
    reports.append(
        _skipped(
            valid.loc[unsubscribed],
            SkipCategory.UNSUBSCRIBED_IN_CC,
            "unsubscribed in Constant Contact (never re-subscribed)",
        )
    )
    valid = valid.loc[~unsubscribed]

    order = pd.to_numeric(valid[MEMBER_ID], errors="coerce")
    valid = valid.assign(_order=order.to_numpy()).sort_values(["_order", MEMBER_ID], kind="stable")
    duplicate = valid[EMAIL_KEY].duplicated().to_numpy()
    reports.append(
        _skipped(
            valid.loc[duplicate],
            SkipCategory.DUPLICATE_EMAIL,
            "another member of the segment has the same email (one Constant Contact contact per email)",
        )
    )
    send = valid.loc[~duplicate].drop(columns="_order").reset_index(drop=True)
    send[MEMBER_ID] = send[MEMBER_ID].astype("string")
    return send, _concat_skipped(reports)


def plan_send(
    resources: SyncResources,
    *,
    segment: str | None,
    filter: Sequence[Mapping[str, Any]] | None,
    list_ref: str,
    mode: SendMode | str,
) -> SendPlan:
    """Read the segment and what is known of CC, and decide who is sent and who is skipped (no writes)."""
    mode = SendMode(mode)
    list_ref = (list_ref or "").strip()
    if not list_ref:
        raise SendListError("name the list: an existing list's name or id, or a new name")
    mapping = selection_mapping(resources.mapping, segment, filter_conditions(filter, resources.mapping))
    hook = resources.cc
    existing = find_list(hook, list_ref)
    if mode == SendMode.CREATE_NEW and existing is not None:
        raise SendListError(
            f"a Constant Contact list named {existing.name!r} already exists (id {existing.list_id}): "
            "choose the update or replace mode to send to it, or another name for a new list"
        )
    before = (
        list_members(hook, existing.list_id, expected=existing.membership_count or 0)
        if existing
        else list_members_empty()
    )

    member_hook = MemberDatabaseHook(resources.member_db_conn_id, mapping)
    try:
        members = read_segment(member_hook)
        opted_out_emails = member_hook.opted_out_emails()
    finally:
        member_hook.dispose()
    segment_keys = pd.DataFrame({EMAIL_KEY: normalise_email(members["email"]).to_numpy()}).astype("string")

    keys = segment_keys[EMAIL_KEY].dropna().unique().tolist()
    directory = resources.bookkeeping.load_directory(keys)
    unsubscribed = set(
        normalise_email(directory.loc[directory[OPTED_OUT] & ~directory[DELETED], "email"]).dropna()
    )
    unsubscribed |= set(before.loc[before[OPTED_OUT], EMAIL_KEY].dropna())
    send, skipped = split_members(members, resources.mapping, unsubscribed, opted_out_emails)

    plan = SendPlan(
        list_ref=list_ref,
        mode=mode,
        list_id=existing.list_id if existing else None,
        list_name=existing.name if existing else list_ref,
        send=send,
        skipped=skipped,
        segment_keys=segment_keys,
        before=before,
    )
    log.info(
        "Send to list %r (%s, %s): %s",
        plan.list_name,
        "new" if plan.list_id is None else plan.list_id,
        mode.value,
        plan.counts(),
    )
    log_skipped(plan.skipped)
    return plan


def list_members_empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            CONTACT_ID: pd.Series([], dtype="string"),
            "email": pd.Series([], dtype="string"),
            OPTED_OUT: pd.Series([], dtype="bool"),
            EMAIL_KEY: pd.Series([], dtype="string"),
        }
    )


def queue_for_review(bookkeeping: Bookkeeping, skipped: pd.DataFrame, *, run_id: str) -> int:
    """Queue the skips a person has to fix (:data:`REVIEWED_SKIPS`) in the review table, one open
    item per member and kind (a rerun adds none); returns how many new items were queued."""
    chosen = skipped.loc[skipped["category"].isin([c.value for c in REVIEWED_SKIPS])]
    if chosen.empty:
        return 0
    items = pd.DataFrame(
        {
            "kind": ("send_list_" + chosen["category"]).to_numpy(),
            MEMBER_ID: chosen[MEMBER_ID].to_numpy(),
            CONTACT_ID: None,
            "email_hint": chosen["email_hint"].to_numpy(),
            "detail": chosen["reason"].to_numpy(),
        }
    )
    return bookkeeping.add_review_items(items, run_id=run_id)


def log_skipped(skipped: pd.DataFrame, examples: int = 20) -> None:
    """Counts by reason, then a few member ids with their reason (emails masked)."""
    if skipped.empty:
        log.info("No member of the segment was skipped")
        return
    log.warning("%d member(s) not sent: %s", len(skipped), skip_counts(skipped))
    for row in skipped.head(examples).itertuples(index=False):
        hint = row.email_hint if isinstance(row.email_hint, str) else "no email"
        log.warning("  member %s (%s): %s", row.member_id, hint, row.reason)
    if len(skipped) > examples:
        log.warning("  ... and %d more (see the task's return value)", len(skipped) - examples)


# ---- the writes --------------------------------------------------------------------------------


@dataclass
class SendResult:
    counts: dict[str, int]
    skipped: pd.DataFrame

    def as_xcom(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "skipped": self.skipped}


def execute_send(resources: SyncResources, plan: SendPlan, *, run_id: str) -> SendResult:
    """Create the list if needed, import the segment into it, link, and (replace) take off the rest.

    Rerunnable: the list a create_new run made is remembered under the run id, so a retry sends to
    it instead of failing on the name it took; the import and the links converge on a rerun.
    """
    hook = resources.cc
    bookkeeping = resources.bookkeeping
    started = utcnow()
    counts: dict[str, int] = {}

    contact_list = _target_list(resources, plan, run_id)
    counts["list_created"] = int(plan.list_id is None)

    fields = [c for c in plan.send.columns if c not in (MEMBER_ID, EMAIL_KEY)]
    ensure_custom_fields(hook, [c for c in fields if is_custom_field(c)])
    # Before the import (which touches every contact it sends): the contact ids already known.
    known = known_contact_ids(hook, bookkeeping, plan)
    counts["ids_known_before_import"] = (
        0 if known is None else int(plan.send[EMAIL_KEY].isin(known.index).sum())
    )
    # What CC held before the import overwrote it (the directory, the sync's mirror): for the undo.
    names_before = bookkeeping.load_directory(plan.send[EMAIL_KEY].dropna())
    imported = hook.import_contacts(frame_to_import_rows(plan.send[fields]), [contact_list.list_id])
    counts["import_requests"] = len(imported.activities)
    counts["import_errors"] = len(imported.errors)
    counts["cannot_add_to_list"] = imported.cannot_add_to_list_count
    for error in imported.errors[:20]:
        log.warning("Import error%s: %s", "" if error.row is None else f" (row {error.row})", error.reason)

    before_ids = set(plan.before[CONTACT_ID].dropna())
    resolved = None
    clean = (
        imported.ok
        and not imported.errors
        and imported.error_count == 0
        and imported.cannot_add_to_list_count == 0
    )
    if known is not None and clean:
        calls = hook.api_calls
        resolved = resolve_sent_ids(hook, bookkeeping, plan, known, started)
        counts["lookups_after_import"] = hook.api_calls - calls
    if resolved is not None:
        # Every sent member is on the list (a clean import) and its contact id is known: no list read.
        counts["list_read_after_import"] = 0
        on_list, refused, created = resolved, _empty_skipped(), resolved["created"]
    else:
        counts["list_read_after_import"] = 1
        calls = hook.api_calls
        after = list_members(hook, contact_list.list_id, expected=len(plan.before) + len(plan.send))
        counts["list_read_calls"] = hook.api_calls - calls
        bookkeeping.upsert_directory(after)
        sent = plan.send[[MEMBER_ID, EMAIL_KEY]].merge(
            after.loc[~after[DELETED], [EMAIL_KEY, CONTACT_ID, "created_at"]].drop_duplicates(EMAIL_KEY),
            on=EMAIL_KEY,
            how="left",
        )
        on_list = sent.loc[sent[CONTACT_ID].notna()]
        missing = sent.loc[sent[CONTACT_ID].isna()]
        refused = explain_refusals(hook, bookkeeping, missing, plan.send)
        created = on_list["created_at"].notna() & (on_list["created_at"] >= started)

    counts["sent"] = len(plan.send)
    counts["added"] = int((~on_list[CONTACT_ID].isin(before_ids)).sum())
    counts["created"] = int(created.sum())
    counts["updated"] = int(len(on_list) - created.sum())
    # Only rows the import took are agreed on: a refused row (an already-listed contact whose
    # update CC refused, or any row of a request whose refusals CC did not name) keeps its old base.
    not_taken = {e.row for e in imported.errors if e.row is not None} | set(imported.unconfirmed_rows())
    taken = ~on_list[MEMBER_ID].astype(str).isin(
        set(plan.send[MEMBER_ID].iloc[sorted(not_taken)].astype(str))
    )
    counts.update(
        link_members(
            bookkeeping,
            on_list.loc[taken.to_numpy(bool), [MEMBER_ID, CONTACT_ID]],
            sent=agreed_values(plan.send[[MEMBER_ID, *fields]], resources.mapping),
            run_id=run_id,
        )
    )

    counts["changes_logged"] = record_send_changes(
        bookkeeping,
        run_id=run_id,
        list_id=contact_list.list_id,
        on_list=on_list.loc[taken.to_numpy(bool)],
        created=set(on_list.loc[created.to_numpy(bool), CONTACT_ID].astype(str)),
        before_ids={str(c) for c in before_ids},
        sent=plan.send,
        names_before=names_before,
    )

    if plan.mode == SendMode.REPLACE:
        keep = set(plan.segment_keys[EMAIL_KEY].dropna())
        if resolved is not None:
            # The import only adds to the list: who leaves is who was on it before, minus the segment.
            leaving = plan.to_remove[CONTACT_ID].dropna().drop_duplicates()
        else:
            leaving = after.loc[~after[EMAIL_KEY].isin(keep).fillna(False).to_numpy(bool), CONTACT_ID]
        if len(leaving):
            hook.remove_list_memberships(list(leaving), [contact_list.list_id])
        counts["removed"] = len(leaving)

    skipped = _concat_skipped([plan.skipped, refused])
    counts["skipped"] = len(skipped)
    counts.update(skip_counts(skipped))
    counts["review_items"] = queue_for_review(bookkeeping, skipped, run_id=run_id)
    log.info("Sent to list %r (%s): %s", contact_list.name, contact_list.list_id, counts)
    if len(refused):
        log_skipped(refused)
    return SendResult(counts, skipped)


def list_read_pages(plan: SendPlan) -> int:
    """What reading the list after the import would cost: its size estimated as the members it had
    before plus those sent (an overestimate when some were on it already), :data:`PAGE_SIZE` a call."""
    return max(1, math.ceil((len(plan.before) + len(plan.send)) / PAGE_SIZE))


def known_contact_ids(
    hook: ConstantContactHook, bookkeeping: Bookkeeping, plan: SendPlan
) -> pd.Series | None:
    """email_key -> contact_id of the sent members whose CC contact is known before the import.

    Known: on the list when the plan read it (``plan.before``), else one live (not deleted) entry
    of the directory. The directory is as old as the run that recorded it, so first what changed
    in CC since its oldest entry relied on (less the sync's read overlap) is read
    (``updated_after``, :data:`PAGE_SIZE` a call) and recorded: a contact whose email moved or
    that was deleted since then is no longer taken for its old email. That read stops at half
    what a list read would cost (then None: the list is read after the import, as without a
    directory). An email two live entries claim is not relied on.
    """
    keys = set(plan.send[EMAIL_KEY].dropna())
    before = plan.before.dropna(subset=[EMAIL_KEY, CONTACT_ID]).drop_duplicates(EMAIL_KEY, keep=False)
    known = before.loc[before[EMAIL_KEY].isin(keys)].set_index(EMAIL_KEY)[CONTACT_ID].astype("string")
    rest = keys - set(known.index)
    if not rest:
        return known
    entries = bookkeeping.load_directory_entries(rest)
    entries = entries.loc[~entries[DELETED]]
    if len(rest) - entries[EMAIL_KEY].nunique() >= list_read_pages(plan):
        return None  # too many unknown to look up: the list is read after the import anyway
    if entries.empty:
        return known
    since = (entries["seen_at"].min() - settings.read_overlap()).to_pydatetime()
    limit = max(1, list_read_pages(plan) // 2) * PAGE_SIZE
    changed = []
    for contact in hook.iter_contacts(status="all", updated_after=since, include=None, limit=PAGE_SIZE):
        if len(changed) >= limit:
            log.info(
                "Over %d contacts changed in Constant Contact since %s: the list is read after the import",
                limit,
                since.isoformat(timespec="seconds"),
            )
            return None
        changed.append(contact)
    if changed:
        bookkeeping.upsert_directory(contacts_frame(changed))
        entries = bookkeeping.load_directory_entries(rest)
        entries = entries.loc[~entries[DELETED]]
    entries = entries.drop_duplicates(EMAIL_KEY, keep=False)
    return pd.concat([known, entries.set_index(EMAIL_KEY)[CONTACT_ID].astype("string")])


def resolve_sent_ids(
    hook: ConstantContactHook,
    bookkeeping: Bookkeeping,
    plan: SendPlan,
    known: pd.Series,
    started: Any,
) -> pd.DataFrame | None:
    """After a clean import: each sent member's contact (member_id, contact_id, created) without
    reading the list, or None when that read is the cheaper (or the only sure) way.

    The ids come from ``known``; the members whose id is not known are looked up by email, one call
    each, when they are fewer than the pages of a list read. A lookup that does not find a live
    contact with that email (CC indexing lag, a change meanwhile) gives up: None.
    """
    sent = plan.send[[MEMBER_ID, EMAIL_KEY, "email"]].reset_index(drop=True)
    ids = sent[EMAIL_KEY].map(known).astype("string")
    unknown = sent.loc[ids.isna().to_numpy(bool)]
    if len(unknown) and len(unknown) >= list_read_pages(plan):
        return None
    found = []
    for row in unknown.itertuples(index=False):
        contact = next(iter(hook.iter_contacts(status="all", email=row.email, include=None, limit=1)), None)
        address = ((contact or {}).get("email_address") or {}).get("address")
        if (
            contact is None
            or contact.get("deleted_at")
            or normalise_email(pd.Series([address], dtype="string")).iloc[0] != row.email_key
        ):
            log.info("A member's contact was not found by email after the import: the list is read instead")
            return None
        found.append(contact)
    created = pd.Series(False, index=sent.index)
    if found:
        looked_up = contacts_frame(found)
        bookkeeping.upsert_directory(looked_up)
        positions = unknown.index
        ids.loc[positions] = looked_up[CONTACT_ID].to_numpy()
        created.loc[positions] = (
            looked_up["created_at"].notna() & (looked_up["created_at"] >= started)
        ).to_numpy(bool)
    return pd.DataFrame({MEMBER_ID: sent[MEMBER_ID], CONTACT_ID: ids, "created": created.astype(bool)})


def _target_list(resources: SyncResources, plan: SendPlan, run_id: str) -> ContactList:
    hook, bookkeeping = resources.cc, resources.bookkeeping
    if plan.list_id is not None:
        return ContactList(list_id=plan.list_id, name=plan.list_name)
    made = bookkeeping.step_detail(run_id, "send_list:create_list")
    if made:  # a retry of this run: the list is the one it created
        return ContactList(list_id=made["list_id"], name=made["name"])
    try:
        if plan.mode == SendMode.CREATE_NEW:
            created = hook.create_list(plan.list_name, description="Sent from the member database")
        else:
            created = hook.get_or_create_list(plan.list_name, description="Sent from the member database")
    except ConstantContactApiError as exc:
        if exc.status == 409:
            raise SendListError(
                f"a Constant Contact list named {plan.list_name!r} was created since the plan: "
                "choose update or replace, or another name"
            ) from None
        raise
    bookkeeping.mark_step_done(
        run_id, "send_list:create_list", {"list_id": created.list_id, "name": created.name}
    )
    log.info("Created the Constant Contact list %r (%s)", created.name, created.list_id)
    return created


def explain_refusals(
    hook: ConstantContactHook, bookkeeping: Bookkeeping, missing: pd.DataFrame, send: pd.DataFrame
) -> pd.DataFrame:
    """Members sent but not on the list after the import: why (looked up by email, up to a limit)."""
    if missing.empty:
        return _empty_skipped()
    emails = send.set_index(MEMBER_ID)["email"]
    reports = []
    looked_up = []
    for position, member_id in enumerate(missing[MEMBER_ID]):
        email = emails.get(member_id)
        member = pd.DataFrame({MEMBER_ID: [member_id], "email": [email]})
        if position >= MAX_REFUSAL_LOOKUPS:
            reports.append(_skipped(member, SkipCategory.REFUSED_BY_CC, "not on the list after the import"))
            continue
        contact = next(iter(hook.iter_contacts(status="all", email=email, include=None, limit=1)), None)
        if contact is None:
            reason, category = "refused by the import (see its errors)", SkipCategory.REFUSED_BY_CC
        elif (contact.get("email_address") or {}).get("permission_to_send") == PermissionToSend.UNSUBSCRIBED:
            reason = "unsubscribed in Constant Contact (never re-subscribed)"
            category = SkipCategory.UNSUBSCRIBED_IN_CC
            looked_up.append(contact)
        else:
            reason, category = "not put on the list by Constant Contact", SkipCategory.REFUSED_BY_CC
            looked_up.append(contact)
        reports.append(_skipped(member, category, reason))
    if looked_up:
        frame = pd.DataFrame(
            {
                CONTACT_ID: [c.get("contact_id") for c in looked_up],
                "email": [(c.get("email_address") or {}).get("address") for c in looked_up],
                "first_name": [c.get("first_name") for c in looked_up],
                "last_name": [c.get("last_name") for c in looked_up],
                OPTED_OUT: [
                    (c.get("email_address") or {}).get("permission_to_send") == PermissionToSend.UNSUBSCRIBED
                    for c in looked_up
                ],
                DELETED: [bool(c.get("deleted_at")) for c in looked_up],
            }
        )
        bookkeeping.upsert_directory(frame)
    return _concat_skipped(reports)


def agreed_values(sent: pd.DataFrame, mapping: MemberMapping) -> pd.DataFrame:
    """What both sides hold after an import of ``sent``: the member's values as the sync compares
    them (the name placeholder, which only CC holds, read as no name). A field the import left
    out (blank) is NA: whatever CC holds there is CC's own, and the next sync treats it as such."""
    masked = mask_name_placeholder(sent, mapping)
    blanks = {
        name: masked[name].mask(masked[name].astype("string").str.strip().eq("").fillna(False))
        for name in masked.columns
        if name != MEMBER_ID and (pd.api.types.is_string_dtype(masked[name]) or masked[name].dtype == object)
    }
    return masked.assign(**blanks, **{OPTED_OUT: False})


def refresh_base(bookkeeping: Bookkeeping, sent: pd.DataFrame, *, run_id: str) -> int:
    """The base of people already linked, with the values just sent: both sides hold them now.

    Without it, a later edit on the member side would meet CC's copy of the sent value as a change
    "on both sides", and a CC record that changed later (any other field) would win it back.
    """
    if sent.empty:
        return 0
    old = bookkeeping.load_base(sent[MEMBER_ID].tolist())
    if old.empty:
        return 0
    fresh = sent.set_index(MEMBER_ID).drop(columns=[OPTED_OUT], errors="ignore").reindex(old.index)
    merged = old.astype(object).copy()
    for name in fresh.columns:
        values = fresh[name].astype(object)
        merged[name] = values.where(values.notna(), merged.get(name))
    return bookkeeping.save_base(merged, run_id=run_id)


def link_members(
    bookkeeping: Bookkeeping, pairs: pd.DataFrame, *, sent: pd.DataFrame, run_id: str
) -> dict[str, int]:
    """Link each sent member to the contact holding its email, so the scheduled sync takes them.

    A new link is stored with its base, the values just sent (``sent``: member_id, fields,
    opted_out): both sides agree on them now, so the next sync merges later edits field by field
    instead of seeing every difference as a conflict. An existing link is kept, never moved: a
    member linked to another contact (the sync follows email changes through its link) or a
    contact linked to another member (a shared email) is counted in ``link_kept`` and left to the
    sync's review rules.
    """
    links = bookkeeping.get_links()
    member_link = dict(zip(links[MEMBER_ID].astype(str), links[CONTACT_ID].astype(str), strict=True))
    contact_link = dict(zip(links[CONTACT_ID].astype(str), links[MEMBER_ID].astype(str), strict=True))
    members = pairs[MEMBER_ID].astype(str)
    contacts = pairs[CONTACT_ID].astype(str)
    linked_to = members.map(member_link)
    held_by = contacts.map(contact_link)
    already = (linked_to == contacts).fillna(False).to_numpy(bool)
    elsewhere = ~already & (linked_to.notna() | held_by.notna()).to_numpy(bool)
    new = pairs.loc[~already & ~elsewhere, [MEMBER_ID, CONTACT_ID]].astype(str)
    sent = sent.assign(**{MEMBER_ID: sent[MEMBER_ID].astype(str)})
    base = new.merge(sent, on=MEMBER_ID, how="left")
    bookkeeping.link_with_base(new.assign(rule=LINK_RULE), base, run_id=run_id)
    refresh_base(bookkeeping, sent[sent[MEMBER_ID].isin(set(members[already]))], run_id=run_id)
    return {"linked": len(new), "already_linked": int(already.sum()), "link_kept": int(elsewhere.sum())}


# ---- the change log (what an undo of the send reverses) -----------------------------------------

SEND_REASON = "send_list"
LIST_MEMBERSHIP = "list_membership"
NAME_FIELDS = ("first_name", "last_name")


def record_send_changes(
    bookkeeping: Bookkeeping,
    *,
    run_id: str,
    list_id: str,
    on_list: pd.DataFrame,
    created: set[str],
    before_ids: set[str],
    sent: pd.DataFrame,
    names_before: pd.DataFrame,
) -> int:
    """Log what the send changed in CC, in the sync's change log: each contact it added to the list
    (``list_membership``: none -> the list id) and each name it overwrote on a contact that was
    there before (old: the directory's copy, as the sync last saw it; a contact the directory does
    not know is not logged, its old name being unknown). Only rows the import took (``on_list``)."""
    if on_list.empty:
        return 0
    pairs = on_list[[MEMBER_ID, CONTACT_ID]].astype(str)
    added = pairs[~pairs[CONTACT_ID].isin(before_ids)]
    rows = [
        pd.DataFrame(
            {
                "direction": "to_cc",
                MEMBER_ID: added[MEMBER_ID],
                CONTACT_ID: added[CONTACT_ID],
                "field": LIST_MEMBERSHIP,
                "old_value": None,
                "new_value": list_id,
                "reason": SEND_REASON,
            }
        )
    ]
    names = [n for n in NAME_FIELDS if n in sent.columns]
    if names and len(names_before):
        values = sent[[MEMBER_ID, *names]].assign(**{MEMBER_ID: sent[MEMBER_ID].astype(str)})
        old = names_before.drop_duplicates(CONTACT_ID).set_index(CONTACT_ID)
        known = pairs[~pairs[CONTACT_ID].isin(created) & pairs[CONTACT_ID].isin(set(old.index.astype(str)))]
        merged = known.merge(values, on=MEMBER_ID, how="left")
        for name in names:
            was = merged[CONTACT_ID].map(old[name].astype("string"))
            now = merged[name].astype("string")
            differs = (was.str.strip() != now.str.strip()).fillna(was.notna() | now.notna()) & now.notna()
            differs = differs.to_numpy(bool)
            rows.append(
                pd.DataFrame(
                    {
                        "direction": "to_cc",
                        MEMBER_ID: merged.loc[differs, MEMBER_ID],
                        CONTACT_ID: merged.loc[differs, CONTACT_ID],
                        "field": name,
                        "old_value": was[differs],
                        "new_value": now[differs],
                        "reason": SEND_REASON,
                    }
                )
            )
    changes = pd.concat([r for r in rows if len(r)], ignore_index=True) if any(len(r) for r in rows) else None
    if changes is None:
        return 0
    return bookkeeping.append_changes(changes.assign(run_id=run_id))


# ---- the DAG's steps (run under the job lifecycle: cc_sync.job) ----------------------------------


def start_and_plan(
    resources: SyncResources,
    *,
    run_id: str,
    dag_id: str,
    choices: Mapping[str, Any],
) -> dict[str, Any]:
    """Open the run record (with the account line), then :func:`plan_send` of the trigger form's
    ``choices`` (segment, filter, list, mode); the plan as XCom."""
    from cc_sync import job

    job.start(resources, run_id=run_id, dag_id=dag_id, kind=RUN_KIND)
    return plan_send(
        resources,
        segment=choices["segment"],
        filter=choices["filter"],
        list_ref=choices["list"],
        mode=choices["mode"],
    ).as_xcom()


def execute_planned(resources: SyncResources, planned: Mapping[str, Any], *, run_id: str) -> dict[str, Any]:
    """:func:`execute_send` of the plan task's XCom; the result as XCom."""
    return execute_send(resources, SendPlan.from_xcom(planned), run_id=run_id).as_xcom()
