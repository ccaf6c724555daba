"""The undo DAG's steps, as plain functions of XCom values (the DAG wraps each in a ``@task``).

open → plan → guard → load (the sync's own loaders, journaled under the undo's run id) → record →
finish (the sync's). The plan is :func:`cc_sync.undo.plan.plan_undo`; this module only reads what
it needs (the run's change log, both sides as they are now, the links and bases) and records what
landed: the undo's change-log rows (reason ``undo:<run_id>``), the links it removed or made again,
and the bases it put back (the ones it replaced kept in ``base_history``, so it can be undone too).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pandas as pd

from cc_sync.constant_contact.convert import contacts_to_frame
from cc_sync.errors import NotRetryableError
from cc_sync.fields import CONTACT_ID, MEMBER_ID
from cc_sync.member_db.bookkeeping import RunKind, RunStatus
from cc_sync.sync.loading import ACTIVITY_RESENDS, IMPORT_PREPARED, Journal, LoadResult, _require_success
from cc_sync.sync.outgoing import screen_outgoing
from cc_sync.sync.recording import blocked_pairs
from cc_sync.sync.resources import SyncResources
from cc_sync.sync.steps import MassChangeRefused
from cc_sync.sync.xcom import plan_from_xcom, plan_to_xcom
from cc_sync.undo.plan import (
    LINK_COLUMNS,
    LIST_COLUMNS,
    LIST_MEMBERSHIP,
    SKIPPED_COLUMNS,
    SkipReason,
    UndoPlan,
    plan_undo,
    undo_reason,
)

log = logging.getLogger(__name__)

UNDO_KIND = "undo"
# CC's updated_at and ours may differ a little: read contacts changed from a bit before the run.
CLOCK_SLACK = timedelta(minutes=5)
_EXTRA = ("skipped", "unlinks", "relinks", "restore_base", "list_removals")
LISTS_DONE = "cc_list_removals"
EDITED_SINCE_REVIEW = "undo_edited_since"  # the review kind of a field an undo left alone


class CannotUndo(NotRetryableError, ValueError):
    """The run named cannot be undone (unknown, still running, a dry run): nothing was written."""


def open_undo(
    resources: SyncResources, *, run_id: str, dag_id: str, target: str, dry_run: bool
) -> dict[str, Any]:
    """Check the run to undo, and start the undo's own run record."""
    resources.require_current_schema()
    bookkeeping = resources.bookkeeping
    record = bookkeeping.get_run(target) if target else None
    if record is None:
        raise CannotUndo(f"no run {target!r} in the bookkeeping: give the run id of a sync or a send")
    if target == run_id:
        raise CannotUndo("a run cannot undo itself")
    if record["status"] in (RunStatus.RUNNING.value, RunStatus.DRY_RUN.value):
        raise CannotUndo(
            f"run {target!r} is {record['status']}: only a finished run that wrote can be undone"
        )
    bookkeeping.start_run(run_id, dag_id, kind=RunKind.DRY_RUN.value if dry_run else UNDO_KIND)
    bookkeeping.mark_undo_of(run_id, target)
    started = record["started_at"]
    log.info("Undoing %s run %r (%s, started %s)", record["kind"], target, record["status"], started)
    return {"target": target, "target_kind": record["kind"], "target_started_at": started.isoformat()}


def _people(values: Any) -> list[str] | None:
    if not values:
        return None
    items = values if isinstance(values, list | tuple) else str(values).replace(",", " ").split()
    return [str(v).strip() for v in items if str(v).strip()] or None


