"""What a list rule changes: the segment's linked, subscribed members against the list's members.

Pure pandas, no I/O: :mod:`cc_sync.list_rules.steps` reads the inputs and writes the plan.

- **Added**: a member of the segment, linked to a contact, opted out on neither side (the member
  row, the consent ledger for the member or the contact, the CC directory), whose contact is not
  on the list. Consent first: an opted-out person is never added, whatever the segment says.
- **Removed**: a contact on the list that is linked to no member of the segment (left it, never
  was in it, or is no member at all). Removed from that list only: nobody is unsubscribed.
- **Kept as it is**: a segment member opted out on either side who is on the list already (CC
  takes an unsubscribed contact off its lists itself; the sync carries an opt-out across): the
  rule neither adds nor removes them, so it never fights the consent rules.
- Segment members without a link are counted (``not_linked``): the sync links people, not a rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd

from cc_sync.fields import CONTACT_ID, MEMBER_ID, OPTED_OUT

LIST_MEMBERSHIP = "list_membership"  # the change log's field for a list membership (as the send-list's)
REASON_PREFIX = "list_rule:"


class RuleChange(StrEnum):
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True)
class RulePlan:
    """One rule's changes: ``changes`` has member_id (None for a contact linked to no member),
    contact_id and change (add / remove)."""

    segment: str
    list_id: str
    list_name: str
    changes: pd.DataFrame
    list_size: int  # contacts on the list before the changes
    counts: dict[str, int]

    @property
    def adds(self) -> pd.DataFrame:
        return self.changes.loc[self.changes["change"] == RuleChange.ADD.value]

    @property
    def removes(self) -> pd.DataFrame:
        return self.changes.loc[self.changes["change"] == RuleChange.REMOVE.value]

    @property
    def reason(self) -> str:
        return f"{REASON_PREFIX}{self.segment}"

    def change_log_rows(self) -> pd.DataFrame:
        """The plan in the change log's shape: an add is none -> the list id, a remove the list id
        -> none (the undo takes an added contact off again, and never puts a removed one back)."""
        adding = (self.changes["change"] == RuleChange.ADD.value).to_numpy(bool)
        return pd.DataFrame(
            {
                "direction": "to_cc",
                MEMBER_ID: [None if pd.isna(m) else str(m) for m in self.changes[MEMBER_ID]],
                CONTACT_ID: self.changes[CONTACT_ID].astype(str).to_numpy(),
                "field": LIST_MEMBERSHIP,
                "old_value": [None if a else self.list_id for a in adding],
                "new_value": [self.list_id if a else None for a in adding],
                "reason": self.reason,
            }
        )

    def as_xcom(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "list_id": self.list_id,
            "list_name": self.list_name,
            "list_size": self.list_size,
            "counts": self.counts,
        }


def _ids(values: Iterable[Any]) -> set[str]:
    return {str(v) for v in values if v is not None and not pd.isna(v)}


def plan_rule(
    *,
    segment: str,
    list_id: str,
    list_name: str,
    segment_members: pd.DataFrame,
    links: pd.DataFrame,
    list_contact_ids: Iterable[str],
    opted_out_members: Iterable[str] = (),
    opted_out_contacts: Iterable[str] = (),
) -> RulePlan:
    """The changes that make the list equal to the segment (see the module's rules).

    :param segment_members: member_id and opted_out (the member row's) of every member in the segment.
    :param links: member_id -> contact_id, every link.
    :param list_contact_ids: the contacts on the list now.
    :param opted_out_members, opted_out_contacts: opted out elsewhere (the consent ledger, the CC
        directory, the list's own read): never added.
    """
    members = segment_members[[MEMBER_ID, OPTED_OUT]].copy()
    members[MEMBER_ID] = members[MEMBER_ID].astype(str)
    members = members.drop_duplicates(MEMBER_ID)
    link_frame = links[[MEMBER_ID, CONTACT_ID]].dropna().astype(str).drop_duplicates(MEMBER_ID)
    linked = members.merge(link_frame, on=MEMBER_ID, how="inner")
    on_list = _ids(list_contact_ids)
    blocked_members, blocked_contacts = _ids(opted_out_members), _ids(opted_out_contacts)

    opted_out = (
        linked[OPTED_OUT].fillna(False).astype(bool)
        | linked[MEMBER_ID].isin(blocked_members)
        | linked[CONTACT_ID].isin(blocked_contacts)
    ).to_numpy(bool)
    wanted = linked.loc[~opted_out]
    adds = wanted.loc[~wanted[CONTACT_ID].isin(on_list)].drop_duplicates(CONTACT_ID)
    in_segment = set(linked[CONTACT_ID])
    removed_ids = sorted(on_list - in_segment)
    member_of = link_frame.drop_duplicates(CONTACT_ID).set_index(CONTACT_ID)[MEMBER_ID]
    removes = pd.DataFrame({CONTACT_ID: removed_ids})
    removes[MEMBER_ID] = removes[CONTACT_ID].map(member_of).astype(object)
    changes = pd.concat(
        [
            adds[[MEMBER_ID, CONTACT_ID]].assign(change=RuleChange.ADD.value),
            removes[[MEMBER_ID, CONTACT_ID]].assign(change=RuleChange.REMOVE.value),
        ],
        ignore_index=True,
    )
    counts = {
        "segment_members": len(members),
        "not_linked": len(members) - len(linked),
        "opted_out_not_added": int((opted_out & ~linked[CONTACT_ID].isin(on_list).to_numpy(bool)).sum()),
        "list_members_before": len(on_list),
        "added": len(adds),
        "removed": len(removes),
    }
    return RulePlan(segment, list_id, list_name, changes, len(on_list), counts)
