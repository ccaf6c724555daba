"""The sync DAG's steps between extract and load, as plain functions of XCom values.

The DAG file wraps each in a ``@task``; tests call them directly. Values in and out are what the
object-storage XCom backend stores: dicts of DataFrames, strings, numbers.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from datetime import datetime
from typing import Any

import pandas as pd

from cc_sync import job
from cc_sync.engine import SyncPlan, check_mass_change
from cc_sync.engine.compare import NEW_LINK, align_pairs, changed_pairs
from cc_sync.engine.model import empty_frame
from cc_sync.errors import NotRetryableError
from cc_sync.fields import CONTACT_ID, MEMBER_ID
from cc_sync.member_db.bookkeeping import ChangeDirection, RunKind
from cc_sync.member_db.mapping import LeavingScope
from cc_sync.sync import lease
from cc_sync.sync.decisions import apply_decisions, include_people
from cc_sync.sync.loading import LEAVING_SCOPE, LoadResult
from cc_sync.sync.outgoing import screen_outgoing
from cc_sync.sync.planning import PlanningInputs, gather_inputs, make_plan, members_leaving_scope
from cc_sync.sync.recording import record_run
from cc_sync.sync.resources import SyncResources
from cc_sync.sync.window import SyncWindow, plan_window
from cc_sync.sync.xcom import plan_from_xcom, plan_to_xcom
from cc_sync.timeutil import parse_utc

log = logging.getLogger(__name__)


class MassChangeRefused(NotRetryableError, RuntimeError):
    """The run would change more people than the guard rail allows; nothing was written."""


# The step API's names for the lease (cc_sync.sync.lease holds it for the sync and the send-list).
acquire_lease = lease.take
release_lease = lease.give_back


def open_window(
    resources: SyncResources,
    *,
    run_id: str,
    dag_id: str,
    now: datetime,
    full_reconcile: bool,
    reset_watermark_to: str | None,
    dry_run: bool = False,
) -> dict[str, Any]:
    window = plan_window(
        resources.bookkeeping, now=now, full_reconcile=full_reconcile, reset_watermark_to=reset_watermark_to
    )
    kind = RunKind.DRY_RUN.value if dry_run else window.mode.value
    job.start(resources, run_id=run_id, dag_id=dag_id, kind=kind)
    log.info("Sync window: %s", window.as_dict())
    return {**window.as_dict(), "dry_run": bool(dry_run)}


def window_from_xcom(value: dict[str, Any]) -> SyncWindow:
    names = {f.name for f in fields(SyncWindow)}
    return SyncWindow(**{k: v for k, v in value.items() if k in names})


def _inputs_to_xcom(inputs: PlanningInputs) -> dict[str, Any]:
    return {
        f.name: getattr(inputs, f.name) for f in fields(PlanningInputs) if getattr(inputs, f.name) is not None
    }


def _inputs_from_xcom(value: dict[str, Any]) -> PlanningInputs:
    return PlanningInputs(**{f.name: value.get(f.name) for f in fields(PlanningInputs)})


def compare(
    resources: SyncResources,
    members: pd.DataFrame,
    contacts: pd.DataFrame,
    window: dict[str, Any],
    run_id: str | None = None,
) -> dict[str, Any]:
    """Gather what the changed people need and say, per linked pair, which side changed what.

    First the console's pending decisions are applied (not on a dry run, which writes nothing):
    the people they concern join this run's extracts, so the run merges them now.
    """
    if run_id is not None and not window.get("dry_run"):
        applied = apply_decisions(resources, run_id)
        members, contacts = include_people(resources, members, contacts, applied)
        if applied.applied or applied.failed:
            log.info("Review decisions: %d applied, %d could not be", applied.applied, applied.failed)
    inputs = gather_inputs(
        members,
        contacts,
        member_hook=resources.members,
        bookkeeping=resources.bookkeeping,
        full=window_from_xcom(window).full,
    )
    diff = describe_changes(inputs, list(resources.mapping.policies()))
    window_ = window_from_xcom(window)
    leaving = members_leaving_scope(
        resources.members,
        resources.bookkeeping,
        in_scope_ids=members[MEMBER_ID],
        since=parse_utc(window_.members_since),
        full=window_.full,
    )
    log.info(
        "Compared: %d member(s) and %d contact(s) read; %d linked pair(s) changed (%d field change(s))",
        len(members),
        len(contacts),
        diff[[MEMBER_ID, CONTACT_ID]].drop_duplicates().shape[0] if len(diff) else 0,
        len(diff),
    )
    if len(leaving):
        log.info("%d linked member(s) left the mapping's scope", len(leaving))
    return {
        **_inputs_to_xcom(inputs),
        "diff": diff,
        LEAVING_SCOPE: leaving,
    }


def describe_changes(inputs: PlanningInputs, field_names: list[str]) -> pd.DataFrame:
    """member_id, contact_id, field, side: each field of a linked pair that moved from its base."""
    links = inputs.links.assign(**{NEW_LINK: False})
    if links.empty:
        return empty_frame((MEMBER_ID, CONTACT_ID, "field", "side"))
    aligned = align_pairs(links, inputs.members, inputs.contacts, inputs.base)
    aligned = aligned.select(changed_pairs(aligned, field_names))
    rows = []
    for name in field_names:
        base = aligned.aligned("base", name).to_pandas()
        for side, frame in (("member_db", aligned.members), ("cc", aligned.contacts)):
            if name not in frame.columns:
                continue
            present = aligned.has_member if side == "member_db" else aligned.has_contact
            values = aligned.aligned("member" if side == "member_db" else "contact", name).to_pandas()
            moved = present & (values.astype("string") != base.astype("string")).fillna(
                values.notna() | base.notna()
            ).to_numpy(dtype=bool)
            if moved.any():
                rows.append(aligned.pairs.loc[moved, [MEMBER_ID, CONTACT_ID]].assign(field=name, side=side))
    if not rows:
        return empty_frame((MEMBER_ID, CONTACT_ID, "field", "side"))
    return pd.concat(rows, ignore_index=True).astype("string")


def link(resources: SyncResources, compared: dict[str, Any]) -> dict[str, Any]:
    """Link the unlinked; read from CC only the contacts linked this run that were not extracted."""
    inputs = _inputs_from_xcom(compared)
    plan, contacts = make_plan(inputs, member_hook=resources.members, cc_hook=resources.cc)
    log.info(
        "Linked %d pair(s); %d to review; %d member(s) to create in Constant Contact",
        len(plan.new_links),
        len(plan.reviews),
        len(plan.cc_creates),
    )
    return {**compared, "contacts": contacts, "new_links": plan.new_links}


def resolve(resources: SyncResources, linked: dict[str, Any]) -> dict[str, Any]:
    """Merge every changed or newly linked pair field by field into the plan the load writes."""
    plan, _ = make_plan(_inputs_from_xcom(linked), member_hook=resources.members, cc_hook=None)
    plan = screen_outgoing(plan, resources.mapping)
    log.info("Plan: %s", {k: v for k, v in plan.summary().items() if v})
    leaving = linked.get(LEAVING_SCOPE)
    if leaving is not None and resources.mapping.cc_scope.leaving_scope == LeavingScope.KEEP:
        leaving = leaving.iloc[0:0]
    return {**plan_to_xcom(plan), LEAVING_SCOPE: leaving if leaving is not None else pd.DataFrame()}


def guard(
    resources: SyncResources,
    plan_value: dict[str, Any],
    *,
    allow_mass_change: bool,
    max_share: float,
    dry_run: bool = False,
    run_id: str | None = None,
) -> dict[str, int]:
    """Stop before any write a run that would touch more than ``max_share`` of the linked people.

    A dry run is not stopped (it writes nothing): its plan is kept for a person to read, with the
    guard rail's objections in its log.
    """
    plan = plan_from_xcom(plan_value)
    linked = len(resources.bookkeeping.get_links())
    problems = check_mass_change(plan, linked, max_share)
    summary = plan.summary()
    if dry_run:
        for problem in problems:
            log.warning("A real run would be refused by the guard rail: %s", problem)
        record_dry_run(resources, plan, run_id=run_id or "", mass_change_refused=bool(problems))
        return summary
    if problems and not allow_mass_change:
        raise MassChangeRefused(
            "refusing to write: " + "; ".join(problems) + ". Nothing was written. If this is intended, "
            "trigger the sync again with allow_mass_change on."
        )
    for problem in problems:
        log.warning("Mass change allowed by the run's params: %s", problem)
    return summary


def planned_rows(plan: SyncPlan) -> pd.DataFrame:
    """A plan in the change log's shape: every value it would write, and every link it would make."""
    links = plan.new_links
    link_rows = pd.DataFrame(
        {
            "direction": ChangeDirection.LINK.value,
            MEMBER_ID: links[MEMBER_ID],
            CONTACT_ID: links[CONTACT_ID],
            "field": "link",
            "old_value": None,
            "new_value": links[CONTACT_ID],
            "reason": links["rule"],
        }
    )
    frames = [f for f in (plan.changes, link_rows) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else plan.changes


def record_dry_run(
    resources: SyncResources, plan: SyncPlan, *, run_id: str, mass_change_refused: bool
) -> None:
    """Keep a dry run's plan and counts in the bookkeeping, and show it in the log as a table."""
    rows = planned_rows(plan)
    resources.bookkeeping.save_planned_changes(run_id, rows)
    counts = {k: v for k, v in plan.summary().items() if v}
    counts["planned_changes"] = len(rows)
    counts["mass_change_refused"] = int(mass_change_refused)
    resources.bookkeeping.set_run_counts(run_id, counts)
    if len(rows):
        table = rows.groupby(["direction", "field", "reason"], dropna=False).size().rename("values")
        log.info("Dry run: nothing written. The plan (kept in the bookkeeping):\n%s", table.to_string())
    else:
        log.info("Dry run: nothing written; nothing to write")


def record(
    resources: SyncResources,
    plan_value: dict[str, Any],
    *,
    run_id: str,
    window: dict[str, Any],
    contacts: pd.DataFrame,
    cc_result: dict[str, Any] | None,
    member_result: dict[str, Any] | None,
) -> dict[str, int]:
    counts = record_run(
        resources.bookkeeping,
        plan_from_xcom(plan_value),
        run_id=run_id,
        window=window_from_xcom(window),
        contacts=contacts,
        cc=LoadResult.from_xcom(cc_result),
        members=LoadResult.from_xcom(member_result),
        leaving_scope=plan_value.get(LEAVING_SCOPE),
        main_list_name=resources.mapping.cc_scope.main_list,
    )
    return counts


def contacts_changed(counts: dict[str, int] | None) -> bool:
    """Did the run write anything to Constant Contact (for the Asset downstream DAGs wait on)?"""
    counts = counts or {}
    return any(counts.get(k, 0) for k in ("cc_updates", "cc_puts", "cc_creates"))
