"""Operators that read the member table into a canonical frame and write member updates back.

.. code-block:: python

    members = MemberDatabaseExtractOperator(task_id="members", since="{{ data_interval_start }}")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cc_sync import settings
from cc_sync.operators.constant_contact import truthy
from cc_sync.operators.leased import LeasedOperator

# The DAG files import these operators when parsed: pandas and the hook load when a task runs.
if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context


class MemberDatabaseExtractOperator(LeasedOperator):
    """Read in-scope members into one canonical DataFrame (returned as XCom).

    Incremental when ``since`` is set: by the mapping's last-modified column, or, for a table
    without one, by hashing the mapped columns against the hashes stored with the sync's base.

    :param member_db_conn_id: the member database connection.
    :param mapping_path: the member mapping YAML (templated).
    :param since: ISO-8601 time or datetime; read members changed since then (templated).
    :param full: read every member in scope (templated).
    :param segment: only members of this named segment of the mapping (templated).
    :param lease: hold this lease of the sync's bookkeeping (``cc_sync.sync.lease``) while
        reading; None: no lease.
    """

    template_fields: Sequence[str] = ("member_db_conn_id", "mapping_path", "since", "full", "segment")
    ui_color = "#e8f1e4"

    def __init__(
        self,
        *,
        member_db_conn_id: str = settings.MEMBER_DB_CONN_ID,
        mapping_path: str | Path = settings.DEFAULT_MAPPING_PATH,
        since: str | None = None,
        full: bool | str = False,
        segment: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(member_db_conn_id=member_db_conn_id, mapping_path=mapping_path, **kwargs)
        self.since = since
        self.full = full
        self.segment = segment

    def work(self, context: Context) -> pd.DataFrame:
        import pandas as pd

        from cc_sync.progress import Progress
        from cc_sync.sync.resources import SyncResources
        from cc_sync.timeutil import parse_utc

        resources = SyncResources(member_db_conn_id=self.member_db_conn_id, mapping_path=self.mapping_path)
        hook = resources.members
        since = None if truthy(self.full) else parse_utc(self.since)
        if since is not None and not hook.mapping.last_modified_column:
            chunks = hook.extract_changed_by_hash(resources.bookkeeping.load_member_hashes())
            how = "changed by hash"
        else:
            chunks = hook.extract_members(since=since, segment=self.segment or None)
            how = "all in scope" if since is None else f"changed since {since.isoformat()}"
        frames = [c for c in Progress("Members read", logger=self.log).track(chunks, size=len) if len(c)]
        frame = pd.concat(frames, ignore_index=True) if frames else hook.empty_frame()
        self.log.info("Read %d member(s) (%s)", len(frame), how)
        hook.dispose()
        return frame


class MemberDatabaseLoadOperator(LeasedOperator):
    """Write the member side of a sync plan: field updates and opt-outs, in batched transactions
    with the optimistic check (a row edited since it was read is skipped, and taken up next run).

    :param plan: the plan as XCom carries it (``cc_sync.sync.xcom.plan_to_xcom``); templated.
    :param lease: hold this lease of the sync's bookkeeping (``cc_sync.sync.lease``) while
        writing; None: no lease.
    """

    template_fields: Sequence[str] = ("member_db_conn_id", "mapping_path", "plan", "journal_key")
    withheld_fields: Sequence[str] = ("plan",)
    ui_color = "#e8f1e4"

    def __init__(
        self,
        *,
        plan: Any,
        member_db_conn_id: str = settings.MEMBER_DB_CONN_ID,
        mapping_path: str | Path = settings.DEFAULT_MAPPING_PATH,
        journal_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(member_db_conn_id=member_db_conn_id, mapping_path=mapping_path, **kwargs)
        self.plan = plan
        self.journal_key = journal_key

    def work(self, context: Context) -> dict[str, Any]:
        from cc_sync.sync.loading import Journal, load_member_database
        from cc_sync.sync.resources import SyncResources
        from cc_sync.sync.xcom import plan_from_xcom

        resources = SyncResources(member_db_conn_id=self.member_db_conn_id, mapping_path=self.mapping_path)
        result = load_member_database(
            resources.members,
            plan_from_xcom(self.plan),
            journal=Journal(resources.bookkeeping, self.journal_key or context["run_id"]),
        )
        self.log.info("Member database load: %s", result.counts)
        resources.close()
        return result.as_xcom()
