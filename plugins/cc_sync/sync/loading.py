"""Write a plan: to Constant Contact (bulk first, a PUT only where bulk cannot) and to the members.

Each write step is journaled in the bookkeeping under the run id once it has succeeded, so a load
that fails part-way (a dropped connection, the day's budget, a crash) resumes on retry where it
stopped and writes nothing twice. A bulk request (an import, a list-membership removal) is
journaled the moment Constant Contact accepts it, before its activity is polled: a retry polls that
activity instead of sending the request again. A request whose activity fails is sent again inside
the load, a bounded number of times, before the task gives up. Per-person refusals (a 4xx for one
contact, a member row edited since it was read) are reported and left out of the base, so the next
run takes them up again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pandas as pd

from cc_sync.constant_contact.convert import contacts_to_frame, frame_to_import_rows, merge_contact_for_put
from cc_sync.constant_contact.errors import ConstantContactApiError
from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.constant_contact.models import AcceptedActivity, Activity, UpdateSource
from cc_sync.engine import SyncPlan, normalise_email
from cc_sync.engine.model import CLEARED_FIELDS, EMAIL_CHANGE, ROW_VERSION, UNSUBSCRIBE
from cc_sync.fields import (
    CANONICAL_FIELDS,
    CONTACT_ID,
    MEMBER_ID,
    OPTED_OUT,
    FieldKind,
    custom_field_name,
    is_custom_field,
    is_known_field,
)
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.member_db.hook import MemberDatabaseHook
from cc_sync.progress import Progress
from cc_sync.timeutil import parse_utc, utcnow

log = logging.getLogger(__name__)

EMAIL = "email"
REASON = "reason"
# The import needs a list; with `cc_scope: all_contacts` the sync still keeps its people on one.
FALLBACK_LIST_NAME = "Synced members"
MEMBER_BATCH = 2_000
# A contact written one by one costs a GET (to merge into: a PUT nulls what it is not sent) and a PUT.
CALLS_PER_PUT = 2
# Contacts created by an import are found again by created_after, from a little before it began.
CREATED_LOOKBACK = timedelta(minutes=2)
FAILED_COLUMNS = (MEMBER_ID, CONTACT_ID, "side", REASON)
PAIR_COLUMNS = (MEMBER_ID, CONTACT_ID)
# The plan's XCom carries, beside the engine's frames, the linked members who left the scope.
LEAVING_SCOPE = "leaving_scope"
# A failed bulk activity (CC applied none of it) is sent again this many times inside the task: a
# resend costs its call and a poll, a task retry the whole load again two minutes later.
ACTIVITY_RESENDS = 2
# Journal steps: the import's list and start time, each bulk request CC accepted (by its key, the
# hash of its path and body), the finished import, and the leaving-scope removal.
IMPORT_PREPARED = "cc_import_prepared"
ACTIVITY_STEP = "cc_activity:"
IMPORT_DONE = "cc_import"
LEAVING_SCOPE_DONE = "cc_leaving_scope"


class BulkActivityFailed(RuntimeError):
    """A bulk activity still failed after its resends: the task's retry polls or resends only it."""


