"""The tags' three-way merge: per linked member and tag column, member value against CC's against
the base (the value both sides agreed on after the last tags run). Pure pandas, no I/O.

For a column whose rule is ``to_cc`` the member's value is the answer. For ``two_way``:

================================  ===========================================================
member changed, CC did not        the member's value goes to CC
CC changed, member did not        CC's value is written to the member column
both changed, to the same value   nothing to write; the base moves
both changed, differently         a ``tag_conflict`` review item; nothing is written, the base
                                  stays, and the next run asks again until one side gives way
================================  ===========================================================

"CC's value" is read from the contact's tags when this run's extract saw the contact; a contact
it did not see is taken to hold the base (a full reconcile reads every contact's tags). A contact
holding two of a rule's tags (a person in CC added the new one and left the old) is read as the
one that is not the base, and the other is untagged.

Tagging never touches consent: an opted-out contact is tagged and untagged like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from cc_sync.fields import CONTACT_ID, MEMBER_ID
from cc_sync.member_db.mapping import MAX_TAG_NAME, TagDirection, TagRule
from cc_sync.tags.rules import CC_VALUES, TAG_COLUMN, VALUE

BASE_VALUE = "base_value"
MEMBER_VALUE = "member_value"
CC_VALUE = "cc_value"
TAG_NAME = "tag_name"
OLD_VALUE = "old_value"
NEW_VALUE = "new_value"

TAGGING_COLUMNS = [TAG_NAME, CONTACT_ID]
WRITE_COLUMNS = [MEMBER_ID, CONTACT_ID, TAG_COLUMN, OLD_VALUE, NEW_VALUE]
BASE_COLUMNS = [MEMBER_ID, TAG_COLUMN, CONTACT_ID, VALUE]
CONFLICT_COLUMNS = [MEMBER_ID, CONTACT_ID, TAG_COLUMN, MEMBER_VALUE, CC_VALUE, BASE_VALUE]
REFUSED_COLUMNS = [MEMBER_ID, TAG_COLUMN, VALUE]


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns).astype(object)


@dataclass
class TagPlan:
    """What a tags run writes. Frames of plain objects (text, None)."""

    add: pd.DataFrame = field(default_factory=lambda: _frame([], TAGGING_COLUMNS))
    remove: pd.DataFrame = field(default_factory=lambda: _frame([], TAGGING_COLUMNS))
    to_cc: pd.DataFrame = field(default_factory=lambda: _frame([], WRITE_COLUMNS))  # change log rows
    to_member_db: pd.DataFrame = field(default_factory=lambda: _frame([], WRITE_COLUMNS))
    base: pd.DataFrame = field(default_factory=lambda: _frame([], BASE_COLUMNS))
    conflicts: pd.DataFrame = field(default_factory=lambda: _frame([], CONFLICT_COLUMNS))
    refused: pd.DataFrame = field(default_factory=lambda: _frame([], REFUSED_COLUMNS))

    def tags_needed(self) -> list[str]:
        """Every tag name the plan adds (those the account lacks are created first)."""
        return sorted(set(self.add[TAG_NAME]))

    def counts(self) -> dict[str, int]:
        return {
            "tags_added": len(self.add),
            "tags_removed": len(self.remove),
            "contacts_retagged": len(self.to_cc),
            "member_columns_written": len(self.to_member_db),
            "tag_conflicts": len(self.conflicts),
            "tag_values_refused": len(self.refused),
        }


def _cc_reading(held: tuple[str, ...], base: str | None) -> str | None:
    """The one value CC holds for a rule, from the values of the rule's tags on the contact."""
    if not held:
        return None
    if base in held:
        others = [v for v in held if v != base]
        return others[0] if others else base
    return held[0]


def plan_tags(
    members: pd.DataFrame,
    cc: pd.DataFrame,
    base: pd.DataFrame,
    rules: Mapping[str, TagRule],
) -> TagPlan:
    """Merge per member and tag column.

    :param members: ``rules.member_values``: ``member_id``, ``contact_id``, ``tag_column``, ``value``.
    :param cc: ``rules.cc_values`` of the contacts seen this run: ``contact_id``, ``tag_column``,
        ``cc_values``.
    :param base: the stored base: ``member_id``, ``tag_column``, ``value`` (no row: never synced).
    """
    rows = members.merge(
        base[[MEMBER_ID, TAG_COLUMN, VALUE]].rename(columns={VALUE: BASE_VALUE}).assign(_has_base=True),
        on=[MEMBER_ID, TAG_COLUMN],
        how="left",
    ).merge(cc[[CONTACT_ID, TAG_COLUMN, CC_VALUES]], on=[CONTACT_ID, TAG_COLUMN], how="left")
    add: list[tuple] = []
    remove: list[tuple] = []
    to_cc: list[tuple] = []
    to_member_db: list[tuple] = []
    new_base: list[tuple] = []
    conflicts: list[tuple] = []
    refused: list[tuple] = []
    for member_id, contact_id, column, mine, has_base, based, held in zip(
        rows[MEMBER_ID],
        rows[CONTACT_ID],
        rows[TAG_COLUMN],
        rows[VALUE],
        rows["_has_base"].fillna(False).astype(bool),
        rows[BASE_VALUE],
        rows[CC_VALUES],
        strict=True,
    ):
        rule = rules[column]
        mine = None if pd.isna(mine) else mine
        based = None if not has_base or pd.isna(based) else based
        seen = isinstance(held, tuple)
        held = held if seen else ((based,) if based is not None else ())
        theirs = _cc_reading(held, based)
        if rule.direction is TagDirection.TO_CC or theirs == based:
            final = mine
        elif mine in (based, theirs):
            final = theirs
        else:
            conflicts.append((member_id, contact_id, column, mine, theirs, based))
            continue
        if final is not None and len(rule.tag_name(final)) > MAX_TAG_NAME:
            refused.append((member_id, column, final))
            continue
        adding = final is not None and final not in held
        dropping = [v for v in held if v != final]
        if adding:
            add.append((rule.tag_name(final), contact_id))
        remove += [(rule.tag_name(v), contact_id) for v in dropping]
        if adding or dropping:
            to_cc.append((member_id, contact_id, column, theirs, final))
        if final != mine:
            to_member_db.append((member_id, contact_id, column, mine, final))
        if not has_base or final != based:
            new_base.append((member_id, column, contact_id, final))
    return TagPlan(
        add=_frame(add, TAGGING_COLUMNS),
        remove=_frame(remove, TAGGING_COLUMNS),
        to_cc=_frame(to_cc, WRITE_COLUMNS),
        to_member_db=_frame(to_member_db, WRITE_COLUMNS),
        base=_frame(new_base, BASE_COLUMNS),
        conflicts=_frame(conflicts, CONFLICT_COLUMNS),
        refused=_frame(refused, REFUSED_COLUMNS),
    )


def grouped_by_tag(taggings: pd.DataFrame) -> dict[str, list[str]]:
    """``tag name`` -> its contact ids (sorted, each once): one bulk activity per tag (and 500 ids)."""
    if taggings.empty:
        return {}
    return {
        name: sorted(set(ids))
        for name, ids in taggings.groupby(TAG_NAME, sort=True)[CONTACT_ID].agg(list).items()
    }
