"""Compare, link and resolve: the engine fed with this run's extracts and the bookkeeping.

Everything read here is bounded by what changed, not by the size of either side: the base, the
links' other halves and the CC directory are read only for the people this run touches, so 1,000
changes cost the same among 10,000 members as among 1,000,000.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from cc_sync.constant_contact.convert import contacts_to_frame
from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.engine import SyncPlan, normalise_email, plan_hydrated, plan_sync
from cc_sync.engine.normalise import clean_frame_text
from cc_sync.fields import CONTACT_ID, MEMBER_ID
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.member_db.hook import MemberDatabaseHook
from cc_sync.member_db.mapping import MemberMapping
from cc_sync.member_db.validate import mask_name_placeholder

log = logging.getLogger(__name__)

EMAIL = "email"
# Ids per IN (...) list: under every dialect's cap on the values one statement may bind.
ID_CHUNK = 5_000


@dataclass(frozen=True)
class PlanningInputs:
    """The frames :func:`plan_sync` needs, gathered for this run's changed people."""

    members: pd.DataFrame
    contacts: pd.DataFrame
    links: pd.DataFrame
    base: pd.DataFrame
    directory: pd.DataFrame | None  # None: ``contacts`` holds every contact (a full read)
    member_candidates: pd.DataFrame | None
    kept_apart: pd.DataFrame | None = None  # member_id, contact_id: pairs a person kept apart


def gather_inputs(
    members: pd.DataFrame,
    contacts: pd.DataFrame,
    *,
    member_hook: MemberDatabaseHook,
    bookkeeping: Bookkeeping,
    full: bool,
) -> PlanningInputs:
    """Add to the extracts what the engine must know about the people they touch.

    - the links, and the base of every link whose member or contact changed;
    - the current member row behind each changed contact's link (its values and row version, so
      a CC change can be written to it with the optimistic check);
    - members whose email a changed contact holds (to link them, or catch an email collision);
    - the CC directory entries for the emails of changed members (to link a new member to an
      existing contact without an API call, and to catch collisions).

    A full read (``full``) already holds every member in scope and every contact: no lookups.
    """
    if full:
        links = bookkeeping.get_links()
    else:
        links = links_touching(bookkeeping, members[MEMBER_ID], contacts[CONTACT_ID] if len(contacts) else [])
    member_ids = set(members[MEMBER_ID].astype(str))
    contact_ids = set(contacts[CONTACT_ID].astype(str)) if len(contacts) else set()
    touched = links[links[MEMBER_ID].isin(member_ids) | links[CONTACT_ID].isin(contact_ids)]

    hydrate_ids = sorted(set(touched[MEMBER_ID]) - member_ids)
    if hydrate_ids:
        hydrated = [
            frame
            for start in range(0, len(hydrate_ids), ID_CHUNK)
            for frame in member_hook.extract_members(member_ids=hydrate_ids[start : start + ID_CHUNK])
            if len(frame)
        ]
        if hydrated:
            members = pd.concat([members, *hydrated], ignore_index=True)
            log.info("Read %d linked member(s) of changed contacts", sum(len(f) for f in hydrated))

    base = bookkeeping.load_base(touched[MEMBER_ID].tolist()).reset_index()

    directory = candidates = None
    if not full:
        contact_emails = contacts[EMAIL].dropna().tolist() if len(contacts) else []
        candidates = member_hook.lookup_by_email(contact_emails) if contact_emails else None
        member_emails = normalise_email(members[EMAIL]).dropna().unique().tolist()
        directory = bookkeeping.load_directory(member_emails)
        more = links_touching(
            bookkeeping,
            candidates[MEMBER_ID] if candidates is not None else [],
            directory[CONTACT_ID],
        )
        links = pd.concat([links, more], ignore_index=True).drop_duplicates([MEMBER_ID, CONTACT_ID])
    people = [members[MEMBER_ID]] + ([candidates[MEMBER_ID]] if candidates is not None else [])
    pairs = sorted(bookkeeping.kept_apart_pairs(pd.concat(people, ignore_index=True)))
    kept_apart = pd.DataFrame(pairs, columns=[MEMBER_ID, CONTACT_ID], dtype="string")
    return PlanningInputs(members, contacts, links, base, directory, candidates, kept_apart)