@dataclass
class LoadResult:
    """What a load wrote, and what it could not (per person, with the reason)."""

    written_member_ids: list[str] = field(default_factory=list)
    created_links: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=[MEMBER_ID, CONTACT_ID]))
    failed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(FAILED_COLUMNS)))
    counts: dict[str, int] = field(default_factory=dict)
    # Sent, but in a request whose refused rows CC did not name: not taken as written (no base
    # saved), so the next run sends them again; not failures either (no review item each).
    unconfirmed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(PAIR_COLUMNS)))

    def add_failures(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self.failed = pd.concat([self.failed, frame[list(FAILED_COLUMNS)]], ignore_index=True)

    def as_xcom(self) -> dict[str, Any]:
        return {
            "written_member_ids": list(self.written_member_ids),
            "created_links": self.created_links.astype("string"),
            "failed": self.failed.astype("string"),
            "counts": dict(self.counts),
            "unconfirmed": self.unconfirmed.astype("string"),
        }

    @classmethod
    def from_xcom(cls, value: dict[str, Any] | None) -> LoadResult:
        if not value:
            return cls()
        return cls(
            written_member_ids=list(value.get("written_member_ids") or []),
            created_links=value.get("created_links", pd.DataFrame(columns=[MEMBER_ID, CONTACT_ID])),
            failed=value.get("failed", pd.DataFrame(columns=list(FAILED_COLUMNS))),
            counts=dict(value.get("counts") or {}),
            unconfirmed=value.get("unconfirmed", pd.DataFrame(columns=list(PAIR_COLUMNS))),
        )


class Journal:
    """Steps of one run's load already done (kept in the bookkeeping, so retries see them).

    A bulk request is marked at once (sent twice, it would be written twice). A contact's GET +
    PUT is marked in batches (:meth:`mark_soon`): a commit per contact cost as much CPU as the
    calls themselves, and a load killed between two batches only does its last few contacts
    again on the retry, a GET and a PUT that write the same values.
    """

    BATCH = 50  # contacts per journal commit
    BATCH_SECONDS = 5.0  # or this long since the oldest unwritten mark

    def __init__(
        self, bookkeeping: Bookkeeping, run_id: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._bookkeeping = bookkeeping
        self._run_id = run_id
        self._done = bookkeeping.done_steps(run_id)
        self._details: dict[str, dict[str, Any] | None] = {}
        self._pending: list[str] = []
        self._oldest_pending = 0.0
        self._clock = clock

    def done(self, step: str) -> bool:
        return step in self._done

    def mark(self, step: str, detail: dict[str, Any] | None = None) -> None:
        self.flush()
        self._bookkeeping.mark_step_done(self._run_id, step, detail)
        self._done.add(step)
        self._details[step] = detail

    def mark_soon(self, step: str) -> None:
        """Mark ``step`` done with the next batch (:attr:`BATCH` marks or :attr:`BATCH_SECONDS`)."""
        if not self._pending:
            self._oldest_pending = self._clock()
        self._pending.append(step)
        self._done.add(step)
        self._details[step] = None
        if len(self._pending) >= self.BATCH or self._clock() - self._oldest_pending >= self.BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the marks :meth:`mark_soon` holds."""
        if self._pending:
            self._bookkeeping.mark_steps_done(self._run_id, self._pending)
            self._pending = []

    def detail(self, step: str) -> dict[str, Any] | None:
        if step not in self._details:
            self._details[step] = self._bookkeeping.step_detail(self._run_id, step)
        return self._details[step]

    def accepted_activities(self) -> dict[str, str]:
        """Request key -> the activity CC last accepted for that request in this run (any try)."""
        accepted = {}
        for step in sorted(s for s in self._done if s.startswith(ACTIVITY_STEP)):
            activity_id = (self.detail(step) or {}).get("activity_id")
            if activity_id:
                accepted[step.removeprefix(ACTIVITY_STEP)] = str(activity_id)
        return accepted

    def activity_accepted(self, accepted: AcceptedActivity) -> None:
        """The hook's ``on_accepted``: file the request under its key before its activity is polled."""
        step = ACTIVITY_STEP + accepted.request.key
        earlier = (self.detail(step) or {}) if self.done(step) else {}
        earlier_ids = list(earlier.get("earlier_activity_ids") or [])
        if earlier.get("activity_id"):
            earlier_ids.append(earlier["activity_id"])
        self.mark(
            step,
            {
                "path": accepted.request.path,
                "activity_id": accepted.activity_id,
                "items": item_ranges(accepted.request.items),
                "item_count": len(accepted.request.items),
                "sends": int(earlier.get("sends") or 0) + 1,
                "earlier_activity_ids": earlier_ids,
                "accepted_at": utcnow().isoformat(),
            },
        )


def item_ranges(items: tuple[int, ...] | list[int]) -> list[list[int]]:
    """Sorted positions as ``[first, last]`` runs: an import's 40,000 rows stay a few bytes of JSON
    (MariaDB's TEXT, the journal's column there, holds 64 KB)."""
    runs: list[list[int]] = []
    for item in sorted(items):
        if runs and item == runs[-1][1] + 1:
            runs[-1][1] = item
        else:
            runs.append([item, item])
    return runs


def _changes_of(row: Mapping[str, Any], skip: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in skip and is_known_field(k) and not _missing(v)}


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, list | dict) and bool(pd.isna(value)))


