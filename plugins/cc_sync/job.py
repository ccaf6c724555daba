"""One way to write a job: the lifecycle the sync, send-list, undo and activity DAGs share.

A job is a DAG whose tasks are plain functions of a job package (``cc_sync.sync``,
``cc_sync.send_list``, ``cc_sync.undo``, ``cc_sync.activity``), wrapped in this order:

1. :func:`wait_for_lease` (jobs that write links): a sensor that takes the sync's lease.
2. a first step calling :func:`start`: the schema check, the run record and the account line.
3. steps run through :func:`leased`: the run's hooks, the lease renewed while the step works.
4. :func:`finish`: a teardown that closes the run record with its :class:`Outcome`, gives the
   lease back, writes the run summary (:mod:`cc_sync.summary`) to its log and pushes it as the
   XCom ``run_summary``. A task cannot set its own DAG run's note in Airflow 3.3 (the execution
   API reads notes, never writes them); the listener :mod:`cc_sync.run_note`, running where the
   run's state changes (the scheduler, or the API server for a run marked by hand), copies that
   XCom into the note. Last, it deletes the run's other XCom objects
   (:mod:`cc_sync.xcom_retention`: they hold email addresses).

A run's API calls are counted where every call is already filed: the Constant Contact hook logs
each HTTP attempt under its DAG, run and task (the run's API log in the console), and :func:`close`
counts that run's rows, every task and every try of it; no task hands its count on.

This module is imported by the DAG files when they are parsed, so it imports only Airflow's SDK
and :mod:`cc_sync.settings`; pandas, SQLAlchemy and requests come in when a task runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.providers.standard.decorators.short_circuit import _ShortCircuitDecoratedOperator
from airflow.sdk import Param, task, teardown
from airflow.sdk.bases.decorator import TaskDecorator, task_decorator_factory

from cc_sync import settings
from cc_sync.summary import FINISH_TASK_ID
from cc_sync.withheld import WithholdsFields

if TYPE_CHECKING:
    from cc_sync.account import AccountSummary
    from cc_sync.sync.resources import SyncResources

log = logging.getLogger(__name__)

T = TypeVar("T")


def resources() -> SyncResources:
    """The hooks and bookkeeping of one task, from the package's connection ids and mapping."""
    from cc_sync.sync.resources import SyncResources

    return SyncResources(settings.CC_CONN_ID, settings.MEMBER_DB_CONN_ID, settings.mapping_path())


class WithholdsArguments(WithholdsFields):
    """A ``@task``'s arguments (the run's frames) stored by Airflow only as their shape
    (:mod:`cc_sync.withheld`)."""

    withheld_fields = ("op_args", "op_kwargs")


class StepOperator(WithholdsArguments, _PythonDecoratedOperator):
    """A job's step: a ``@task`` whose arguments are withheld."""


class ShortCircuitStepOperator(WithholdsArguments, _ShortCircuitDecoratedOperator):
    """A job's ``@task.short_circuit`` step, its arguments withheld."""


def step(**kwargs: Any) -> Callable[[Callable[..., Any]], TaskDecorator]:
    """``@task(...)`` for a job's steps: one XCom value (``multiple_outputs=False`` unless given),
    and the arguments never stored in Airflow's rendered fields."""
    kwargs.setdefault("multiple_outputs", False)
    return task_decorator_factory(decorated_operator_class=StepOperator, **kwargs)


def short_circuit_step(**kwargs: Any) -> Callable[[Callable[..., Any]], TaskDecorator]:
    """``@task.short_circuit(...)`` for a job's steps, its arguments withheld like :func:`step`'s."""
    return task_decorator_factory(decorated_operator_class=ShortCircuitStepOperator, **kwargs)


def leased(run_id: str, step: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``step(resources, *args, **kwargs)`` holding the run's lease (renewed while it works;
    :class:`~cc_sync.sync.lease.LeaseLost` stops it if another run took the lease over)."""
    from cc_sync.sync import lease

    res = resources()
    try:
        with lease.kept(res.bookkeeping, run_id):
            return step(res, *args, **kwargs)
    finally:
        res.close()


def start(res: SyncResources, *, run_id: str, dag_id: str, kind: str) -> AccountSummary:
    """Open the run record and log which Constant Contact account the run talks to (as Realm
    shows it when linking; one API call). Returns the account."""
    from cc_sync.account import log_account_summary

    res.require_current_schema()
    res.bookkeeping.start_run(run_id, dag_id, kind=kind)
    return log_account_summary(res.cc)


def wait_for_lease(doc: str) -> Any:
    """The first task of a job that writes links: wait for the sync's lease, then hold it."""
    from datetime import timedelta

    @task.sensor(
        task_id="wait_for_lease",
        poke_interval=settings.LEASE_POKE_INTERVAL.total_seconds(),
        timeout=settings.LEASE_WAIT_TIMEOUT.total_seconds(),
        # A poke is a few queries; the sensor's own timeout bounds the whole wait.
        execution_timeout=timedelta(minutes=5),
        mode="reschedule",
        doc_md=doc,
    )
    def wait(run_id: str | None = None) -> bool:
        from cc_sync.sync import lease

        return lease.take(resources(), run_id)

    return wait()


