"""The ``list_rules`` step of the scheduled sync: keep each rule's list equal to its segment.

Runs after the sync's load and record (its links and consent are then current). Per rule of the
mapping's ``list_rules``, the fewest calls: the account's lists once (with their sizes), the list's
members (one contact export for a list of 4+ pages, else page by page: ``send.list_members``),
then the bulk membership activities (500 contacts each) for what :func:`plan.plan_rule` says.

Every rule is planned before anything is written. The guard rail (``engine.guard``): a rule that
would take more than ``max_share`` of its list off it stops the step, naming the rule, before any
write, unless the run allows a mass change. A dry run logs the plans and keeps them with the sync's
(``planned_changes``); it writes nothing to Constant Contact (a list that does not exist yet is not
created). What a run writes goes to the change log (``list_membership``, reason
``list_rule:<segment>``), so the console shows it and the undo can take the added contacts off.
A rerun reads the list again: what is already done is not done twice.
"""

from __future__ import annotations

import logging

import pandas as pd
import sqlalchemy as sa

from cc_sync.constant_contact.errors import ConstantContactError
from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.constant_contact.models import ContactList
from cc_sync.engine.guard import check_list_removals
from cc_sync.fields import CONTACT_ID, MEMBER_ID, OPTED_OUT
from cc_sync.list_rules.plan import RulePlan, plan_rule
from cc_sync.member_db.mapping import ListRule
from cc_sync.send_list.send import find_list_in, list_members
from cc_sync.sync.resources import SyncResources
from cc_sync.sync.steps import MassChangeRefused

log = logging.getLogger(__name__)


def _segment_members(resources: SyncResources, segment: str) -> pd.DataFrame:
    chunks = [c[[MEMBER_ID, OPTED_OUT]] for c in resources.members.extract_members(segment=segment)]
    if not chunks:
        return pd.DataFrame({MEMBER_ID: pd.Series([], dtype=str), OPTED_OUT: pd.Series([], dtype=bool)})
    return pd.concat(chunks, ignore_index=True)


def _opted_out(resources: SyncResources) -> tuple[set[str], set[str]]:
    """(member ids, contact ids) opted out anywhere the bookkeeping knows: the consent ledger (either
    side) and the CC directory (every contact a run read)."""
    bookkeeping = resources.bookkeeping
    ledger = bookkeeping.get_opt_outs()
    members = {str(m) for m in ledger[MEMBER_ID].dropna()} if len(ledger) else set()
    contacts = {str(c) for c in ledger[CONTACT_ID].dropna()} if len(ledger) else set()
    directory = bookkeeping.cc_directory
    with bookkeeping.engine.connect() as conn:
        contacts |= {
            str(cid)
            for cid in conn.execute(
                sa.select(directory.c[CONTACT_ID]).where(directory.c[OPTED_OUT].is_(True))
            ).scalars()
        }
    return members, contacts


def _target(
    hook: ConstantContactHook, lists: list[ContactList], rule: ListRule, *, dry_run: bool
) -> ContactList | None:
    """The rule's list; created (empty) when no list has that name, except on a dry run (None)."""
    found = find_list_in(lists, rule.list_ref)
    if found is not None or dry_run:
        return found
    created = hook.get_or_create_list(rule.list_ref, description=f"Kept by the sync: segment {rule.segment}")
    log.info("List rule %s: created list %r (%s)", rule.segment, created.name, created.list_id)
    return ContactList(created.list_id, created.name, created.description, 0)


def plan_rules(resources: SyncResources, *, dry_run: bool) -> list[RulePlan]:
    hook = resources.cc
    lists = list(hook.iter_lists(include_count=True))
    links = resources.bookkeeping.get_links()
    opted_out_members, opted_out_contacts = _opted_out(resources)
    plans = []
    for rule in resources.mapping.list_rules:
        target = _target(hook, lists, rule, dry_run=dry_run)
        if target is None:
            current = pd.DataFrame(
                {CONTACT_ID: pd.Series([], dtype=str), OPTED_OUT: pd.Series([], dtype=bool)}
            )
        else:
            current = list_members(hook, target.list_id, expected=target.membership_count or 0)
        plan = plan_rule(
            segment=rule.segment,
            # A dry run does not create a missing list: its plan names the list it would create.
            list_id=target.list_id if target else f"(new list) {rule.list_ref}",
            list_name=target.name if target else rule.list_ref,
            segment_members=_segment_members(resources, rule.segment),
            links=links,
            list_contact_ids=current[CONTACT_ID],
            opted_out_members=opted_out_members,
            # An unsubscribed contact the list's read shows, known to the directory or not.
            opted_out_contacts=opted_out_contacts | set(current.loc[current[OPTED_OUT], CONTACT_ID]),
        )
        log.info("List rule %s -> list %r: %s", rule.segment, plan.list_name, plan.counts)
        plans.append(plan)
    return plans


