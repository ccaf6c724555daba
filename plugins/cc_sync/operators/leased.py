"""The base of the package's operators: an operator that may work under the sync's lease."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from cc_sync import settings
from cc_sync.withheld import WithholdsFields

if TYPE_CHECKING:
    from airflow.sdk import Context


class LeasedOperator(WithholdsFields, BaseOperator):
    """Runs :meth:`work` holding ``lease`` of the sync's bookkeeping (renewed while it works;
    ``cc_sync.sync.lease``), found through ``member_db_conn_id`` and ``mapping_path``.

    :param lease: the lease to hold; None (in your own DAGs): no lease.

    ``withheld_fields``: template fields holding the run's data (a plan), which Airflow stores only
    as their shape (:mod:`cc_sync.withheld`).
    """

    def __init__(
        self,
        *,
        lease: str | None = None,
        member_db_conn_id: str = settings.MEMBER_DB_CONN_ID,
        mapping_path: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lease = lease
        self.member_db_conn_id = member_db_conn_id
        self.mapping_path = mapping_path

    def execute(self, context: Context) -> Any:
        from cc_sync.sync.lease import during_task

        with during_task(
            self.lease,
            context["run_id"],
            member_db_conn_id=self.member_db_conn_id,
            mapping_path=self.mapping_path,
        ):
            return self.work(context)

    def work(self, context: Context) -> Any:
        raise NotImplementedError