def links_touching(
    bookkeeping: Bookkeeping, member_ids: Iterable[Any], contact_ids: Iterable[Any]
) -> pd.DataFrame:
    """The links of these members or contacts: what an incremental run needs, not the whole table."""
    table = bookkeeping.links
    columns = [table.c.member_id, table.c.contact_id, table.c.rule]
    frames = []
    with bookkeeping.engine.connect() as conn:
        for column, ids in ((table.c.member_id, member_ids), (table.c.contact_id, contact_ids)):
            keys = sorted({str(i) for i in ids if not pd.isna(i)})
            for start in range(0, len(keys), ID_CHUNK):
                query = sa.select(*columns).where(column.in_(keys[start : start + ID_CHUNK]))
                frames.append(pd.read_sql(query, conn))
    if not frames:
        return pd.DataFrame({MEMBER_ID: pd.Series([], dtype=str), CONTACT_ID: pd.Series([], dtype=str)})
    return (
        pd.concat(frames, ignore_index=True).drop_duplicates([MEMBER_ID, CONTACT_ID]).reset_index(drop=True)
    )


def make_plan(
    inputs: PlanningInputs,
    *,
    member_hook: MemberDatabaseHook,
    cc_hook: ConstantContactHook | None,
) -> tuple[SyncPlan, pd.DataFrame]:
    """Run the engine; fetch contacts linked this run but not extracted, and plan again.

    :return: the plan, and the contacts it was made from (the extract plus those fetched).
    """
    mapping = member_hook.mapping
    members, base = clean_frame_text(inputs.members), clean_frame_text(inputs.base)
    candidates = None if inputs.member_candidates is None else clean_frame_text(inputs.member_candidates)
    directory = None if inputs.directory is None else as_compared(inputs.directory, mapping)
    kept_apart = frozenset(
        (str(m), str(c))
        for m, c in (
            inputs.kept_apart[[MEMBER_ID, CONTACT_ID]].itertuples(index=False, name=None)
            if inputs.kept_apart is not None
            else ()
        )
    )

    def plan(contacts: pd.DataFrame) -> SyncPlan:
        return plan_sync(
            members,
            as_compared(contacts, mapping),
            inputs.links,
            base,
            directory,
            policies=mapping.policies(),
            direction=mapping.direction,
            member_candidates=candidates,
            kept_apart=kept_apart,
        )

    return plan_hydrated(plan, inputs.contacts, None if cc_hook is None else _contact_reader(cc_hook))


def _contact_reader(cc_hook: ConstantContactHook) -> Callable[[list[str]], pd.DataFrame]:
    """GET each contact linked this run but not extracted; the custom fields' names are read once,
    on the first use (an account without custom fields is not asked again)."""
    custom_fields: dict[str, str] | None = None

    def read(ids: list[str]) -> pd.DataFrame:
        nonlocal custom_fields
        log.info("Reading %d contact(s) linked this run to merge them field by field", len(ids))
        if custom_fields is None:
            custom_fields = cc_hook.custom_field_names()
        return contacts_to_frame((cc_hook.get_contact(cid) for cid in ids), custom_fields)

    return read


def as_compared(contacts: pd.DataFrame, mapping: MemberMapping) -> pd.DataFrame:
    """CC's side as the engine compares it: clean text, and the name placeholder read as no name."""
    return mask_name_placeholder(clean_frame_text(contacts), mapping)


def members_leaving_scope(
    member_hook: MemberDatabaseHook,
    bookkeeping: Bookkeeping,
    *,
    in_scope_ids: Iterable[Any],
    since: Any,
    full: bool,
) -> pd.DataFrame:
    """member_id, contact_id of linked members who are no longer in the mapping's scope.

    A full read compares every link with the members read in scope. An incremental read asks the
    member table only for rows modified since the watermark that fall outside the scope (a lapsed
    or soft-deleted member's row was modified when it left).
    """
    in_scope = {str(m) for m in in_scope_ids}
    if full:
        links = bookkeeping.get_links()
        return links.loc[~links[MEMBER_ID].isin(in_scope), [MEMBER_ID, CONTACT_ID]].reset_index(drop=True)
    mapping = member_hook.mapping
    if since is None or not mapping.last_modified_column:
        # Without a last-modified column a member leaving scope is found by the next full reconcile.
        return pd.DataFrame({MEMBER_ID: pd.Series([], dtype=str), CONTACT_ID: pd.Series([], dtype=str)})
    table = member_hook.table
    id_column = table.c[mapping.member_id_column]
    query = sa.select(id_column).where(
        table.c[mapping.last_modified_column] >= since, sa.not_(mapping.where_in_scope(table))
    )
    with member_hook.get_engine().connect() as conn:
        left = [str(m) for m in conn.execute(query).scalars()]
    if not left:
        return pd.DataFrame({MEMBER_ID: pd.Series([], dtype=str), CONTACT_ID: pd.Series([], dtype=str)})
    links = links_touching(bookkeeping, left, [])
    return links.loc[links[MEMBER_ID].isin(left), [MEMBER_ID, CONTACT_ID]].reset_index(drop=True)
