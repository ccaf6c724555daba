"""Plan the reversal of one run from its change log: pure pandas, no Airflow, no I/O.

A run's change log says, per value it wrote, the side (``direction``), the person, the field, the
value it replaced (``old_value``) and the value it wrote (``new_value``). Undoing the run writes
``old_value`` back, through the sync's own load path, but only where it is safe:

- **three-way safety**: a value is restored only where the field still holds what the run wrote
  (compared as the engine compares: blanks alike, emails trimmed and case-folded, other text
  trimmed). Where someone changed it since, it is left alone and reported (``edited_since``);
  where it already holds the old value there is nothing to write.
- **never reversed**: opt-outs (an undo never re-subscribes anyone), removals from a list when a
  member left the scope, and contacts the run created (left in CC, unlinked and reported; taken
  off the list the run added them to only when the caller asks, ``created_list_id``).
- **links**: the links the run made are removed (their base goes with them); links an *undo*
  removed are made again with the base it removed, so an undo can itself be undone.
- **bases**: every restored field's base goes back to what it was before the run (the base the
  run replaced, kept in ``base_history``), so the next sync compares as if the run never happened.

``plan_undo`` returns an :class:`UndoPlan`: a :class:`SyncPlan` for the loaders (member writes with
the optimistic row version, CC bulk updates, a PUT where bulk cannot: an email change, a blank, an
opted-out contact) whose ``changes`` are the undo's own change-log rows (reason ``undo:<run_id>``),
plus what is skipped and why, the links to remove or make again, and the bases to put back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cc_sync.engine.model import (
    CHANGES_COLUMNS,
    CLEARED_FIELDS,
    EMAIL_CHANGE,
    ROW_VERSION,
    UNSUBSCRIBE,
    SyncPlan,
    WriteDirection,
    empty_frame,
)
from cc_sync.fields import CANONICAL_FIELDS, CONTACT_ID, MEMBER_ID, OPTED_OUT, FieldKind, is_known_field

EMAIL = "email"
UNDO_PREFIX = "undo:"
LINK_DIRECTION = "link"
LIST_MEMBERSHIP = "list_membership"
CREATED = "created"


class SkipReason:
    """Why a logged value is not restored (the ``reason`` column of :attr:`UndoPlan.skipped`)."""

    EDITED_SINCE = "edited_since"  # the field no longer holds what the run wrote
    OPT_OUT = "opt_out_never_reversed"  # an undo never re-subscribes
    LIST_MEMBERSHIP = "list_membership_not_restored"  # a removal from a list stays
    CREATED_CONTACT = "created_contact_left_in_cc"  # contacts are never deleted
    RECORD_MISSING = "record_missing"  # the member or contact is no longer there (deleted in CC)
    BLANK_MEMBER_VALUE = "blank_not_written_to_member_db"  # the member load never clears a column
    BLANK_EMAIL = "blank_email_not_written_to_cc"  # a contact cannot lose its email
    NOT_WRITABLE = "not_writable_in_member_db"  # the mapping keeps the field from the member table
    NO_BASE = "no_base_to_relink"  # an unlink whose base was not kept: a link needs its base


SKIPPED_COLUMNS = (
    "direction",
    MEMBER_ID,
    CONTACT_ID,
    "field",
    "run_value",
    "current_value",
    "restore_value",
    "reason",
)
LINK_COLUMNS = (MEMBER_ID, CONTACT_ID, "rule")
LIST_COLUMNS = (MEMBER_ID, CONTACT_ID, "list_id")


def undo_reason(run_id: str) -> str:
    """The change-log reason of an undo's rows: ``undo:<run_id>`` (cut to the column's 255)."""
    return (UNDO_PREFIX + run_id)[:255]


@dataclass(frozen=True)
class UndoPlan:
    """What undoing one run writes, removes and puts back, and what it leaves alone (and why)."""

    run_id: str
    # The writes for the loaders; ``changes`` are the undo's own change-log rows.
    plan: SyncPlan = field(default_factory=SyncPlan)
    # direction, member_id, contact_id, field, run_value, current_value, restore_value, reason.
    skipped: pd.DataFrame = field(default_factory=lambda: empty_frame(SKIPPED_COLUMNS))
    # member_id, contact_id, rule: links the run made, to remove (with their base).
    unlinks: pd.DataFrame = field(default_factory=lambda: empty_frame(LINK_COLUMNS))
    # member_id, contact_id, rule: links an undo removed, to make again (with ``restore_base``).
    relinks: pd.DataFrame = field(default_factory=lambda: empty_frame(LINK_COLUMNS))
    # member_id, contact_id, <fields>, opted_out: the bases to store after the writes landed.
    restore_base: pd.DataFrame = field(default_factory=lambda: empty_frame((MEMBER_ID, CONTACT_ID)))
    # member_id, contact_id, list_id: contacts a send added to a list, to take off it again
    # (a removal from a list, never an unsubscribe).
    list_removals: pd.DataFrame = field(default_factory=lambda: empty_frame(LIST_COLUMNS))
    # Values found already back at what the run replaced: nothing to write, nothing to report.
    already_restored: int = 0

    def people(self) -> int:
        """Distinct people the undo writes to, unlinks or links again (for the guard rail)."""
        ids = pd.concat(
            [
                self.plan.changes[MEMBER_ID],
                self.unlinks[MEMBER_ID],
                self.relinks[MEMBER_ID],
                self.list_removals[MEMBER_ID],
            ],
            ignore_index=True,
        )
        return int(ids.dropna().nunique())

    def summary(self) -> dict[str, int]:
        counts = {
            "restored_values": len(self.plan.changes),
            "people": self.people(),
            "member_updates": len(self.plan.member_updates),
            "cc_updates": len(self.plan.cc_updates),
            "cc_puts": len(self.plan.cc_puts),
            "unlinks": len(self.unlinks),
            "relinks": len(self.relinks),
            "list_removals": len(self.list_removals),
            "bases_restored": len(self.restore_base),
            "already_restored": self.already_restored,
            "skipped": len(self.skipped),
        }
        for reason, count in self.skipped["reason"].value_counts().items():
            counts[f"skipped_{reason}"] = int(count)
        return counts

    def report(self) -> pd.DataFrame:
        """The plan in the change log's shape (for ``planned_changes`` and the log's table): every
        value restored (old = now, new = restored), every link removed or made, and every value
        left alone, with reason ``skip:<why>``."""
        reason = undo_reason(self.run_id)
        frames = [self.plan.changes]
        for links, removing in ((self.unlinks, True), (self.relinks, False)):
            if len(links):
                contact = links[CONTACT_ID].astype("string")
                frames.append(
                    pd.DataFrame(
                        {
                            "direction": LINK_DIRECTION,
                            MEMBER_ID: links[MEMBER_ID].astype("string"),
                            CONTACT_ID: contact,
                            "field": "link",
                            "old_value": contact if removing else None,
                            "new_value": None if removing else contact,
                            "reason": reason,
                        }
                    )
                )
        if len(self.list_removals):
            lists = self.list_removals
            frames.append(
                pd.DataFrame(
                    {
                        "direction": WriteDirection.TO_CC.value,
                        MEMBER_ID: lists[MEMBER_ID],
                        CONTACT_ID: lists[CONTACT_ID],
                        "field": LIST_MEMBERSHIP,
                        "old_value": lists["list_id"],
                        "new_value": None,
                        "reason": reason,
                    }
                )
            )
        if len(self.skipped):
            s = self.skipped
            frames.append(
                pd.DataFrame(
                    {
                        "direction": s["direction"],
                        MEMBER_ID: s[MEMBER_ID],
                        CONTACT_ID: s[CONTACT_ID],
                        "field": s["field"],
                        "old_value": s["current_value"],
                        "new_value": s["restore_value"],
                        "reason": "skip:" + s["reason"].astype(str),
                    }
                )
            )
        frames = [f for f in frames if len(f)]
        if not frames:
            return empty_frame(CHANGES_COLUMNS)
        return pd.concat([f.astype(object) for f in frames], ignore_index=True)[list(CHANGES_COLUMNS)]


# ---- comparing values as the engine does ---------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, list | dict) and bool(pd.isna(value)))


def canonical_text(name: str, value: Any) -> str | None:
    """One value as the undo compares it: None for every blank, emails trimmed and case-folded,
    whole numbers without a decimal point (``5``, ``5.0`` and ``"5"`` alike), other text trimmed."""
    if _missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text:
        return None
    if name == EMAIL:
        return text.casefold()
    spec = CANONICAL_FIELDS.get(name)
    if spec is not None and spec.kind == FieldKind.INTEGER:
        try:
            return str(int(float(text)))
        except ValueError:
            return text
    return text


def same_value(name: str, left: Any, right: Any) -> bool:
    return canonical_text(name, left) == canonical_text(name, right)


def _typed(name: str, text: Any) -> Any:
    """A logged value (text) as the side stores it: integers for integer fields, else text."""
    if _missing(text):
        return None
    spec = CANONICAL_FIELDS.get(name)
    if spec is not None and spec.kind == FieldKind.INTEGER:
        try:
            return int(float(str(text)))
        except ValueError:
            return str(text)
    return str(text)


def _keyed(frame: pd.DataFrame | None, key: str) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame(index=pd.Index([], name=key))
    data = frame.reset_index() if key not in frame.columns and frame.index.name == key else frame
    data = data.assign(**{key: data[key].astype(str)})
    return data.drop_duplicates(key, keep="last").set_index(key)


def _lookup(frame: pd.DataFrame, key: Any, name: str) -> tuple[bool, Any]:
    """(found, value) of ``frame.loc[key, name]``; a record without the column holds nothing."""
    if _missing(key) or str(key) not in frame.index:
        return False, None
    if name not in frame.columns:
        return True, None
    return True, frame.at[str(key), name]


# ---- the plan ------------------------------------------------------------------------------------


def select_changes(
    changes: pd.DataFrame, *, fields: Iterable[str] | None = None, people: Iterable[str] | None = None
) -> pd.DataFrame:
    """The run's change-log rows an undo considers: only ``fields`` and ``people`` (member or
    contact ids) when given. Link rows go with their person whatever ``fields`` says."""
    rows = changes.reset_index(drop=True)
    if fields:
        wanted = {str(f) for f in fields}
        rows = rows[rows["field"].astype(str).isin(wanted) | (rows["direction"] == LINK_DIRECTION)]
    if people:
        ids = {str(p) for p in people}
        rows = rows[
            rows[MEMBER_ID].astype("string").isin(ids).fillna(False)
            | rows[CONTACT_ID].astype("string").isin(ids).fillna(False)
        ]
    return rows.reset_index(drop=True)


def _only_people(links: pd.DataFrame, people: Iterable[str] | None) -> pd.DataFrame:
    if not people or links.empty:
        return links
    ids = {str(p) for p in people}
    keep = links[MEMBER_ID].astype(str).isin(ids) | links[CONTACT_ID].astype(str).isin(ids)
    return links[keep.to_numpy(bool)]


def plan_undo(
    run_id: str,
    changes: pd.DataFrame,
    *,
    members: pd.DataFrame,
    contacts: pd.DataFrame,
    links: pd.DataFrame,
    base: pd.DataFrame,
    replaced_base: pd.DataFrame,
    run_links: pd.DataFrame | None = None,
    fields: Iterable[str] | None = None,
    people: Iterable[str] | None = None,
    member_writable: Iterable[str] | None = None,
    cc_bulk: bool = True,
    created_list_id: str | None = None,
) -> UndoPlan:
    """Compute the reversal of ``run_id``.

    :param changes: the run's change-log rows (direction, member_id, contact_id, field, old_value,
        new_value, reason).
    :param members: the members concerned as they are now (member_id, row_version, fields).
    :param contacts: the CC contacts concerned as they are now (contact_id, email, fields,
        opted_out). A contact the run wrote to and absent here is reported ``record_missing``.
    :param links: the current links (member_id, contact_id).
    :param base: the current base (member_id, contact_id, fields, opted_out), indexed or not.
    :param replaced_base: the bases the run replaced (``Bookkeeping.load_base_history``).
    :param run_links: links the run made that still stand (member_id, contact_id, rule).
    :param fields: restore only these fields (None: all).
    :param people: restore only these people, by member or contact id (None: all).
    :param member_writable: the fields the member load may write (None: all).
    :param cc_bulk: restore CC values by bulk import where it can; False sends every contact a PUT
        (the import adds its rows to the main list: right for the sync's people, not for a send's).
    :param created_list_id: the list the run added the contacts it created to; given (the caller
        asked for it), those contacts are taken off it again (never unsubscribed, never deleted).
    """
    reason = undo_reason(run_id)
    rows = select_changes(changes, fields=fields, people=people)
    members_by_id = _keyed(members, MEMBER_ID)
    contacts_by_id = _keyed(contacts, CONTACT_ID)
    base_by_id = _keyed(base, MEMBER_ID)
    replaced_by_id = _keyed(replaced_base, MEMBER_ID)
    writable = None if member_writable is None else set(member_writable)
    current_links = links[[MEMBER_ID, CONTACT_ID]].astype(str) if len(links) else empty_frame(PAIR)
    linked_members = set(current_links[MEMBER_ID])
    linked_contacts = set(current_links[CONTACT_ID])
    linked_pairs = set(zip(current_links[MEMBER_ID], current_links[CONTACT_ID], strict=True))

    skipped: list[dict[str, Any]] = []
    restores: list[dict[str, Any]] = []
    relinks: list[dict[str, Any]] = []
    removals: list[dict[str, Any]] = []
    already = 0

    def skip(row: dict[str, Any], why: str, current: Any = None) -> None:
        skipped.append(
            {
                "direction": row["direction"],
                MEMBER_ID: row[MEMBER_ID],
                CONTACT_ID: row[CONTACT_ID],
                "field": row["field"],
                "run_value": row["new_value"],
                "current_value": None if _missing(current) else str(current),
                "restore_value": row["old_value"],
                "reason": why,
            }
        )

    for row in rows.astype(object).where(rows.notna(), None).to_dict("records"):
        direction, name = str(row["direction"]), str(row["field"])
        if direction == LINK_DIRECTION:
            # A link an undo removed (old = the contact, new = none) is made again; an unlink of
            # the sync's own (a contact deleted in CC) is not an undo's to reverse.
            removed = not _missing(row["old_value"]) and _missing(row["new_value"])
            if removed and str(row.get("reason") or "").startswith(UNDO_PREFIX):
                relinks.append({MEMBER_ID: str(row[MEMBER_ID]), CONTACT_ID: str(row["old_value"])})
            continue
        if name == OPTED_OUT:
            skip(row, SkipReason.OPT_OUT)
            continue
        if name == LIST_MEMBERSHIP:
            # A contact the run added to a list (none -> the list) is taken off it again; a removal
            # (a member who left the scope, or an undo's) is never reversed by adding back.
            if (
                _missing(row["old_value"])
                and not _missing(row["new_value"])
                and not _missing(row[CONTACT_ID])
            ):
                removals.append(
                    {
                        MEMBER_ID: row[MEMBER_ID],
                        CONTACT_ID: str(row[CONTACT_ID]),
                        "list_id": str(row["new_value"]),
                    }
                )
            else:
                skip(row, SkipReason.LIST_MEMBERSHIP)
            continue
        if not is_known_field(name):
            continue
        if direction == WriteDirection.TO_CC.value and (
            row.get("reason") == CREATED or _missing(row[CONTACT_ID])
        ):
            skip(row, SkipReason.CREATED_CONTACT)
            continue
        to_cc = direction == WriteDirection.TO_CC.value
        found, current = (
            _lookup(contacts_by_id, row[CONTACT_ID], name)
            if to_cc
            else _lookup(members_by_id, row[MEMBER_ID], name)
        )
        if not found:
            skip(row, SkipReason.RECORD_MISSING)
            continue
        if same_value(name, current, row["old_value"]):
            already += 1  # back where it was before the run: nothing to write
            continue
        if not same_value(name, current, row["new_value"]):
            skip(row, SkipReason.EDITED_SINCE, current)
            continue
        if not to_cc and writable is not None and name not in writable:
            skip(row, SkipReason.NOT_WRITABLE, current)
            continue
        if not to_cc and canonical_text(name, row["old_value"]) is None:
            skip(row, SkipReason.BLANK_MEMBER_VALUE, current)
            continue
        if to_cc and name == EMAIL and canonical_text(name, row["old_value"]) is None:
            skip(row, SkipReason.BLANK_EMAIL, current)
            continue
        restores.append({**row, "current": current})

    restored = pd.DataFrame(restores, columns=[*CHANGES_COLUMNS, "current"])
    undo_changes = pd.DataFrame(
        {
            "direction": restored["direction"],
            MEMBER_ID: restored[MEMBER_ID],
            CONTACT_ID: restored[CONTACT_ID],
            "field": restored["field"],
            "old_value": [None if _missing(v) else str(v) for v in restored["current"]],
            "new_value": restored["old_value"],
            "reason": reason,
        },
        columns=list(CHANGES_COLUMNS),
    )

    # Links: the run's own (made by it, still standing) go; an undo's removals come back.
    unlinks = run_links if run_links is not None else empty_frame(LINK_COLUMNS)
    unlinks = _only_people(unlinks.reindex(columns=list(LINK_COLUMNS)), people)
    if len(unlinks):
        unlinks = unlinks[
            [
                (str(m), str(c)) in linked_pairs
                for m, c in zip(unlinks[MEMBER_ID], unlinks[CONTACT_ID], strict=True)
            ]
        ]
    for item in unlinks[unlinks["rule"].astype("string") == CREATED].to_dict("records"):
        if created_list_id is not None:
            removals.append(
                {MEMBER_ID: item[MEMBER_ID], CONTACT_ID: str(item[CONTACT_ID]), "list_id": created_list_id}
            )
        skipped.append(
            {
                "direction": LINK_DIRECTION,
                MEMBER_ID: item[MEMBER_ID],
                CONTACT_ID: item[CONTACT_ID],
                "field": "link",
                "run_value": item[CONTACT_ID],
                "current_value": item[CONTACT_ID],
                "restore_value": None,
                "reason": SkipReason.CREATED_CONTACT,
            }
        )
    relink_rows = []
    for item in relinks:
        member, contact = item[MEMBER_ID], item[CONTACT_ID]
        if member in linked_members or contact in linked_contacts:
            continue  # linked again since, by the sync or a send: that link stands
        if member not in replaced_by_id.index:
            skipped.append(
                {"direction": LINK_DIRECTION, MEMBER_ID: member, CONTACT_ID: contact, "field": "link",
                 "run_value": None, "current_value": None, "restore_value": contact,
                 "reason": SkipReason.NO_BASE}
            )  # fmt: skip
            continue
        relink_rows.append({MEMBER_ID: member, CONTACT_ID: contact, "rule": UNDO_PREFIX + "relink"})
    relinked = pd.DataFrame(relink_rows, columns=list(LINK_COLUMNS))

    plan = SyncPlan(
        member_updates=_member_updates(restored, members_by_id),
        cc_updates=_cc_writes(restored, contacts_by_id, bulk=True, allow_bulk=cc_bulk),
        cc_puts=_cc_writes(restored, contacts_by_id, bulk=False, allow_bulk=cc_bulk),
        changes=undo_changes,
        unlinks=unlinks.assign(reason=reason)[[MEMBER_ID, CONTACT_ID, "reason"]]
        if len(unlinks)
        else empty_frame((MEMBER_ID, CONTACT_ID, "reason")),
    )
    return UndoPlan(
        run_id=run_id,
        plan=plan,
        skipped=pd.DataFrame(skipped, columns=list(SKIPPED_COLUMNS)),
        unlinks=unlinks.reset_index(drop=True),
        relinks=relinked,
        restore_base=_bases(restored, base_by_id, replaced_by_id, unlinks, relinked, linked_pairs),
        # A send's list rows and the opt-in removal of created contacts may name the same pair.
        list_removals=pd.DataFrame(removals, columns=list(LIST_COLUMNS)).drop_duplicates(
            [CONTACT_ID, "list_id"], ignore_index=True
        ),
        already_restored=already,
    )


PAIR = (MEMBER_ID, CONTACT_ID)


def _member_updates(restored: pd.DataFrame, members_by_id: pd.DataFrame) -> pd.DataFrame:
    """member_id, row_version (as read now: the load skips a member edited after this plan),
    contact_id, the restored fields (NA: leave alone)."""
    rows = restored[restored["direction"] == WriteDirection.TO_MEMBER_DB.value]
    if rows.empty:
        return empty_frame((MEMBER_ID, ROW_VERSION, CONTACT_ID))
    out: dict[str, dict[str, Any]] = {}
    for row in rows.to_dict("records"):
        member = str(row[MEMBER_ID])
        entry = out.setdefault(
            member,
            {
                MEMBER_ID: member,
                ROW_VERSION: _lookup(members_by_id, member, ROW_VERSION)[1],
                CONTACT_ID: row[CONTACT_ID],
            },
        )
        entry[str(row["field"])] = _typed(str(row["field"]), row["old_value"])
    return pd.DataFrame(list(out.values())).astype({MEMBER_ID: "string"})


def _cc_writes(
    restored: pd.DataFrame, contacts_by_id: pd.DataFrame, *, bulk: bool, allow_bulk: bool = True
) -> pd.DataFrame:
    """CC writes per contact. In bulk (the import, keyed by CC's current email) unless the contact
    needs a PUT: its email changes, a value goes blank (the import ignores blanks), or it is opted
    out (an import row could put it back on a list)."""
    rows = restored[restored["direction"] == WriteDirection.TO_CC.value]
    columns = (
        (CONTACT_ID, MEMBER_ID, EMAIL)
        if bulk
        else (CONTACT_ID, MEMBER_ID, EMAIL_CHANGE, UNSUBSCRIBE, CLEARED_FIELDS)
    )
    if rows.empty:
        return empty_frame(columns)
    out = []
    for contact, group in rows.groupby(CONTACT_ID, sort=True):
        values = {str(r["field"]): _typed(str(r["field"]), r["old_value"]) for r in group.to_dict("records")}
        cleared = sorted(n for n, v in values.items() if v is None and n != EMAIL)
        opted_out = bool(_lookup(contacts_by_id, contact, OPTED_OUT)[1] or False)
        needs_put = not allow_bulk or EMAIL in values or bool(cleared) or opted_out
        if needs_put == bulk:
            continue
        entry: dict[str, Any] = {CONTACT_ID: str(contact), MEMBER_ID: group[MEMBER_ID].iloc[0]}
        if bulk:
            entry[EMAIL] = _lookup(contacts_by_id, contact, EMAIL)[1]
        else:
            entry[EMAIL_CHANGE] = values.pop(EMAIL, None)
            entry[UNSUBSCRIBE] = False
            entry[CLEARED_FIELDS] = ",".join(cleared) if cleared else None
        entry.update({n: v for n, v in values.items() if n != EMAIL and v is not None})
        out.append(entry)
    frame = pd.DataFrame(out, columns=None if out else list(columns))
    return frame if len(frame) else empty_frame(columns)


def _bases(
    restored: pd.DataFrame,
    base_by_id: pd.DataFrame,
    replaced_by_id: pd.DataFrame,
    unlinks: pd.DataFrame,
    relinks: pd.DataFrame,
    linked_pairs: set[tuple[str, str]],
) -> pd.DataFrame:
    """The bases to store after the undo: a link made again gets the base its undo removed; a link
    that stays gets each restored field's base back to what it was before the run (the base the
    run replaced, or the restored value where the run replaced none); other fields keep theirs."""
    leaving = set(unlinks[MEMBER_ID].astype(str)) if len(unlinks) else set()
    rows: list[dict[str, Any]] = []
    for item in relinks.to_dict("records"):
        member = str(item[MEMBER_ID])
        prior = replaced_by_id.loc[member].to_dict()
        prior.pop("member_hash", None)
        rows.append({**prior, MEMBER_ID: member, CONTACT_ID: str(item[CONTACT_ID])})
    relinked = {r[MEMBER_ID] for r in rows}
    for member, group in restored.groupby(MEMBER_ID, sort=True):
        member = str(member)
        if member in leaving or member in relinked or member not in base_by_id.index:
            continue
        current = base_by_id.loc[member].to_dict()
        current.pop("member_hash", None)
        contact = current.get(CONTACT_ID)
        if _missing(contact) or (member, str(contact)) not in linked_pairs:
            continue
        for row in group.to_dict("records"):
            name = str(row["field"])
            had, prior = _lookup(replaced_by_id, member, name)
            current[name] = prior if had else _typed(name, row["old_value"])
        rows.append({**current, MEMBER_ID: member, CONTACT_ID: str(contact)})
    if not rows:
        return empty_frame((MEMBER_ID, CONTACT_ID))
    frame = pd.DataFrame(rows)
    if OPTED_OUT in frame:
        frame[OPTED_OUT] = frame[OPTED_OUT].fillna(False).astype(bool)
    return frame
