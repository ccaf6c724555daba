"""The sync DAG's ``tags`` task (after load): the mapping's tag columns kept as Constant Contact tags.

Reads the linked members' tag columns (member database), the tags' base (bookkeeping) and the
account's tags (one page: ``GET /v3/contact_tags``); takes CC's side from this run's contact
extract (``tag_ids``); merges (:func:`cc_sync.tags.plan.plan_tags`); then writes, in this order:
the missing tags (one ``POST`` each), the bulk tagging activities (one per tag and 500 contacts,
all sent before the first poll), the two-way columns' write-backs (one transaction, each row only
if it still holds the value read), and last the base, the change log and the review items. A
rerun after a failure anywhere recomputes the same plan: tagging a tagged contact changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import sqlalchemy as sa

from cc_sync.constant_contact.errors import ConstantContactError
from cc_sync.constant_contact.hook import TAGGINGS_ADD_PATH, TAGGINGS_REMOVE_PATH
from cc_sync.constant_contact.models import ActivityRequest
from cc_sync.databases import begin_writing
from cc_sync.fields import CONTACT_ID, MEMBER_ID, TAG_IDS
from cc_sync.member_db.bookkeeping import Bookkeeping, upsert
from cc_sync.member_db.schema import ChangeDirection, ReviewKind, utcnow
from cc_sync.sync.resources import SyncResources
from cc_sync.tags.plan import (
    BASE_VALUE,
    CC_VALUE,
    MEMBER_VALUE,
    NEW_VALUE,
    OLD_VALUE,
    TagPlan,
    grouped_by_tag,
    plan_tags,
)
from cc_sync.tags.rules import TAG_COLUMN, VALUE, cc_values, member_values

log = logging.getLogger(__name__)

CHANGE_FIELD_PREFIX = "tag:"  # the change log's field for a tag column: tag:<column>
ACTIVITY_RESENDS = 1


def tag_base_table(bookkeeping: Bookkeeping) -> sa.Table:
    return bookkeeping.metadata.tables[f"{bookkeeping.prefix}tag_base"]


def load_tag_base(bookkeeping: Bookkeeping) -> pd.DataFrame:
    table = tag_base_table(bookkeeping)
    with bookkeeping.engine.connect() as conn:
        frame = pd.read_sql(sa.select(table.c.member_id, table.c.tag_column, table.c.value), conn)
    return frame.astype(object).where(frame.notna(), None)


def read_linked_members(res: SyncResources) -> pd.DataFrame:
    """``member_id``, ``contact_id`` and each tag column, for linked members in scope."""
    mapping, table = res.mapping, res.members.table
    query = sa.select(
        table.c[mapping.member_id_column].label(MEMBER_ID), *(table.c[c] for c in mapping.tags)
    ).where(mapping.where_in_scope(table))
    with res.members.get_engine().connect() as conn:
        members = pd.read_sql(query, conn)
    members[MEMBER_ID] = members[MEMBER_ID].astype(str)
    links = res.bookkeeping.get_links()[[MEMBER_ID, CONTACT_ID]].dropna()
    return members.merge(links.astype({MEMBER_ID: str}), on=MEMBER_ID, how="inner")


def sync_tags(
    res: SyncResources, contacts: pd.DataFrame | None, *, run_id: str | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Plan and write the tags; returns ``{"counts": ...}``. A dry run plans, adds
    the plan's counts to the run record (beside the sync's planned changes) and writes nothing else."""
    rules = res.mapping.tags
    if not rules:
        log.info("The mapping has no tags: nothing to do")
        return {"counts": {}}
    cc = res.cc
    members = member_values(read_linked_members(res), rules)
    tags_by_name = {tag.name: tag for tag in cc.iter_tags()}
    names = {tag.tag_id: name for name, tag in tags_by_name.items()}
    if contacts is None or TAG_IDS not in contacts.columns:
        contacts = pd.DataFrame({CONTACT_ID: pd.Series(dtype=object), TAG_IDS: pd.Series(dtype=object)})
    plan = plan_tags(members, cc_values(contacts, rules, names), load_tag_base(res.bookkeeping), rules)
    log.info(
        "Tags planned over %d linked member(s) and %d contact(s) read this run: %s",
        members[MEMBER_ID].nunique(),
        len(contacts),
        plan.counts(),
    )
    if not plan.refused.empty:
        log.warning(
            "%d tag value(s) would make a tag name over 255 characters and are not sent (members %s)",
            len(plan.refused),
            ", ".join(plan.refused[MEMBER_ID].astype(str).head(20)),
        )
    if dry_run:
        if run_id is not None:
            record = res.bookkeeping.get_run(run_id) or {}
            res.bookkeeping.set_run_counts(run_id, {**(record.get("counts") or {}), **plan.counts()})
        return {"counts": plan.counts()}
    tags_by_name = cc.get_or_create_tags(plan.tags_needed(), known=tags_by_name)
    write_taggings(res, plan, {name: tag.tag_id for name, tag in tags_by_name.items()})
    stale = write_member_columns(res, plan)
    record_tags(res.bookkeeping, plan, run_id=run_id, stale=stale)
    counts = {**plan.counts(), "member_columns_stale": len(stale)}
    counts["member_columns_written"] -= len(stale)
    return {"counts": counts}


