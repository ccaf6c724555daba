"""From the mapping's tag rules to values on both sides, in one long frame per side.

A tag rule maps a member column to tags named ``prefix + value``. The engine works per member and
tag column (``tag_column``), with the value as text (``None``: no tag). A value is read from the
member table as text, stripped; a blank is no value.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from cc_sync.fields import CONTACT_ID, DELETED, MEMBER_ID, TAG_IDS
from cc_sync.member_db.mapping import TagRule

TAG_COLUMN = "tag_column"
VALUE = "value"
CC_VALUES = "cc_values"  # the rule's values CC holds on the contact (a tuple, sorted)


def clean_value(value: object) -> str | None:
    """A member column's value as a tag's value: text, stripped; blank or missing is None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[call-overload]
        return None
    text = str(value).strip()
    return text or None


def member_values(members: pd.DataFrame, rules: Mapping[str, TagRule]) -> pd.DataFrame:
    """Linked members' tag values, long: ``member_id``, ``contact_id``, ``tag_column``, ``value``.

    :param members: ``member_id``, ``contact_id`` and a column per rule, as read from the table.
    """
    parts = [
        pd.DataFrame(
            {
                MEMBER_ID: members[MEMBER_ID].astype(str).to_numpy(),
                CONTACT_ID: members[CONTACT_ID].astype(str).to_numpy(),
                TAG_COLUMN: column,
                VALUE: [clean_value(v) for v in members[column]],
            }
        )
        for column in rules
    ]
    if not parts:
        return pd.DataFrame(columns=[MEMBER_ID, CONTACT_ID, TAG_COLUMN, VALUE])
    return pd.concat(parts, ignore_index=True)


def cc_values(
    contacts: pd.DataFrame, rules: Mapping[str, TagRule], tag_names: Mapping[str, str]
) -> pd.DataFrame:
    """The values each seen contact holds per rule, long: ``contact_id``, ``tag_column``,
    ``cc_values`` (a sorted tuple, empty when the contact has none of the rule's tags).

    :param contacts: ``contact_id``, ``tag_ids`` (comma-separated) and ``deleted`` when known; a
        deleted contact is left out (it is not tagged, and says nothing about the member).
    :param tag_names: ``tag_id`` -> name, the account's tags.
    """
    if DELETED in contacts.columns:
        contacts = contacts.loc[~contacts[DELETED].fillna(False).astype(bool)]
    rows: list[tuple[str, str, tuple[str, ...]]] = []
    for contact_id, ids in zip(contacts[CONTACT_ID], contacts[TAG_IDS].fillna(""), strict=True):
        names = [tag_names[t] for t in str(ids).split(",") if t in tag_names]
        for column, rule in rules.items():
            values = sorted({v for v in (rule.value_of(n) for n in names) if v is not None})
            rows.append((str(contact_id), column, tuple(values)))
    return pd.DataFrame(rows, columns=[CONTACT_ID, TAG_COLUMN, CC_VALUES])
