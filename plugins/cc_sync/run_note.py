"""A listener that puts each job's run summary into its DAG run's note, where the UI shows it.

A task cannot set its own DAG run's note in Airflow 3.3: the Task Execution API reads a run's note
but has no call to write it. Listeners can: ``on_dag_run_success`` / ``on_dag_run_failed`` are
called by ``DagRun.update_state`` in the scheduler (and in ``dag.test()``), and by the API server
when a person marks a run, with the run still attached to that process's metadata-DB session,
which commits after the hook. So the listener reads the note the ``finish`` task pushed (the XCom
``run_summary``, :func:`cc_sync.summary.as_note`) and sets ``dag_run.note`` in that same session:
a second session could wait on the locks the caller's open transaction holds on the run.

Runs of other DAGs have no such XCom and are left alone, as is a note a person wrote. Registered
through the ``listeners`` of the plugin in plugins/cc_sync_console.py; the module is imported in
every Airflow component, so the metadata models are imported only when a run ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl

from cc_sync.summary import FINISH_TASK_ID, NOTE_HEADER, NOTE_LIMIT, XCOM_KEY

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

log = logging.getLogger(__name__)


@hookimpl
def on_dag_run_success(dag_run: DagRun, msg: str) -> None:
    note_run_summary(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: DagRun, msg: str) -> None:
    note_run_summary(dag_run)


def note_run_summary(dag_run: DagRun) -> bool:
    """Set the run's note to the summary its finish task pushed; True when it did.

    Never raises: Airflow logs a listener's exception and carries on, but a failed query could
    leave the caller's session unusable, so anything unexpected is logged here and skipped.
    """
    from sqlalchemy.orm import object_session

    try:
        session = object_session(dag_run)
        if session is not None:  # the scheduler's and the API server's runs: join their transaction
            return _note(session, dag_run)
        # dag.test() hands listeners its run detached (its in-process task runs closed the
        # thread's session); Airflow's scoped session is that same thread's session, so this
        # writes through the connection dag.test() holds instead of waiting on its locks.
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            attached = session.get(DagRun, dag_run.id)
            return attached is not None and _note(session, attached)
    except Exception:
        log.exception("Could not set the run summary as the note of run %s", dag_run.run_id)
        return False


def _note(session: Any, dag_run: DagRun) -> bool:
    summary = _pushed_summary(session, dag_run)
    if summary is None:
        return False
    current = dag_run.note
    if current and not current.startswith(NOTE_HEADER):
        log.info("Run %s keeps the note a person wrote; its summary is in the finish log", dag_run.run_id)
        return False
    dag_run.note = summary
    return True


def _pushed_summary(session: Any, dag_run: DagRun) -> str | None:
    from airflow.models.xcom import XComModel

    query = XComModel.get_many(
        run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=FINISH_TASK_ID, key=XCOM_KEY, limit=1
    )
    row = session.scalars(query).first()
    if row is None:
        return None
    value = XComModel.deserialize_value(row)
    # A value the XCom backend moved to object storage reads as its path: not a summary.
    if not isinstance(value, str) or not value.startswith(NOTE_HEADER):
        return None
    return value[:NOTE_LIMIT]