def write_taggings(res: SyncResources, plan: TagPlan, tag_ids: dict[str, str]) -> None:
    """Every tagging activity of the plan, sent together and then polled; one that still fails
    after a resend stops the task before the base is written (the rerun sends it again)."""
    requests: list[ActivityRequest] = []
    for path, taggings in ((TAGGINGS_ADD_PATH, plan.add), (TAGGINGS_REMOVE_PATH, plan.remove)):
        for name, contact_ids in grouped_by_tag(taggings).items():
            tag_id = tag_ids.get(name)
            if tag_id is None:  # an untag of a tag deleted in CC meanwhile: nothing left to remove
                continue
            requests += res.cc.tagging_requests(path, contact_ids, [tag_id])
    if not requests:
        return
    activities = res.cc.run_activities(requests, resubmit_failed=ACTIVITY_RESENDS)
    failed = [a for a in activities if not a.state.is_success()]
    if failed:
        raise ConstantContactError(
            f"{len(failed)} of {len(activities)} tagging activities ended "
            f"{', '.join(sorted({a.state.value for a in failed}))} (e.g. {failed[0].activity_id}); "
            "nothing else was recorded: the next run sends them again"
        )
    log.info(
        "Tagged %d and untagged %d contact tag(s) in %d activities",
        len(plan.add),
        len(plan.remove),
        len(activities),
    )


def write_member_columns(res: SyncResources, plan: TagPlan) -> set[tuple[str, str]]:
    """Two-way columns changed in CC, written back in one transaction; each row only if it still
    holds the value the plan read (else it is left for the next run). Returns the rows left."""
    writes = plan.to_member_db
    if writes.empty:
        return set()
    mapping, table, hook = res.mapping, res.members.table, res.members
    key = table.c[mapping.member_id_column]
    last_modified = table.c[mapping.last_modified_column] if mapping.last_modified_column else None
    now = utcnow()
    stale: set[tuple[str, str]] = set()
    with begin_writing(hook.get_engine()) as conn:
        for member_id, column, old, new in zip(
            writes[MEMBER_ID], writes[TAG_COLUMN], writes[OLD_VALUE], writes[NEW_VALUE], strict=True
        ):
            target = table.c[column]
            limit = getattr(target.type, "length", None)
            if new is not None and limit is not None and len(new) > limit:
                # The column cannot hold CC's value: left as it is (and the base too), said in the log.
                log.warning(
                    "Member %s: the tag value for %s is %d characters, the column holds %d; not written",
                    member_id,
                    column,
                    len(new),
                    limit,
                )
                stale.add((member_id, column))
                continue
            values: dict[str, Any] = {column: new}
            if last_modified is not None:
                values[last_modified.name] = hook._bind_time(now, last_modified)
            unchanged = target.is_(None) if old is None else sa.func.trim(sa.cast(target, sa.String)) == old
            result = conn.execute(
                table.update().where(key == hook._pk_values([member_id])[0], unchanged).values(values)
            )
            if result.rowcount != 1:
                stale.add((member_id, column))
    log.info("Wrote %d member tag column(s) back from Constant Contact", len(writes) - len(stale))
    return stale


