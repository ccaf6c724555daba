"""After a load: the links, the base, the change log, consent, reviews, the CC directory and the
watermarks, in that order, then the run record.

Only what was really written moves the base: a person whose write failed or was skipped keeps the
old base, so the next run sees the same difference and tries again. Everything here is an upsert
keyed on natural keys, so recording twice (a cleared and re-run task) writes nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from cc_sync.engine import SyncPlan
from cc_sync.engine.model import DIRECTION, SOURCE, WHEN
from cc_sync.fields import CONTACT_ID, MEMBER_ID
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.sync.loading import LoadResult
from cc_sync.sync.window import Stream, SyncWindow
from cc_sync.timeutil import parse_utc

log = logging.getLogger(__name__)

CREATED_RULE = "created"
LEFT_SCOPE = "left_scope"  # change-log reason: a linked member left the mapping's scope


def blocked_pairs(plan: SyncPlan, cc: LoadResult, members: LoadResult) -> tuple[set[str], set[str]]:
    """Member ids and contact ids whose writes did not all land (or are not known to) this run."""
    failed = pd.concat([cc.failed, members.failed, cc.unconfirmed], ignore_index=True)
    member_ids = set(failed[MEMBER_ID].dropna().astype(str))
    contact_ids = set(failed[CONTACT_ID].dropna().astype(str))
    return member_ids, contact_ids


def record_run(
    bookkeeping: Bookkeeping,
    plan: SyncPlan,
    *,
    run_id: str,
    window: SyncWindow,
    contacts: pd.DataFrame,
    cc: LoadResult,
    members: LoadResult,
    leaving_scope: pd.DataFrame | None = None,
    main_list_name: str | None = None,
) -> dict[str, int]:
    """Write everything the run learned; return the counts for the run record."""
    blocked_members, blocked_contacts = blocked_pairs(plan, cc, members)

    def landed(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return frame
        keep = ~frame[MEMBER_ID].astype(str).isin(blocked_members)
        if CONTACT_ID in frame:
            keep &= ~frame[CONTACT_ID].astype("string").isin(blocked_contacts).fillna(False)
        return frame[keep.to_numpy()]

    base = landed(plan.new_base)
    created = cc.created_links.set_index(MEMBER_ID)[CONTACT_ID] if len(cc.created_links) else None
    if created is not None and len(base):
        missing = base[CONTACT_ID].isna()
        base.loc[missing, CONTACT_ID] = base.loc[missing, MEMBER_ID].map(created)
    base = base[base[CONTACT_ID].notna()] if len(base) else base

    # A new link is stored only with its base: one whose writes did not all land is left for the
    # next run, which links the pair again and merges it from scratch.
    links = pd.concat([plan.new_links, cc.created_links.assign(rule=CREATED_RULE)], ignore_index=True)
    based = set(base[MEMBER_ID].astype(str)) if len(base) else set()
    with_base = links[MEMBER_ID].astype(str).isin(based).to_numpy(bool)
    if (~with_base).any():
        log.info(
            "%d new link(s) not stored: their writes did not all land; the next run links them again",
            int((~with_base).sum()),
        )
    links = links[with_base]
    new_link_base = base[MEMBER_ID].astype(str).isin(set(links[MEMBER_ID].astype(str))).to_numpy(bool)
    bookkeeping.link_with_base(links, base[new_link_base], run_id=run_id)
    if len(plan.unlinks):
        for reason, group in plan.unlinks.groupby("reason"):
            bookkeeping.unlink(group[CONTACT_ID].astype(str).tolist(), str(reason), run_id=run_id)
    bookkeeping.save_base(base[~new_link_base] if len(base) else base, run_id=run_id)

    changes = landed(plan.changes).assign(run_id=run_id)
    if leaving_scope is not None and len(leaving_scope) and cc.counts.get("cc_removed_from_list"):
        removed = pd.DataFrame(
            {
                "direction": "to_cc",
                MEMBER_ID: leaving_scope[MEMBER_ID].astype(str),
                CONTACT_ID: leaving_scope[CONTACT_ID].astype(str),
                "field": "list_membership",
                "old_value": main_list_name,
                "new_value": None,
                "reason": LEFT_SCOPE,
                "run_id": run_id,
            }
        )
        changes = pd.concat([changes, removed], ignore_index=True)
    bookkeeping.append_changes(changes)

    consent = plan.consent
    if len(consent):
        bookkeeping.record_opt_outs(
            pd.DataFrame(
                {
                    MEMBER_ID: consent[MEMBER_ID],
                    CONTACT_ID: consent[CONTACT_ID],
                    "side": consent[SOURCE],
                    "source": "propagated " + consent[DIRECTION].astype(str),
                    "opted_out_at": consent[WHEN],
                    "run_id": run_id,
                }
            )
        )

    reviews = [plan.reviews]
    if len(plan.rejected):
        rejected = plan.rejected
        reviews.append(
            pd.DataFrame(
                {
                    "kind": "rejected_" + rejected["reason"].astype(str),
                    MEMBER_ID: rejected[MEMBER_ID],
                    CONTACT_ID: rejected[CONTACT_ID],
                    "detail": rejected["field"].astype(str) + ": " + rejected["detail"].astype(str),
                }
            )
        )
    failed = pd.concat([cc.failed, members.failed], ignore_index=True)
    if len(failed):
        reviews.append(
            pd.DataFrame(
                {
                    "kind": "write_failed_" + failed["side"].astype(str),
                    MEMBER_ID: failed[MEMBER_ID],
                    CONTACT_ID: failed[CONTACT_ID],
                    "detail": failed["reason"],
                }
            )
        )
    review_items = (
        pd.concat([r for r in reviews if len(r)], ignore_index=True)
        if any(len(r) for r in reviews)
        else pd.DataFrame()
    )
    if len(review_items):
        review_items = without_kept_apart(bookkeeping, review_items)
    if len(review_items):
        bookkeeping.add_review_items(review_items, run_id=run_id)

    bookkeeping.upsert_directory(contacts)

    started = parse_utc(window.started_at)
    marks: dict[str, Any] = {Stream.MEMBERS: started, Stream.CC_CONTACTS: started}
    if window.full:
        marks[Stream.FULL_RECONCILE] = started
    bookkeeping.set_watermarks(marks)

    counts = {k: int(v) for k, v in plan.summary().items()}
    counts.update({f"load_{k}": int(v) for k, v in {**cc.counts, **members.counts}.items()})
    counts["write_failures"] = len(failed)
    counts["base_saved"] = len(base)
    counts["links_stored"] = len(links)
    return counts


def without_kept_apart(bookkeeping: Bookkeeping, items: pd.DataFrame) -> pd.DataFrame:
    """Review items less the pairs a person decided to keep apart: those are never queued again."""
    kept = bookkeeping.kept_apart_pairs(items[MEMBER_ID].dropna())
    if not kept:
        return items
    pairs = zip(items[MEMBER_ID].astype("string"), items[CONTACT_ID].astype("string"), strict=True)
    keep = [(str(m), str(c)) not in kept for m, c in pairs]
    dropped = len(keep) - sum(keep)
    if dropped:
        log.info("%d review item(s) not queued: a person decided to keep those pairs apart", dropped)
    return items[keep]
