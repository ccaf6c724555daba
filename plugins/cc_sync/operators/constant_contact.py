"""Operators that read Constant Contact into canonical frames and write a sync plan back to it.

Both are thin: the hook does the HTTP (auth, rate limit, budget, retries), ``convert`` does the
shapes, and the loader only orders the writes. Use them in your own DAGs:

.. code-block:: python

    contacts = ConstantContactExtractOperator(task_id="contacts", updated_after="{{ data_interval_start }}")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cc_sync import settings
from cc_sync.fields import CONTACT_ID, UPDATED_AT
from cc_sync.operators.leased import LeasedOperator

# The DAG files import these operators when parsed: pandas and the hook load when a task runs.
if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from cc_sync.constant_contact.hook import ConstantContactHook


# The XCom key under which the operators leave their own call count, for DAGs of users that want it (the
# package's jobs count a run's calls from the hook's API log: cc_sync.job.close).
API_CALLS_KEY = "api_calls"


class ConstantContactExtractOperator(LeasedOperator):
    """Read contacts from Constant Contact into one canonical DataFrame (returned as XCom).

    With ``updated_after`` unset (or ``full=True``) it reads every contact, deleted ones included.
    Otherwise it reads three incremental streams and keeps each contact's latest version:
    ``updated_after`` (field edits, new contacts), ``optout_after`` (opt-outs, which CC does not
    count as updates) and ``status=deleted`` updated after the same time.

    :param conn_id: the Constant Contact connection.
    :param updated_after: ISO-8601 time or datetime; the incremental window's start (templated).
    :param full: read everything regardless of ``updated_after`` (templated).
    :param lists: only contacts on these list ids (at most 25; templated).
    :param lease: hold this lease of the sync's bookkeeping (``cc_sync.sync.lease``) while
        reading, found through ``member_db_conn_id`` and ``mapping_path``; None: no lease.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "updated_after",
        "full",
        "lists",
        "member_db_conn_id",
        "mapping_path",
    )
    ui_color = "#1856ed"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        conn_id: str = settings.CC_CONN_ID,
        updated_after: str | datetime | None = None,
        full: bool | str = False,
        lists: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.updated_after = updated_after
        self.full = full
        self.lists = lists

    def work(self, context: Context) -> pd.DataFrame:
        from cc_sync.constant_contact.convert import contacts_to_frame
        from cc_sync.constant_contact.hook import ConstantContactHook
        from cc_sync.progress import Progress
        from cc_sync.timeutil import parse_utc

        hook = ConstantContactHook(self.conn_id)
        calls_before = hook.api_calls
        since = None if truthy(self.full) else parse_utc(self.updated_after)
        # CC answers no total: the line says contacts read, their rate and the calls (pages) so far.
        progress = Progress("Constant Contact contacts read", calls=lambda: hook.api_calls, logger=self.log)
        frame = contacts_to_frame(progress.track(self._contacts(hook, since)), hook.custom_field_names())
        frame = latest_per_contact(frame)
        calls = hook.api_calls - calls_before
        self.log.info(
            "Read %d contact(s) from Constant Contact (%s) in %d API call(s)",
            len(frame),
            "full" if since is None else f"changed since {since.isoformat()}",
            calls,
        )
        context["ti"].xcom_push(key=API_CALLS_KEY, value=calls)
        return frame

    def _contacts(self, hook: ConstantContactHook, since: datetime | None) -> Iterator[dict[str, Any]]:
        lists = list(self.lists) if self.lists else None
        if since is None:
            yield from hook.iter_contacts(status="all", lists=lists)
            return
        yield from hook.iter_contacts(status="all", updated_after=since, lists=lists)
        yield from hook.iter_contacts(status="all", optout_after=since, lists=lists)
        yield from hook.iter_contacts(status="deleted", updated_after=since)


def latest_per_contact(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per contact: streams overlap, so keep the most recently updated version."""
    if frame.empty:
        return frame
    return (
        frame.sort_values(UPDATED_AT, na_position="first", kind="stable")
        .drop_duplicates(CONTACT_ID, keep="last")
        .reset_index(drop=True)
    )


def truthy(value: bool | str | None) -> bool:
    """A templated flag: Jinja renders booleans as text unless the DAG renders native objects."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


class ConstantContactLoadOperator(LeasedOperator):
    """Write the Constant Contact side of a sync plan: bulk imports, then the PUTs bulk cannot do.

    Resumable: each finished step is journaled under ``journal_key`` (default: the DAG run id) in
    the sync's bookkeeping, so a retry continues where a failure stopped.

    :param plan: the plan as XCom carries it (``cc_sync.sync.xcom.plan_to_xcom``); templated, so
        an upstream task's output can be passed directly.
    :param lease: hold this lease of the sync's bookkeeping (``cc_sync.sync.lease``) while
        writing; None: no lease.
    """

    template_fields: Sequence[str] = ("conn_id", "member_db_conn_id", "mapping_path", "plan", "journal_key")
    withheld_fields: Sequence[str] = ("plan",)
    ui_color = "#1856ed"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        plan: Any,
        conn_id: str = settings.CC_CONN_ID,
        journal_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.conn_id = conn_id
        self.journal_key = journal_key

    def work(self, context: Context) -> dict[str, Any]:
        from cc_sync.sync.loading import LEAVING_SCOPE, Journal, load_constant_contact
        from cc_sync.sync.resources import DEFAULT_MAPPING_PATH, SyncResources
        from cc_sync.sync.xcom import plan_from_xcom

        resources = SyncResources(
            self.conn_id, self.member_db_conn_id, self.mapping_path or DEFAULT_MAPPING_PATH
        )
        run_key = self.journal_key or context["run_id"]
        result = load_constant_contact(
            resources.cc,
            plan_from_xcom(self.plan),
            main_list_name=resources.mapping.cc_scope.main_list,
            journal=Journal(resources.bookkeeping, run_key),
            leaving_scope=self.plan.get(LEAVING_SCOPE),
        )
        self.log.info("Constant Contact load: %s", result.counts)
        context["ti"].xcom_push(key=API_CALLS_KEY, value=result.counts.get("api_calls", 0))
        return result.as_xcom()