def read_contacts(resources: SyncResources, contact_ids: set[str], since: pd.Timestamp) -> pd.DataFrame:
    """The contacts ``contact_ids`` as CC holds them now. Every contact the run wrote was updated
    after it started, so one read of what changed since then (500 a page) finds them all; any it
    misses (CC's clock, a contact written by an earlier run and logged by this one) is fetched
    alone."""
    cc = resources.cc
    if not contact_ids:
        return pd.DataFrame(columns=[CONTACT_ID])
    names = cc.custom_field_names()
    read = (
        c
        for c in cc.iter_contacts(status="all", updated_after=(since - CLOCK_SLACK).to_pydatetime())
        if str(c.get("contact_id")) in contact_ids
    )
    frame = contacts_to_frame(read, names)
    missing = contact_ids - set(frame[CONTACT_ID].astype(str)) if len(frame) else set(contact_ids)
    if missing:
        fetched = []
        for contact_id in sorted(missing):
            try:
                fetched.append(cc.get_contact(contact_id))
            except Exception as exc:  # a deleted or unknown contact: the plan reports it missing
                if getattr(exc, "status", None) != 404:
                    raise
        if fetched:
            frame = pd.concat([frame, contacts_to_frame(fetched, names)], ignore_index=True)
    return frame


def plan(
    resources: SyncResources,
    opened: dict[str, Any],
    *,
    fields: list[str] | None,
    people: Any,
    remove_created_from_lists: bool = False,
) -> dict[str, Any]:
    """Read the run's change log and both sides as they are now; plan the reversal. With
    ``remove_created_from_lists``, the contacts a sync created come off the list its import added
    them to (a send's contacts, created or not, come off its list in any case)."""
    bookkeeping = resources.bookkeeping
    target = opened["target"]
    changes = bookkeeping.get_changes(target)
    links = bookkeeping.get_links()
    run_links = links.loc[links["run_id"].astype("string") == target, list(LINK_COLUMNS)]
    member_ids = sorted(set(changes[MEMBER_ID].dropna().astype(str)) | set(run_links[MEMBER_ID].astype(str)))
    to_cc = changes["direction"] == "to_cc"
    contact_ids = set(changes.loc[to_cc, CONTACT_ID].dropna().astype(str))
    contacts = read_contacts(resources, contact_ids, pd.Timestamp(opened["target_started_at"]))
    frames = [f for f in resources.members.extract_members(member_ids=member_ids) if len(f)]
    members = pd.concat(frames, ignore_index=True) if frames else resources.members.empty_frame()
    undo = plan_undo(
        target,
        changes,
        members=members,
        contacts=contacts,
        links=links,
        base=bookkeeping.load_base(member_ids),
        replaced_base=bookkeeping.load_base_history(target, member_ids),
        run_links=run_links,
        fields=fields or None,
        people=_people(people),
        member_writable=resources.members.writable_fields(),
        # A send's people may not be on the main list: a PUT keeps their lists as they are.
        cc_bulk=opened.get("target_kind") != "send_list",
        created_list_id=_created_list(bookkeeping, opened) if remove_created_from_lists else None,
    )
    # The rules every row for CC goes through (required fields, placeholder, lengths, emails).
    screened = screen_outgoing(undo.plan, resources.mapping)
    log.info("Undo plan: %s", {k: v for k, v in undo.summary().items() if v})
    return {
        **plan_to_xcom(screened),
        **{name: getattr(undo, name).astype("string") for name in _EXTRA},
        "summary": undo.summary(),
    }


def _created_list(bookkeeping: Any, opened: dict[str, Any]) -> str | None:
    """The list a sync's import added the contacts it created to (kept in its load journal)."""
    if opened.get("target_kind") == "send_list":
        return None  # the send's list rows already take every contact it added off its list
    prepared = bookkeeping.step_detail(opened["target"], IMPORT_PREPARED) or {}
    return str(prepared["list_id"]) if prepared.get("list_id") else None


def undo_from_xcom(value: dict[str, Any], run_id: str = "") -> UndoPlan:
    return UndoPlan(
        run_id=run_id,
        plan=plan_from_xcom(value),
        skipped=value.get("skipped", pd.DataFrame(columns=list(SKIPPED_COLUMNS))),
        unlinks=value.get("unlinks", pd.DataFrame(columns=list(LINK_COLUMNS))),
        relinks=value.get("relinks", pd.DataFrame(columns=list(LINK_COLUMNS))),
        restore_base=value.get("restore_base", pd.DataFrame(columns=[MEMBER_ID, CONTACT_ID])),
        list_removals=value.get("list_removals", pd.DataFrame(columns=list(LIST_COLUMNS))),
    )


