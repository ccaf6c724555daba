"""The whole engine in one call: link, compare and resolve one run's extracts into a SyncPlan.

``plan_sync`` is what the DAG's tasks (or a user's own DAG) call; ``link``, ``compare`` and
``resolve`` are its steps, each usable alone. Nothing here reads or writes anything: the plan says
what the loader must write, and why, so a dry run is simply a plan that is not loaded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from cc_sync.engine.align import duplicated, is_in, positions
from cc_sync.engine.compare import NEW_LINK, align_pairs, changed_pairs
from cc_sync.engine.link import CREATABLE, find_links
from cc_sync.engine.model import (
    CHANGES_COLUMNS,
    CLEARED_FIELDS,
    CONTACT_ID,
    DETAIL,
    DIRECTION,
    EMAIL_CHANGE,
    FIELD,
    MEMBER_ID,
    NEW_LINKS_COLUMNS,
    NEW_VALUE,
    OLD_VALUE,
    REASON,
    REJECTED_COLUMNS,
    REVIEWS_COLUMNS,
    SOURCE,
    UNLINKS_COLUMNS,
    ChangeReason,
    RejectReason,
    SyncPlan,
    WriteDirection,
    empty_frame,
)
from cc_sync.engine.normalise import STRING, as_string, constant_text, is_blank
from cc_sync.engine.resolve import EmailOwners, resolve_pairs
from cc_sync.fields import DELETED, OPTED_OUT, field_max_length, is_known_field
from cc_sync.policy import FieldPolicy, SyncDirection

EMAIL = "email"
# Rounds of "read the contacts linked this run but not extracted, plan again": one is enough in
# practice (a contact read can link a member on to another contact not read, in theory only).
MAX_HYDRATE_ROUNDS = 2
_POOL_COLUMNS = (CONTACT_ID, EMAIL, "first_name", "last_name", OPTED_OUT, DELETED)


def default_policies(fields: list[str] | tuple[str, ...]) -> dict[str, FieldPolicy]:
    """Two-way, latest-wins, blanks-never-wipe policies for ``fields``."""
    return {name: FieldPolicy() for name in fields}


def _with_string_ids(frame: pd.DataFrame, id_columns: tuple[str, ...], what: str) -> pd.DataFrame:
    if id_columns[0] not in frame.columns and frame.index.name == id_columns[0]:
        frame = frame.reset_index()  # keyed by its index, as the bookkeeping may hand it over
    missing = [c for c in id_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks the column(s) {', '.join(missing)}")
    changed = {c: as_string(frame[c]) for c in id_columns if frame[c].dtype != STRING}
    return frame.assign(**changed) if changed else frame


def _drop_bad_rows(
    frame: pd.DataFrame, id_column: str, pos: np.ndarray, what: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop rows without an id, and repeats of an id (the first stays); report both.

    ``pos`` are the links' positions in ``frame``: when they reach every row, every row is the
    first of its id and the (costly, unsorted) duplicate scan is skipped.
    """
    reached = np.zeros(len(frame), dtype=bool)
    reached[pos[pos >= 0]] = True
    if reached.all():
        return frame, empty_frame(REJECTED_COLUMNS)
    missing = frame[id_column].isna().to_numpy()
    repeated = duplicated(frame[id_column]) & ~missing
    bad = missing | repeated
    if not bad.any():
        return frame, empty_frame(REJECTED_COLUMNS)
    other = CONTACT_ID if id_column == MEMBER_ID else MEMBER_ID
    detail = np.where(missing[bad], f"{what}: no id", f"{what}: id repeated; the first row kept")
    rejected = pd.DataFrame(
        {
            id_column: frame.loc[bad, id_column].to_numpy(),
            other: pd.NA,
            FIELD: id_column,
            REASON: np.where(missing[bad], RejectReason.MISSING_ID.value, RejectReason.DUPLICATE_ID.value),
            DETAIL: detail,
        },
        columns=list(REJECTED_COLUMNS),
    )
    return frame[~bad].reset_index(drop=True), rejected


def _pool(directory: pd.DataFrame | None, contacts: pd.DataFrame) -> pd.DataFrame:
    """Every CC contact a member might match: this run's contacts first, then the directory."""
    frames = [f[[c for c in _POOL_COLUMNS if c in f.columns]] for f in (contacts, directory) if f is not None]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=STRING) for c in _POOL_COLUMNS})
    pool = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return pool[~duplicated(pool[CONTACT_ID])]