def _guard(plans: list[RulePlan], *, max_share: float) -> list[str]:
    problems = []
    for plan in plans:
        problem = check_list_removals(len(plan.removes), plan.list_size, max_share)
        if problem:
            problems.append(f"list rule {plan.segment} (list {plan.list_name!r}) {problem}")
    return problems


def _run_activities(hook: ConstantContactHook, plan: RulePlan) -> None:
    for ids, write in (
        (plan.adds[CONTACT_ID], hook.add_list_memberships),
        (plan.removes[CONTACT_ID], hook.remove_list_memberships),
    ):
        if not len(ids):
            continue
        activities = write(list(ids.astype(str)), [plan.list_id], resubmit_failed=1)
        failed = [a for a in activities if not a.state.is_success()]
        if failed:
            # Nothing is logged for this rule: the retry reads the list again and does what is left.
            raise ConstantContactError(
                f"list rule {plan.segment}: {len(failed)} membership activit(ies) on list "
                f"{plan.list_id} ended {failed[0].state.value}; the task's retry finishes the rule"
            )


def _record_dry_run(resources: SyncResources, plans: list[RulePlan], *, run_id: str, counts: dict) -> None:
    """Keep the rules' plans beside the sync's dry-run plan (appended to it, not replacing it)."""
    bookkeeping = resources.bookkeeping
    rows = [p.change_log_rows() for p in plans if len(p.changes)]
    if rows:
        kept = bookkeeping.get_planned_changes(run_id)
        kept = kept.drop(columns=[c for c in ("id", "run_id") if c in kept.columns])
        bookkeeping.save_planned_changes(run_id, pd.concat([kept, *rows], ignore_index=True))
    run = bookkeeping.get_run(run_id) or {}
    bookkeeping.set_run_counts(run_id, {**(run.get("counts") or {}), **counts})


def apply_list_rules(
    resources: SyncResources,
    *,
    run_id: str,
    dry_run: bool,
    allow_mass_change: bool,
    max_share: float,
) -> dict[str, int]:
    """Plan every rule, check the guard rail, then write (or, on a dry run, keep the plans).

    :return: counts: rules, list_rule_added, list_rule_removed, list_rule_opted_out_not_added,
        list_rule_not_linked, changes_logged.
    """
    if not resources.mapping.list_rules:
        return {"list_rules": 0}
    hook = resources.cc
    plans = plan_rules(resources, dry_run=dry_run)
    counts = {
        "list_rules": len(plans),
        "list_rule_added": sum(len(p.adds) for p in plans),
        "list_rule_removed": sum(len(p.removes) for p in plans),
        "list_rule_opted_out_not_added": sum(p.counts["opted_out_not_added"] for p in plans),
        "list_rule_not_linked": sum(p.counts["not_linked"] for p in plans),
    }
    problems = _guard(plans, max_share=max_share)
    if dry_run:
        for problem in problems:
            log.warning("A real run would be refused by the guard rail: %s", problem)
        _record_dry_run(resources, plans, run_id=run_id, counts=counts)
        log.info("Dry run: no list changed. List rules' plan: %s", counts)
        return counts
    if problems and not allow_mass_change:
        raise MassChangeRefused(
            "refusing to change the lists: " + "; ".join(problems) + ". No list was changed. If this is "
            "intended, trigger the sync again with allow_mass_change on."
        )
    for problem in problems:
        log.warning("Mass change allowed by the run's params: %s", problem)
    logged = 0
    for plan in plans:
        if plan.changes.empty:
            continue
        _run_activities(hook, plan)
        logged += resources.bookkeeping.append_changes(plan.change_log_rows().assign(run_id=run_id))
    counts["changes_logged"] = logged
    log.info("List rules applied: %s", counts)
    return counts