def _records(frame: pd.DataFrame) -> list[dict[str, str | None]]:
    """A frame as JSON-safe records (strings, None for missing) for the journal."""
    return [{k: None if _missing(v) else str(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _failed(member_id: Any, contact_id: Any, side: str, reason: str) -> dict[str, Any]:
    return {MEMBER_ID: member_id, CONTACT_ID: contact_id, "side": side, REASON: reason}


# ---- Constant Contact ------------------------------------------------------------------------


def load_constant_contact(
    hook: ConstantContactHook,
    plan: SyncPlan,
    *,
    main_list_name: str | None,
    journal: Journal,
    leaving_scope: pd.DataFrame | None = None,
    progress_clock: Callable[[], float] = time.monotonic,
) -> LoadResult:
    """Imports (updates and new contacts), then one GET + PUT per email change or unsubscribe.

    The imports log each request sent and each poll of its activity (the hook); the PUTs log
    their progress (:class:`~cc_sync.progress.Progress`, timed by ``progress_clock``).
    """
    result = LoadResult()
    calls_before = hook.api_calls
    bulk = with_integer_fields(pd.concat([plan.cc_creates, plan.cc_updates], ignore_index=True))
    if len(bulk) and not journal.done(IMPORT_DONE):
        prepared = journal.detail(IMPORT_PREPARED) if journal.done(IMPORT_PREPARED) else None
        if prepared is None:
            started = utcnow()
            ensure_custom_fields(hook, [c for c in bulk.columns if is_custom_field(c)])
            list_id = hook.get_or_create_list(main_list_name or FALLBACK_LIST_NAME).list_id
            # The same list id makes the same request bodies, so a retry finds its requests' keys.
            journal.mark(IMPORT_PREPARED, {"started": started.isoformat(), "list_id": list_id})
        else:
            started = parse_utc(prepared["started"]) or utcnow()
            list_id = str(prepared["list_id"])
        imported = hook.import_contacts(
            frame_to_import_rows(bulk),
            [list_id],
            resume=journal.accepted_activities(),
            on_accepted=journal.activity_accepted,
            resubmit_failed=ACTIVITY_RESENDS,
        )
        failures = [
            _failed(
                bulk.iloc[e.row][MEMBER_ID] if e.row is not None else None,
                bulk.iloc[e.row].get(CONTACT_ID) if e.row is not None else None,
                "cc",
                e.reason,
            )
            for e in imported.errors
        ]
        if not imported.ok:
            # Its rows were sent 1 + ACTIVITY_RESENDS times and CC applied none of them: leave it
            # to the task's retry, which polls the journaled activities and resends only these.
            raise BulkActivityFailed(
                f"Constant Contact import did not complete after {ACTIVITY_RESENDS} resend(s): "
                f"{imported.summary()}"
            )
        failed = pd.DataFrame(failures, columns=list(FAILED_COLUMNS))
        placed = {e.row for e in imported.errors if e.row is not None}
        unconfirmed_rows = sorted(set(imported.unconfirmed_rows()) - placed)
        unconfirmed = bulk.iloc[unconfirmed_rows].reindex(columns=list(PAIR_COLUMNS))
        result.add_failures(failed)
        result.unconfirmed = unconfirmed.astype("string")
        if failures:
            reasons = pd.Series([f[REASON] for f in failures]).str.slice(0, 80).value_counts().head(5)
            log.warning("Import rows refused, most common reasons: %s", reasons.to_dict())
        if len(unconfirmed):
            log.warning(
                "%d contact(s) were in import requests whose refused rows Constant Contact did not "
                "name: not taken as written, the next run sends them again",
                len(unconfirmed),
            )
        journal.mark(
            IMPORT_DONE,
            {
                "started": started.isoformat(),
                **imported.summary(),
                "failed": _records(failed),
                "unconfirmed": _records(unconfirmed),
            },
        )
        result.counts.update({f"import_{k}": v for k, v in imported.summary().items() if isinstance(v, int)})
    elif len(bulk):  # a retry after the import landed: what it refused is in the journal
        detail = journal.detail(IMPORT_DONE) or {}
        result.add_failures(pd.DataFrame(detail.get("failed") or [], columns=list(FAILED_COLUMNS)))
        result.unconfirmed = pd.DataFrame(detail.get("unconfirmed") or [], columns=list(PAIR_COLUMNS)).astype(
            "string"
        )
    if len(plan.cc_creates):
        detail = journal.detail(IMPORT_DONE) or {}
        since = pd.Timestamp(detail.get("started") or utcnow()).to_pydatetime() - CREATED_LOOKBACK
        result.created_links = _find_created(hook, plan.cc_creates, since)
        result.counts["cc_created_linked"] = len(result.created_links)

    puts = plan.cc_puts
    failures: list[dict[str, Any]] = []
    progress = Progress(
        "Constant Contact contacts written one by one (GET + PUT)",
        total=len(puts),
        unit="contacts",
        per_call=1 / CALLS_PER_PUT,
        calls=lambda: hook.api_calls,
        logger=log,
        clock=progress_clock,
    )
    records = puts.to_dict("records")  # plain dicts: no per-contact pandas work in this loop
    try:
        done_puts = _put_one_by_one(hook, records, journal, progress, failures)
    finally:
        journal.flush()  # what was written is journaled, whatever stopped the loop
    result.add_failures(pd.DataFrame(failures, columns=list(FAILED_COLUMNS)))
    result.counts.update({"cc_puts": done_puts, "cc_failed": len(result.failed)})
    if (
        leaving_scope is not None
        and len(leaving_scope)
        and main_list_name
        and not journal.done(LEAVING_SCOPE_DONE)
    ):
        main_list = hook.get_list_by_name(main_list_name)
        if main_list is not None:
            activities = hook.remove_list_memberships(
                leaving_scope[CONTACT_ID].astype(str).tolist(),
                [main_list.list_id],
                resume=journal.accepted_activities(),
                on_accepted=journal.activity_accepted,
                resubmit_failed=ACTIVITY_RESENDS,
            )
            _require_success(activities, "removal from the main list")
        journal.mark(LEAVING_SCOPE_DONE, {"removed": len(leaving_scope)})
        result.counts["cc_removed_from_list"] = len(leaving_scope)
    result.counts["api_calls"] = hook.api_calls - calls_before
    return result


def _put_one_by_one(
    hook: ConstantContactHook,
    records: list[dict[str, Any]],
    journal: Journal,
    progress: Progress,
    failures: list[dict[str, Any]],
) -> int:
    """GET + PUT each contact an import cannot write; refusals go to ``failures``. The PUTs done."""
    done_puts = 0
    custom_field_ids: dict[str, str] | None = None
    for record in progress.track(records) if records else records:
        contact_id = str(record[CONTACT_ID])
        step = f"cc_put:{contact_id}"
        if journal.done(step):
            continue
        changes = _changes_of(record, (CONTACT_ID, MEMBER_ID, EMAIL_CHANGE, UNSUBSCRIBE, CLEARED_FIELDS))
        if not _missing(record.get(EMAIL_CHANGE)):
            changes[EMAIL] = record[EMAIL_CHANGE]
        cleared = record.get(CLEARED_FIELDS)
        for name in ("" if _missing(cleared) else str(cleared)).split(","):
            if name.strip():
                changes[name.strip()] = None
        unsubscribe = bool(record.get(UNSUBSCRIBE)) if not _missing(record.get(UNSUBSCRIBE)) else False
        if unsubscribe:
            changes[OPTED_OUT] = True
        if any(k.startswith("cf:") for k in changes) and custom_field_ids is None:
            custom_field_ids = {name: cf_id for cf_id, name in hook.custom_field_names().items()}
        try:
            existing = hook.get_contact(contact_id)
            body = merge_contact_for_put(
                existing,
                changes,
                # An unsubscribe carries the member's own request; field edits are the account's.
                UpdateSource.CONTACT if unsubscribe else UpdateSource.ACCOUNT,
                custom_field_ids=custom_field_ids,
                opt_out_reason="Opted out in the member database" if unsubscribe else None,
            )
            hook.update_contact(contact_id, body)
        except ConstantContactApiError as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                raise
            failures.append(
                _failed(record.get(MEMBER_ID), contact_id, "cc", f"{exc.status}: {exc.error_key}")
            )
            continue
        except ValueError as exc:  # merge_contact_for_put refused (e.g. it would re-subscribe)
            failures.append(_failed(record.get(MEMBER_ID), contact_id, "cc", str(exc)))
            continue
        journal.mark_soon(step)
        done_puts += 1
    return done_puts


def _require_success(activities: list[Activity], what: str) -> None:
    failed = [a for a in activities if not a.state.is_success()]
    if failed:
        states = ", ".join(f"{a.activity_id} {a.state.value}" for a in failed)
        raise BulkActivityFailed(
            f"Constant Contact {what} did not complete after {ACTIVITY_RESENDS} resend(s): {states}"
        )


def with_integer_fields(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer fields (birthday month and day) as nullable integers, whatever the frame carried."""
    integers = {
        name: pd.to_numeric(frame[name], errors="coerce").round().astype("Int64")
        for name, spec in CANONICAL_FIELDS.items()
        if spec.kind == FieldKind.INTEGER and name in frame.columns
    }
    return frame.assign(**integers) if integers else frame


def ensure_custom_fields(hook: ConstantContactHook, columns: list[str]) -> None:
    """Create the CC custom fields the mapping sends and CC lacks (an import cannot create them)."""
    if not columns:
        return
    existing = set(hook.custom_field_names().values())
    for column in columns:
        name = custom_field_name(column)
        if name not in existing:
            log.info("Creating the Constant Contact custom field %r", name)
            hook.create_custom_field(name)


def _find_created(hook: ConstantContactHook, creates: pd.DataFrame, since: Any) -> pd.DataFrame:
    """The contact ids of the members just imported: read back by created_after, matched by email."""
    fetched = contacts_to_frame(hook.iter_contacts(status="all", created_after=since, include=None), {})
    wanted = pd.DataFrame(
        {MEMBER_ID: creates[MEMBER_ID].astype(str), "_key": normalise_email(creates[EMAIL])}
    )
    found = pd.DataFrame(
        {CONTACT_ID: fetched[CONTACT_ID].astype(str), "_key": normalise_email(fetched[EMAIL])}
        if len(fetched)
        else {CONTACT_ID: [], "_key": []}
    )
    linked = wanted.merge(found.drop_duplicates("_key"), on="_key", how="inner")
    return linked[[MEMBER_ID, CONTACT_ID]].reset_index(drop=True)


# ---- member database -------------------------------------------------------------------------


def member_writes(plan: SyncPlan) -> pd.DataFrame:
    """Field updates and opt-outs as one frame for the member hook (NA = leave alone)."""
    updates = plan.member_updates.drop(columns=[CONTACT_ID, CLEARED_FIELDS], errors="ignore")
    opt_outs = plan.member_opt_outs[[MEMBER_ID, ROW_VERSION]].assign(**{OPTED_OUT: True})
    if updates.empty:
        return opt_outs.reset_index(drop=True)
    if opt_outs.empty:
        return updates.reset_index(drop=True)
    merged = updates.merge(opt_outs, on=MEMBER_ID, how="outer", suffixes=("", "_opt"))
    merged[ROW_VERSION] = merged[ROW_VERSION].fillna(merged.pop(f"{ROW_VERSION}_opt"))
    return merged


def load_member_database(
    hook: MemberDatabaseHook,
    plan: SyncPlan,
    *,
    journal: Journal,
    on_batch_written: Callable[[int], None] | None = None,
    progress_clock: Callable[[], float] = time.monotonic,
) -> LoadResult:
    """Member writes in batches, each one transaction with the optimistic check, journaled; their
    progress logged (:class:`~cc_sync.progress.Progress`, timed by ``progress_clock``)."""
    result = LoadResult()
    writes = member_writes(plan)
    skipped: list[str] = []
    rejected = []
    progress = Progress("Member rows written", total=len(writes), logger=log, clock=progress_clock)
    batches = [writes.iloc[start : start + MEMBER_BATCH] for start in range(0, len(writes), MEMBER_BATCH)]
    for number, batch in enumerate(progress.track(batches, size=len) if batches else batches):
        step = f"members:{number}"
        if journal.done(step):
            already_skipped = set((journal.detail(step) or {}).get("skipped") or [])
            ids = batch[MEMBER_ID].astype(str)
            result.written_member_ids += ids[~ids.isin(already_skipped)].tolist()
            skipped += sorted(already_skipped)
            continue
        written = hook.apply_member_updates(batch)
        result.written_member_ids += [str(m) for m in written.updated]
        skipped += [str(m) for m in written.skipped]
        if len(written.rejected):
            rejected.append(written.rejected)
        journal.mark(step, {"skipped": [str(m) for m in written.skipped]})
        if on_batch_written:
            on_batch_written(number)
    failures = [
        _failed(m, None, "member_db", "changed since it was read; the next run takes it up") for m in skipped
    ]
    for frame in rejected:
        failures += [
            _failed(r[MEMBER_ID], None, "member_db", f"{r.get('field')}: {r.get('reason')}")
            for r in frame.to_dict("records")
        ]
    result.add_failures(pd.DataFrame(failures, columns=list(FAILED_COLUMNS)))
    result.counts.update({"member_updates": len(result.written_member_ids), "member_skipped": len(skipped)})
    return result
