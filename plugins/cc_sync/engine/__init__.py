"""The pure pandas sync engine: link, compare and resolve, with no Airflow and no I/O.

One call computes a run's plan::

    from cc_sync.engine import plan_sync, check_mass_change
    plan = plan_sync(members, contacts, links, base, directory,
                     policies=policies, direction=SyncDirection.TWO_WAY,
                     member_candidates=candidates)
    problems = check_mass_change(plan, linked_count, max_share=0.05)

Inputs (column names from ``cc_sync.fields``; ids are strings, other types are coerced):

``members``
    The member records extracted this run (all of them in a first run, the changed ones later):
    member_id, the mapped canonical fields, updated_at (tz-aware UTC), opted_out (bool) and
    row_version (opaque; carried to ``member_updates`` for the loader's optimistic check).
``contacts``
    The CC contacts extracted this run: contact_id, canonical fields, updated_at, opted_out,
    opted_out_at, deleted (bool).
``links``
    member_id, contact_id: the existing links. A link is kept by ids, so it survives email changes.
``base``
    member_id, contact_id, the canonical fields and opted_out as both sides agreed after the last
    successful sync of that link (optionally row_version). For a linked pair where only one side
    was extracted, the other side is taken to be unchanged since the base.
``directory``
    Every CC contact the sync knows (contact_id, email, first_name, last_name, opted_out, deleted):
    the mirror that lets a new member be linked without an API call, and new emails be checked
    for collisions. ``None`` means "only this run's contacts".
``member_candidates``
    Full member rows (the same columns as ``members``) whose normalised email equals the email
    of a contact extracted this run. They let a changed CC contact link to an unlinked member
    (they are never created in CC) and let a CC email change be checked against every member.
``policies``
    ``{canonical field: FieldPolicy}``: the fields the mapping syncs, each with its direction,
    owner and blank rule. ``direction`` is the sync's overall ``SyncDirection``.

If ``plan.hydrate`` lists contacts, members were linked to contacts not extracted this run: fetch
those contacts, add them to ``contacts`` and plan again so the new links are merged field by field
(``plan_hydrated`` does this with a callback that reads contacts).

A link with no base row is merged as a first merge (both sides count as changed from empty, so
values fill blanks and conflicts go by recency), exactly like a link made in this run. So a DAG may
split the work: plan once to get ``new_links`` (plus reviews, creates, rejects), store the links,
then plan again with them; or simply take the single plan.

Steps: ``link`` (matching and review), ``compare`` (the full-length, vectorised three-way pass),
``resolve`` (field-by-field decisions on the changed pairs), ``plan`` (the orchestration),
``guard`` (mass-change rails); ``normalise`` holds the email and name normalisation everyone uses;
``model`` the enums and the ``SyncPlan``.
"""

from __future__ import annotations

from cc_sync.engine.guard import check_mass_change
from cc_sync.engine.model import (
    ChangeReason,
    LinkRule,
    RejectReason,
    ReviewKind,
    Side,
    SyncPlan,
    UnlinkReason,
    WriteDirection,
)
from cc_sync.engine.normalise import normalise_email, normalise_name
from cc_sync.engine.plan import MAX_HYDRATE_ROUNDS, default_policies, plan_hydrated, plan_sync

__all__ = [
    "MAX_HYDRATE_ROUNDS",
    "ChangeReason",
    "LinkRule",
    "RejectReason",
    "ReviewKind",
    "Side",
    "SyncPlan",
    "UnlinkReason",
    "WriteDirection",
    "check_mass_change",
    "default_policies",
    "normalise_email",
    "normalise_name",
    "plan_hydrated",
    "plan_sync",
]