def _creates(
    members: pd.DataFrame, ids: pd.Series, policies: dict[str, FieldPolicy], direction: SyncDirection
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Rows to import as new contacts, their change-log rows, and over-long values left out."""
    rows = members[is_in(members[MEMBER_ID], ids)].reset_index(drop=True)
    fields = [n for n, p in policies.items() if p.flows_to_cc(direction) and n in rows.columns]
    if EMAIL not in fields:
        fields.insert(0, EMAIL)
    creates = rows[[MEMBER_ID, *fields]].copy()
    creates[EMAIL] = as_string(creates[EMAIL]).str.strip()
    rejected = []
    logged: list[pd.DataFrame] = []
    # Column by column, each as Arrow text once: melting the fields into one object column cost
    # several times the rest of the first sync at a million members (issue 15).
    for name in fields:
        text = _as_text(creates[name])
        limit = field_max_length(name)
        if limit is not None and name != EMAIL:
            too_long = (text.str.len() > limit).fillna(False).to_numpy(dtype=bool)
            if too_long.any():
                rejected.append(
                    pd.DataFrame(
                        {
                            MEMBER_ID: creates.loc[too_long, MEMBER_ID].to_numpy(),
                            CONTACT_ID: pd.NA,
                            FIELD: name,
                            REASON: RejectReason.TOO_LONG.value,
                            DETAIL: f"longer than {limit} characters; left out",
                        },
                        columns=list(REJECTED_COLUMNS),
                    )
                )
                creates[name] = creates[name].where(~too_long)
                text = text.where(~too_long)
        kept = ~is_blank(text)
        n_kept = int(np.count_nonzero(kept))
        if n_kept:
            # Every column Arrow text from the start: constants as Python strings would be millions
            # of objects, converted again when the plan is tidied.
            logged.append(
                pd.DataFrame(
                    {
                        DIRECTION: constant_text(WriteDirection.TO_CC.value, n_kept),
                        MEMBER_ID: as_string(creates[MEMBER_ID])[kept].reset_index(drop=True).array,
                        CONTACT_ID: constant_text(None, n_kept),
                        FIELD: constant_text(name, n_kept),
                        OLD_VALUE: constant_text(None, n_kept),
                        NEW_VALUE: text[kept].reset_index(drop=True).array,
                        REASON: constant_text(ChangeReason.CREATED.value, n_kept),
                    },
                    columns=list(CHANGES_COLUMNS),
                )
            )
    changes = pd.concat(logged, ignore_index=True) if logged else empty_frame(CHANGES_COLUMNS)
    return (
        creates,
        changes,
        (pd.concat(rejected, ignore_index=True) if rejected else empty_frame(REJECTED_COLUMNS)),
    )


def _as_text(values: pd.Series) -> pd.Series:
    """Values as Arrow text, each written as ``str()`` writes it (an Int64 month as "5")."""
    if values.dtype == STRING:
        return values
    return values.astype(object).astype(STRING)


def _created_base(
    creates: pd.DataFrame, policies: dict[str, FieldPolicy], like: pd.DataFrame
) -> pd.DataFrame:
    """The base of a contact about to be created: the values it is created with (contact_id NA until
    the load learns it). With it, the first merge after the creation is three-way like any other.

    Text goes in as the text dtype of ``like`` (the linked pairs' new base it joins), Arrow to Arrow:
    as Python objects, a few hundred thousand creations cost a second at a first sync.
    """
    missing = pd.Series(pd.NA, index=creates.index, dtype=object)
    columns: dict[str, object] = {MEMBER_ID: creates[MEMBER_ID].to_numpy(), CONTACT_ID: pd.NA}
    for name in policies:
        values = creates[name] if name in creates.columns else missing
        target = like[name].dtype if len(like) and name in like.columns else None
        if isinstance(target, pd.StringDtype) and isinstance(values.dtype, pd.StringDtype):
            columns[name] = values.astype(target).array
        else:
            columns[name] = values.astype(object).to_numpy()
    columns[OPTED_OUT] = False
    return pd.DataFrame(columns, index=range(len(creates)))


def _concat(frames: list[pd.DataFrame], like: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return like.iloc[:0]
    return pd.concat(frames, ignore_index=True)


def _tidy(frame: pd.DataFrame, text_columns: tuple[str, ...]) -> pd.DataFrame:
    """Ids, kinds, reasons and logged values as pyarrow strings with NA (one "missing" marker)."""
    present = [c for c in text_columns if c in frame.columns and frame[c].dtype != STRING]
    if not present or not len(frame):
        return frame
    return frame.astype(dict.fromkeys(present, STRING))


def _import_keys_from_directory(
    cc_updates: pd.DataFrame, contacts: pd.DataFrame, directory: pd.DataFrame | None
) -> pd.DataFrame:
    """Key import rows of contacts not extracted this run by the directory's email, not the base's.

    The bulk import finds a contact by its email alone. For a contact extracted this run the
    resolver already used the email CC holds; for the others the directory (the sync's mirror of
    CC) knows it better than the base, which can lag behind CC (a CC value the sync did not take).
    """
    if directory is None or not len(cc_updates) or EMAIL not in directory.columns:
        return cc_updates
    stale = positions(cc_updates[CONTACT_ID], contacts[CONTACT_ID]) < 0
    if not stale.any():
        return cc_updates
    found = positions(cc_updates[CONTACT_ID], directory[CONTACT_ID])
    mirrored = directory[EMAIL].astype(object).to_numpy()[np.maximum(found, 0)]
    use = stale & (found >= 0) & pd.notna(mirrored)
    emails = cc_updates[EMAIL].astype(object).to_numpy().copy()
    emails[use] = mirrored[use]
    return cc_updates.assign(**{EMAIL: emails})


def plan_sync(
    members: pd.DataFrame,
    contacts: pd.DataFrame,
    links: pd.DataFrame,
    base: pd.DataFrame,
    directory: pd.DataFrame | None = None,
    *,
    policies: dict[str, FieldPolicy],
    direction: SyncDirection = SyncDirection.TWO_WAY,
    member_candidates: pd.DataFrame | None = None,
    kept_apart: frozenset[tuple[str, str]] = frozenset(),
) -> SyncPlan:
    """Compute what this run writes on both sides. See the package docstring for the inputs;
    ``kept_apart`` holds (member_id, contact_id) pairs the linker must never link nor queue."""
    unknown = [name for name in policies if not is_known_field(name)]
    if unknown:
        raise ValueError(f"policies name unknown fields: {', '.join(sorted(unknown))}")
    members = _with_string_ids(members, (MEMBER_ID,), "members")
    contacts = _with_string_ids(contacts, (CONTACT_ID,), "contacts")
    links = _with_string_ids(links, (MEMBER_ID, CONTACT_ID), "links")
    base = (
        _with_string_ids(base, (MEMBER_ID, CONTACT_ID), "base")
        if len(base.columns)
        else base.assign(**{MEMBER_ID: pd.Series([], dtype=STRING), CONTACT_ID: pd.Series([], dtype=STRING)})
    )
    candidates = None
    if member_candidates is not None and len(member_candidates):
        candidates = _with_string_ids(member_candidates, (MEMBER_ID,), "member_candidates")
    if directory is not None:
        directory = _with_string_ids(directory, (CONTACT_ID,), "directory")

    # Existing links: where each finds its member and contact this run.
    links = links[[MEMBER_ID, CONTACT_ID]].reset_index(drop=True)
    m_pos = positions(links[MEMBER_ID], members[MEMBER_ID])
    c_pos = positions(links[CONTACT_ID], contacts[CONTACT_ID])
    members, rejected_members = _drop_bad_rows(members, MEMBER_ID, m_pos, "members")
    if len(rejected_members):
        m_pos = positions(links[MEMBER_ID], members[MEMBER_ID])
    contacts, rejected_contacts = _drop_bad_rows(contacts, CONTACT_ID, c_pos, "contacts")
    if len(rejected_contacts):
        c_pos = positions(links[CONTACT_ID], contacts[CONTACT_ID])
    linked_member = np.zeros(len(members), dtype=bool)
    linked_member[m_pos[m_pos >= 0]] = True

    # Link the unlinked: extracted members (which may become contacts) and looked-up candidates.
    unlinked = members[~linked_member].assign(**{CREATABLE: True})
    if candidates is not None:
        extra = candidates[
            (positions(candidates[MEMBER_ID], links[MEMBER_ID]) < 0)
            & (positions(candidates[MEMBER_ID], members[MEMBER_ID]) < 0)
        ]
        unlinked = pd.concat([unlinked, extra.assign(**{CREATABLE: False})], ignore_index=True)
    linking = None
    if len(unlinked):
        known_emails = [f[[MEMBER_ID, EMAIL]] for f in (members[linked_member], base) if EMAIL in f.columns]
        linked_members = (
            pd.concat(known_emails, ignore_index=True)
            if known_emails
            else pd.DataFrame({MEMBER_ID: pd.Series([], dtype=STRING), EMAIL: pd.Series([], dtype=STRING)})
        )
        linking = find_links(
            unlinked,
            _pool(directory, contacts),
            linked_members,
            links[CONTACT_ID],
            may_create=direction != SyncDirection.FROM_CC,
            kept_apart=kept_apart,
        )

    pairs = links.assign(**{NEW_LINK: False})
    hydrate = pd.Series([], dtype=STRING)
    if linking is not None and len(linking.new_links):
        new = linking.new_links[[MEMBER_ID, CONTACT_ID]]
        new_c_pos = positions(new[CONTACT_ID], contacts[CONTACT_ID])
        hydrate = new.loc[new_c_pos < 0, CONTACT_ID].reset_index(drop=True)
        new, new_c_pos = new[new_c_pos >= 0].reset_index(drop=True), new_c_pos[new_c_pos >= 0]
        from_candidates = positions(new[MEMBER_ID], members[MEMBER_ID]) < 0
        if from_candidates.any() and candidates is not None:
            looked_up = candidates[is_in(candidates[MEMBER_ID], new.loc[from_candidates, MEMBER_ID])]
            members = pd.concat([members, looked_up], ignore_index=True)
        pairs = pd.concat([pairs, new.assign(**{NEW_LINK: True})], ignore_index=True)
        m_pos = np.concatenate([m_pos, positions(new[MEMBER_ID], members[MEMBER_ID])])
        c_pos = np.concatenate([c_pos, new_c_pos])

    aligned = align_pairs(pairs, members, contacts, base, m_pos=m_pos, c_pos=c_pos)
    fields = list(policies)
    changed = aligned.select(changed_pairs(aligned, fields))
    owners = EmailOwners(
        cc_frames=[contacts, directory] if directory is not None else [contacts],
        member_frames=[f for f in (members, candidates, base) if f is not None],
    )
    resolution = resolve_pairs(changed, policies, direction, owners)

    cc_creates = empty_frame((MEMBER_ID, EMAIL))
    create_changes = empty_frame(CHANGES_COLUMNS)
    rejected = [rejected_members, rejected_contacts, resolution.rejected]
    reviews = [resolution.reviews]
    new_links = empty_frame((MEMBER_ID, CONTACT_ID, "rule"))
    if linking is not None:
        reviews.insert(0, linking.reviews)
        rejected.append(linking.rejected)
        new_links = linking.new_links
        if len(linking.to_create):
            cc_creates, create_changes, too_long = _creates(members, linking.to_create, policies, direction)
            rejected.append(too_long)

    cc_updates = _import_keys_from_directory(resolution.cc_updates, contacts, directory)
    new_base = resolution.new_base
    if len(cc_creates):
        new_base = pd.concat([new_base, _created_base(cc_creates, policies, new_base)], ignore_index=True)
    ids = (MEMBER_ID, CONTACT_ID)
    return SyncPlan(
        new_links=_tidy(new_links, NEW_LINKS_COLUMNS),
        reviews=_tidy(_concat(reviews, resolution.reviews), REVIEWS_COLUMNS),
        member_updates=_tidy(resolution.member_updates, (*ids, CLEARED_FIELDS)),
        member_opt_outs=_tidy(resolution.member_opt_outs, (*ids, SOURCE)),
        cc_updates=_tidy(cc_updates, ids),
        cc_puts=_tidy(resolution.cc_puts, (*ids, EMAIL_CHANGE, CLEARED_FIELDS)),
        cc_creates=_tidy(cc_creates, (MEMBER_ID,)),
        consent=_tidy(resolution.consent, (*ids, SOURCE, DIRECTION)),
        unlinks=_tidy(resolution.unlinks, UNLINKS_COLUMNS),
        rejected=_tidy(_concat(rejected, resolution.rejected), REJECTED_COLUMNS),
        changes=_tidy(_concat([resolution.changes, create_changes], resolution.changes), CHANGES_COLUMNS),
        new_base=new_base,
        hydrate=pd.DataFrame({CONTACT_ID: hydrate.to_numpy()}),
        pairs_compared=len(aligned.pairs),
    )


def plan_hydrated(
    plan: Callable[[pd.DataFrame], SyncPlan],
    contacts: pd.DataFrame,
    read_contacts: Callable[[list[str]], pd.DataFrame] | None,
) -> tuple[SyncPlan, pd.DataFrame]:
    """``plan(contacts)``, then, while the plan links members to contacts not in ``contacts``
    (``plan.hydrate``): ``read_contacts(ids)`` and plan again, so each new link is merged, and
    stored, with a base (up to ``MAX_HYDRATE_ROUNDS`` reads). Without ``read_contacts`` the first
    plan is the answer.

    :return: the plan, and the contacts it was made from (``contacts`` plus those read).
    """
    planned = plan(contacts)
    for _ in range(MAX_HYDRATE_ROUNDS):
        if planned.hydrate.empty or read_contacts is None:
            break
        read = read_contacts(planned.hydrate[CONTACT_ID].tolist())
        contacts = (
            pd.concat([contacts, read], ignore_index=True)
            .drop_duplicates(CONTACT_ID, keep="last")
            .reset_index(drop=True)
        )
        planned = plan(contacts)
    return planned, contacts