def record_tags(
    bookkeeping: Bookkeeping, plan: TagPlan, *, run_id: str | None, stale: set[tuple[str, str]]
) -> None:
    """The new base, the change log and the conflicts' review items, in one transaction."""
    base = plan.base
    if stale:
        keep = [(m, c) not in stale for m, c in zip(base[MEMBER_ID], base[TAG_COLUMN], strict=True)]
        base = base.loc[keep]
    now = utcnow()
    rows = [
        {
            MEMBER_ID: member_id,
            TAG_COLUMN: column,
            CONTACT_ID: contact_id,
            VALUE: value,
            "run_id": run_id,
            "saved_at": now,
        }
        for member_id, column, contact_id, value in zip(
            base[MEMBER_ID], base[TAG_COLUMN], base[CONTACT_ID], base[VALUE], strict=True
        )
    ]
    changes = _change_log(plan, run_id, stale)
    with begin_writing(bookkeeping.engine) as conn:
        if rows:
            upsert(
                conn,
                tag_base_table(bookkeeping),
                rows,
                [MEMBER_ID, TAG_COLUMN],
                [CONTACT_ID, VALUE, "run_id", "saved_at"],
            )
        if not changes.empty:
            bookkeeping._append_changes(conn, changes)
    if not plan.conflicts.empty:
        queued = bookkeeping.add_review_items(_conflict_items(plan.conflicts), run_id=run_id)
        log.warning(
            "%d tag conflict(s) (both sides changed a two-way tag column), %d new in review",
            len(plan.conflicts),
            queued,
        )


def _change_log(plan: TagPlan, run_id: str | None, stale: set[tuple[str, str]]) -> pd.DataFrame:
    parts = []
    for frame, direction, reason in (
        (plan.to_cc, ChangeDirection.TO_CC, "tag rule"),
        (plan.to_member_db, ChangeDirection.TO_MEMBER_DB, "tag changed in Constant Contact"),
    ):
        if frame.empty:
            continue
        if direction is ChangeDirection.TO_MEMBER_DB and stale:
            keep = [(m, c) not in stale for m, c in zip(frame[MEMBER_ID], frame[TAG_COLUMN], strict=True)]
            frame = frame.loc[keep]
        parts.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "direction": direction.value,
                    MEMBER_ID: frame[MEMBER_ID].to_numpy(),
                    CONTACT_ID: frame[CONTACT_ID].to_numpy(),
                    "field": [f"{CHANGE_FIELD_PREFIX}{c}" for c in frame[TAG_COLUMN]],
                    "old_value": frame[OLD_VALUE].to_numpy(),
                    "new_value": frame[NEW_VALUE].to_numpy(),
                    "reason": reason,
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _conflict_items(conflicts: pd.DataFrame) -> pd.DataFrame:
    """One review item per member (the queue keys items by kind, member and contact), naming each
    column in conflict with the three values."""
    items = []
    for (member_id, contact_id), rows in conflicts.groupby([MEMBER_ID, CONTACT_ID], sort=True):
        items.append(
            {
                "kind": ReviewKind.TAG_CONFLICT.value,
                MEMBER_ID: member_id,
                CONTACT_ID: contact_id,
                "email_hint": None,
                "detail": {
                    "why": "the tag column changed in the member database and in Constant Contact",
                    "columns": {
                        column: {"member": mine, "constant_contact": theirs, "base": based}
                        for column, mine, theirs, based in zip(
                            rows[TAG_COLUMN],
                            rows[MEMBER_VALUE],
                            rows[CC_VALUE],
                            rows[BASE_VALUE],
                            strict=True,
                        )
                    },
                },
            }
        )
    return pd.DataFrame(items)
