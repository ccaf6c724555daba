"""Apply what a person decided in the sync console, at the start of the next sync run's compare.

A decision only prepares the run; the engine still does every write, with its checks and its change
log, so a decision is never a side door around the sync's rules:

- *link*: the pair is linked with a base of the values both sides agree on
  (:meth:`Bookkeeping.link_with_base`) and both are put into this run, which merges the fields that
  differ field by field (both changed from an unknown base: the later change wins).
- *take member's / CC's value* for a field of a linked pair: the base of that field is set to the
  other side's value, so this run sees only the chosen side changed and writes its value across.
- *fixed, retry*: the member (and contact) are put into this run, which reads them again.
- *keep apart*: recorded as applied; the run's recording never queues the pair again.
- *dismiss*: the item is closed.

Every applied decision is a change-log row (direction ``decision``) of the run that applied it, and
closes its review item. A decision that cannot be applied (the pair is linked to someone else, a
member has gone) is marked failed with the reason, and its item stays open for another decision.
A retried compare finds the decisions it already applied and puts the same people into the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cc_sync.constant_contact.convert import contacts_to_frame
from cc_sync.engine.normalise import clean_frame_text
from cc_sync.fields import CONTACT_ID, MEMBER_ID, OPTED_OUT
from cc_sync.member_db.bookkeeping import (
    ChangeDirection,
    Decision,
    DecisionStatus,
    ReviewStatus,
)
from cc_sync.member_db.validate import mask_name_placeholder
from cc_sync.operators.constant_contact import latest_per_contact
from cc_sync.sync.resources import SyncResources

log = logging.getLogger(__name__)

DECISION_RULE = "review_decision"  # the link rule of a pair a person linked
REASON_LENGTH = 255


@dataclass
class AppliedDecisions:
    """The people this run must read because of decisions, and what was applied."""

    member_ids: set[str] = field(default_factory=set)
    contact_ids: set[str] = field(default_factory=set)
    applied: int = 0
    failed: int = 0


class _Refused(Exception):
    """A decision that cannot be applied; the message says why (shown in the console)."""


def apply_decisions(resources: SyncResources, run_id: str) -> AppliedDecisions:
    """Apply every pending decision; return the people they bring into this run."""
    bookkeeping = resources.bookkeeping
    result = AppliedDecisions()
    # A retried compare: the decisions it applied before still bring their people in.
    for done in bookkeeping.decisions_for_run(run_id):
        if done["status"] == DecisionStatus.APPLIED.value and done["decision"] != Decision.KEEP_APART:
            _bring_in(result, done)
    pending = bookkeeping.pending_decisions()
    if not pending:
        return result
    for decision in pending:
        try:
            outcome = _apply_one(resources, decision, run_id)
        except _Refused as refused:
            result.failed += 1
            bookkeeping.finish_decision(
                decision["id"], DecisionStatus.FAILED, run_id=run_id, outcome=str(refused)
            )
            log.warning("Decision %s (%s) not applied: %s", decision["id"], decision["decision"], refused)
            continue
        result.applied += 1
        if decision["decision"] != Decision.KEEP_APART:
            _bring_in(result, decision)
        _log_decision(resources, decision, run_id)
        if decision["review_id"] is not None:
            status = (
                ReviewStatus.DISMISSED if decision["decision"] == Decision.DISMISS else ReviewStatus.RESOLVED
            )
            bookkeeping.close_reviews([decision["review_id"]], status)
        bookkeeping.finish_decision(decision["id"], DecisionStatus.APPLIED, run_id=run_id, outcome=outcome)
        log.info("Decision %s applied: %s (%s)", decision["id"], decision["decision"], outcome)
    return result


def _bring_in(result: AppliedDecisions, decision: dict[str, Any]) -> None:
    if decision["member_id"]:
        result.member_ids.add(str(decision["member_id"]))
    if decision["contact_id"]:
        result.contact_ids.add(str(decision["contact_id"]))


def _apply_one(resources: SyncResources, decision: dict[str, Any], run_id: str) -> str:
    kind = Decision(decision["decision"])
    if kind in (Decision.DISMISS, Decision.KEEP_APART, Decision.RETRY):
        return {
            Decision.DISMISS: "closed",
            Decision.KEEP_APART: "the pair is never suggested again",
            Decision.RETRY: "read again by this run",
        }[kind]
    member_id, contact_id = decision["member_id"], decision["contact_id"]
    if not member_id or not contact_id:
        raise _Refused("the item names no member and contact to decide between")
    if kind == Decision.LINK:
        return _link(resources, str(member_id), str(contact_id), run_id)
    return _take_side(resources, decision, str(member_id), str(contact_id), run_id)


def _both_sides(resources: SyncResources, member_id: str, contact_id: str) -> tuple[pd.Series, pd.Series]:
    """The member row and the CC contact as the engine compares them (one API call for the contact,
    one for the custom fields' names)."""
    frames = [f for f in resources.members.extract_members(member_ids=[member_id]) if len(f)]
    if not frames:
        raise _Refused(f"member {member_id} is not in the mapping's scope any more")
    member = clean_frame_text(pd.concat(frames, ignore_index=True)).iloc[0]
    cc = resources.cc
    contact_frame = contacts_to_frame([cc.get_contact(contact_id)], cc.custom_field_names())
    contact_frame = mask_name_placeholder(clean_frame_text(contact_frame), resources.mapping)
    if bool(contact_frame.iloc[0].get("deleted", False)):
        raise _Refused(f"contact {contact_id} is deleted in Constant Contact")
    return member, contact_frame.iloc[0]


def _same(a: Any, b: Any) -> bool:
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    return str(a) == str(b)


def _link(resources: SyncResources, member_id: str, contact_id: str, run_id: str) -> str:
    bookkeeping = resources.bookkeeping
    held = bookkeeping.link_of(member_id=member_id)
    if held is not None and held[CONTACT_ID] == contact_id:
        return "already linked"
    if held is not None:
        raise _Refused(f"member {member_id} is linked to another contact")
    if bookkeeping.link_of(contact_id=contact_id) is not None:
        raise _Refused(f"contact {contact_id} is linked to another member")
    member, contact = _both_sides(resources, member_id, contact_id)
    fields = list(resources.mapping.policies())
    # The base is what both sides agree on now; a field they disagree on has no base, so the
    # run merges it (the later change wins) instead of treating either side as the truth.
    agreed = {
        name: (member.get(name) if _same(member.get(name), contact.get(name)) else pd.NA) for name in fields
    }
    both_opted_out = bool(member.get(OPTED_OUT, False)) and bool(contact.get(OPTED_OUT, False))
    base = pd.DataFrame([{MEMBER_ID: member_id, CONTACT_ID: contact_id, **agreed, OPTED_OUT: both_opted_out}])
    links = pd.DataFrame([{MEMBER_ID: member_id, CONTACT_ID: contact_id, "rule": DECISION_RULE}])
    bookkeeping.link_with_base(links, base, run_id=run_id)
    bookkeeping.append_changes(
        pd.DataFrame(
            [
                {
                    "run_id": run_id,
                    "direction": ChangeDirection.LINK.value,
                    MEMBER_ID: member_id,
                    CONTACT_ID: contact_id,
                    "field": "link",
                    "old_value": None,
                    "new_value": contact_id,
                    "reason": DECISION_RULE,
                }
            ]
        )
    )
    differ = [name for name in fields if not _same(member.get(name), contact.get(name))]
    return f"linked; {len(differ)} field(s) differ and are merged by this run"


def _take_side(
    resources: SyncResources, decision: dict[str, Any], member_id: str, contact_id: str, run_id: str
) -> str:
    bookkeeping = resources.bookkeeping
    name = decision["field"]
    if name not in resources.mapping.policies():
        raise _Refused(f"{name!r} is not a field of the mapping")
    held = bookkeeping.link_of(member_id=member_id)
    if held is None or held[CONTACT_ID] != contact_id:
        raise _Refused("the member and the contact are not linked: link them first")
    member, contact = _both_sides(resources, member_id, contact_id)
    base = bookkeeping.load_base([member_id])
    if base.empty:
        raise _Refused("the link has no base")
    # The losing side's value becomes the base: this run sees only the chosen side changed, and the
    # engine writes its value across (validated, change-logged) like any one-sided edit.
    loser = contact if decision["decision"] == Decision.TAKE_MEMBER else member
    base.loc[member_id, name] = loser.get(name)
    bookkeeping.save_base(base, run_id=run_id)
    side = "member database" if decision["decision"] == Decision.TAKE_MEMBER else "Constant Contact"
    return f"{name}: {side}'s value is written by this run"


def _log_decision(resources: SyncResources, decision: dict[str, Any], run_id: str) -> None:
    why = f" ({decision['why']})" if decision.get("why") else ""
    reason = f"{decision['decision']} by {decision['decided_by']}{why}"[:REASON_LENGTH]
    resources.bookkeeping.append_changes(
        pd.DataFrame(
            [
                {
                    "run_id": run_id,
                    "direction": ChangeDirection.DECISION.value,
                    MEMBER_ID: decision["member_id"],
                    CONTACT_ID: decision["contact_id"],
                    "field": decision["field"] or "review",
                    "old_value": f"review {decision['review_id']}" if decision["review_id"] else None,
                    "new_value": decision["decision"],
                    "reason": reason,
                }
            ]
        )
    )


def include_people(
    resources: SyncResources, members: pd.DataFrame, contacts: pd.DataFrame, applied: AppliedDecisions
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add to this run's extracts the people decisions brought in."""
    have_members = set(members[MEMBER_ID].astype(str)) if len(members) else set()
    wanted = sorted(applied.member_ids - have_members)
    if wanted:
        extra = [f for f in resources.members.extract_members(member_ids=wanted) if len(f)]
        if extra:
            members = pd.concat([members, *extra], ignore_index=True)
    have_contacts = set(contacts[CONTACT_ID].astype(str)) if len(contacts) else set()
    wanted_contacts = sorted(applied.contact_ids - have_contacts)
    if wanted_contacts:
        cc = resources.cc
        fetched = contacts_to_frame((cc.get_contact(cid) for cid in wanted_contacts), cc.custom_field_names())
        contacts = latest_per_contact(pd.concat([contacts, fetched], ignore_index=True))
    return members, contacts