def remove_from_lists(resources: SyncResources, value: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    """Take the contacts a send added to its list off it again (a membership removal activity per
    list, never an unsubscribe), journaled like the load's bulk requests: a retry polls the
    activity CC accepted instead of sending it again."""
    removals = value.get("list_removals")
    if removals is None or removals.empty:
        return {"removed": 0}
    journal = Journal(resources.bookkeeping, run_id)
    if journal.done(LISTS_DONE):
        return {"removed": int((journal.detail(LISTS_DONE) or {}).get("removed") or 0)}
    hook = resources.cc
    for list_id, group in removals.groupby("list_id", sort=True):
        activities = hook.remove_list_memberships(
            group[CONTACT_ID].astype(str).drop_duplicates().tolist(),
            [str(list_id)],
            resume=journal.accepted_activities(),
            on_accepted=journal.activity_accepted,
            resubmit_failed=ACTIVITY_RESENDS,
        )
        _require_success(activities, f"removal from list {list_id}")
    journal.mark(LISTS_DONE, {"removed": len(removals)})
    log.info("Took %d contact(s) off the list(s) the run added them to", len(removals))
    return {"removed": len(removals)}


def guard(
    resources: SyncResources,
    value: dict[str, Any],
    *,
    target: str,
    run_id: str,
    allow_mass_change: bool,
    max_share: float,
    dry_run: bool,
) -> dict[str, int]:
    """Stop an undo touching more than ``max_share`` of the linked people (unless allowed); on a
    dry run keep the plan in ``planned_changes`` and show it as a table, writing nothing."""
    if not 0 <= max_share <= 1:
        raise ValueError(f"max_change_share must be between 0 and 1, not {max_share}")
    undo = undo_from_xcom(value, target)
    linked = len(resources.bookkeeping.get_links())
    people = undo.people()
    problem = (
        f"would change {people} of {linked} linked people ({people / linked:.1%}), "
        f"over the {max_share:.1%} allowed"
        if linked and people > max_share * linked
        else None
    )
    summary = {**dict(value.get("summary") or {}), "mass_change_refused": int(bool(problem))}
    report = undo.report()
    if len(report):
        table = report.groupby(["direction", "field", "reason"], dropna=False).size().rename("values")
        log.info("The undo of %s (what is restored where, what is left alone and why):\n%s", target, table)
        if len(undo.skipped):
            log.info("Left alone:\n%s", undo.skipped.head(50).to_string(index=False))
    else:
        log.info("Nothing of %s to undo", target)
    if dry_run:
        if problem:
            log.warning("A real undo would be refused by the guard rail: %s", problem)
        resources.bookkeeping.save_planned_changes(run_id, report)
        resources.bookkeeping.set_run_counts(run_id, {**summary, "planned_changes": len(report)})
        return summary
    if problem and not allow_mass_change:
        raise MassChangeRefused(
            f"refusing to undo {target}: {problem}. Nothing was written. If this is intended, trigger "
            "the undo again with allow_mass_change on."
        )
    if problem:
        log.warning("Mass change allowed by the undo's params: %s", problem)
    return summary


def record(
    resources: SyncResources,
    value: dict[str, Any],
    *,
    target: str,
    run_id: str,
    cc_result: dict[str, Any] | None,
    member_result: dict[str, Any] | None,
    lists_result: dict[str, Any] | None = None,
    review_edited_since: bool = False,
) -> dict[str, int]:
    """Log what landed, remove and make links, put the bases back, and (when asked) queue each
    person with a field edited since the run for review. Idempotent (upserts on natural keys; the
    bases it replaces are kept once per run; one open review item per person), so a cleared and
    re-run task is harmless."""
    bookkeeping = resources.bookkeeping
    undo = undo_from_xcom(value, target)
    cc, members = LoadResult.from_xcom(cc_result), LoadResult.from_xcom(member_result)
    blocked_members, blocked_contacts = blocked_pairs(undo.plan, cc, members)

    def landed(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return frame
        keep = ~frame[MEMBER_ID].astype("string").isin(blocked_members).fillna(False)
        keep &= ~frame[CONTACT_ID].astype("string").isin(blocked_contacts).fillna(False)
        return frame[keep.to_numpy(bool)]

    changes = landed(undo.plan.changes)
    removals = undo.list_removals
    if len(removals) and (lists_result or {}).get("removed"):
        changes = pd.concat(
            [
                changes,
                pd.DataFrame(
                    {
                        "direction": "to_cc",
                        MEMBER_ID: removals[MEMBER_ID],
                        CONTACT_ID: removals[CONTACT_ID],
                        "field": LIST_MEMBERSHIP,
                        "old_value": removals["list_id"],
                        "new_value": None,
                        "reason": undo_reason(target),
                    }
                ),
            ],
            ignore_index=True,
        )
    bookkeeping.append_changes(changes.assign(run_id=run_id))
    unlinks = undo.unlinks
    if len(unlinks):
        # The base goes with the link: keep it, so undoing this undo links the pair again with it.
        bookkeeping.keep_replaced_base(unlinks[MEMBER_ID].astype(str), run_id)
        bookkeeping.unlink(unlinks[CONTACT_ID].astype(str).tolist(), undo_reason(target), run_id=run_id)
    bases = landed(undo.restore_base)
    relinks = undo.relinks
    relinked = relinks[MEMBER_ID].astype(str).isin(set(bases[MEMBER_ID].astype(str))).to_numpy(bool)
    relinks = relinks[relinked]
    is_relink = bases[MEMBER_ID].astype(str).isin(set(relinks[MEMBER_ID].astype(str))).to_numpy(bool)
    bookkeeping.link_with_base(relinks, _typed_base(bases[is_relink]), run_id=run_id)
    bookkeeping.save_base(_typed_base(bases[~is_relink]), run_id=run_id)
    queued = (
        queue_edited_since(bookkeeping, undo.skipped, target=target, run_id=run_id)
        if review_edited_since
        else 0
    )
    counts = {k: int(v) for k, v in (value.get("summary") or {}).items()}
    counts.update(
        {
            "restored_values": len(changes),
            "unlinks": len(unlinks),
            "relinks": len(relinks),
            "list_removals": int((lists_result or {}).get("removed") or 0),
            "bases_restored": len(bases),
            "write_failures": len(cc.failed) + len(members.failed),
            "reviews_queued": queued,
        }
    )
    counts.update({f"load_{k}": int(v) for k, v in {**cc.counts, **members.counts}.items()})
    return counts


def queue_edited_since(bookkeeping: Any, skipped: pd.DataFrame, *, target: str, run_id: str) -> int:
    """One review item per person with fields left alone as ``edited_since`` (kind
    ``undo_edited_since``), so a person chooses in the console which side's value stands (take the
    member database's or Constant Contact's value, applied by the next sync, or dismiss). The item
    names the fields and sides, never their values (an email is one). Returns the items new."""
    rows = skipped[skipped["reason"] == SkipReason.EDITED_SINCE] if len(skipped) else skipped
    if rows is None or rows.empty:
        return 0
    items = []
    for (member, contact), group in rows.groupby([MEMBER_ID, CONTACT_ID], dropna=False, sort=True):
        items.append(
            {
                "kind": EDITED_SINCE_REVIEW,
                MEMBER_ID: None if pd.isna(member) else str(member),
                CONTACT_ID: None if pd.isna(contact) else str(contact),
                "detail": {
                    "undo_of": target,
                    "fields": sorted(set(group["field"].astype(str))),
                    "written_to": sorted(set(group["direction"].astype(str))),
                    "why": "edited since the run wrote it: the undo left it alone",
                },
            }
        )
    new = bookkeeping.add_review_items(pd.DataFrame(items), run_id=run_id)
    log.info("Queued %d person(s) with fields edited since %s for review (%d new)", len(items), target, new)
    return len(items)


def _typed_base(frame: pd.DataFrame) -> pd.DataFrame:
    """A base frame back from XCom (all text) with opted_out a bool again."""
    if frame.empty or "opted_out" not in frame:
        return frame
    flag = frame["opted_out"].astype("string").str.lower().isin(["true", "1"]).to_numpy(bool)
    return frame.assign(opted_out=flag)