@dataclass
class Outcome:
    """What a job's finish knows of the run, gathered from its tasks' XComs by the DAG."""

    succeeded: bool
    counts: dict[str, int] | None
    dry_run: bool = False
    # Counts the run record keeps for the summary but that are no "direction" (e.g. skip reasons).
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def recorded(cls, counts: dict[str, int] | None, *, dry_run: bool) -> Outcome:
        """A job whose last step records what it wrote (sync, undo): it succeeded when that step
        returned its counts; a dry run stops before it (:func:`close` reads the plan's counts)."""
        return cls(succeeded=counts is not None or dry_run, counts=counts, dry_run=dry_run)


def finish(
    outcome: Callable[[Any, dict[str, Any]], Outcome], *, after: Sequence[Any] = (), lease: bool = True
) -> Any:
    """The last task of every job (a teardown: it runs whatever became of the others), downstream
    of ``after`` (the lease's sensor and the job's last tasks, so it waits for all of them).

    ``outcome(ti, params)`` reads the job's XComs into an :class:`Outcome`; the rest is shared:
    the run record closed with its status and counts, the lease given back (``lease``), and the
    run summary in the log.
    """

    @teardown
    @step(task_id=FINISH_TASK_ID)
    def finish_run(
        params: dict, ti: Any = None, run_id: str | None = None, dag_run: Any = None
    ) -> dict[str, Any]:
        """Close the run record with its counts and API usage, release the lease, and summarise."""
        return close(
            resources(), run_id=run_id, outcome=outcome(ti, params), lease=lease, dag_run=dag_run, ti=ti
        )

    done = finish_run()
    for task_ in after:
        task_ >> done
    return done


def guard_rail_params(who: str) -> dict[str, Param]:
    """The trigger form's guard rail for a job that writes to many people (the sync, the undo):
    ``who`` ("this run", "this undo") may change at most ``max_change_share`` of the linked people
    unless ``allow_mass_change``."""
    return {
        "allow_mass_change": Param(
            False,
            type="boolean",
            title="Allow a mass change",
            description=f"Let {who} change more than the guard rail's share of linked people.",
        ),
        "max_change_share": Param(
            settings.DEFAULT_MAX_CHANGE_SHARE,
            type="number",
            minimum=0,
            maximum=1,
            title="Guard rail: largest share of linked people changed",
        ),
    }


def operator_args() -> dict[str, Any]:
    """What the package's operators need to hold the run's lease: where the bookkeeping is (read
    when the DAG file is parsed) and the lease's name."""
    return {
        "member_db_conn_id": settings.MEMBER_DB_CONN_ID,
        "mapping_path": settings.mapping_path(),
        "lease": settings.LEASE_NAME,
    }


def close(
    res: SyncResources,
    *,
    run_id: str,
    outcome: Outcome,
    lease: bool = True,
    dag_run: Any = None,
    ti: Any = None,
) -> dict[str, Any]:
    """Close the run record, release the lease, log the summary and push it for the run's note
    (through ``ti``); returns the report (its XCom)."""
    from cc_sync import summary
    from cc_sync.member_db.bookkeeping import RunStatus
    from cc_sync.sync.lease import give_back
    from cc_sync.xcom_retention import delete_run_xcom

    try:
        bookkeeping = res.bookkeeping
        record = bookkeeping.get_run(run_id)
        counts, succeeded = outcome.counts, outcome.succeeded
        if counts is None and outcome.dry_run:
            # A dry run's counts are its plan's, stored by its guard step; none: it failed before.
            counts = (record or {}).get("counts") or {}
            succeeded = succeeded and "planned_changes" in counts
        status = RunStatus.FAILED
        if succeeded:
            status = RunStatus.DRY_RUN if outcome.dry_run else RunStatus.SUCCESS
        dag_id = getattr(dag_run, "dag_id", None) or (record or {}).get("dag_id")
        # Every call the run's tasks made, as the hook filed them (a call whose log entry could not
        # be written, which the task's log warns of, is missing here).
        api_calls = res.cc.state.call_count(run_id, dag_id)
        counts = {k: int(v) for k, v in (counts or {}).items()} | {"api_calls": api_calls}
        if record is not None:
            bookkeeping.finish_run(run_id, status, counts, api_calls=api_calls)
        if lease:
            give_back(res, run_id)
        usage = res.cc.quota_usage()
        report = {"status": status.value, "api_calls_today": usage.used, "api_budget": usage.budget, **counts}
        text = summary.render(
            dag_id=dag_id,
            run_id=run_id,
            report=report,
            extra=outcome.extra,
        )
        log.info("Run summary:\n%s", text)
        if ti is not None:
            ti.xcom_push(key=summary.XCOM_KEY, value=text)
        if status in (RunStatus.SUCCESS, RunStatus.DRY_RUN) and dag_id:
            # Last: the record is closed, so what the console and the undo need is in the
            # bookkeeping; the run's XCom files (full email addresses) are no longer needed. This
            # task's own (the summary, counts and ids only) stay for the run's note.
            delete_run_xcom(dag_id, run_id, keep_task_ids=(FINISH_TASK_ID,))
        return report
    finally:
        res.close()
