"""A listener that puts each job's run summary into its DAG run's note, where the UI shows it.

A task cannot set its own DAG run's note in Airflow 3.3: the Task Execution API reads a run's note
but has no call to write it. Listeners can: ``on_dag_run_success`` / ``on_dag_run_failed`` are
called by ``DagRun.update_state`` in the scheduler (and in ``dag.test()``), and by the API server
when a person marks a run, with the run still attached to that process's metadata-DB session,
which commits after the hook. So the listener reads the summary the ``finish`` task pushed (the
XCom ``run_summary``) and sets ``dag_run.note`` in that same session (a second session could wait
on the locks the caller's open transaction holds on the run), as a Markdown block
(:func:`cc_sync.summary.as_note`) below whatever note the run already had (the console triggers
runs with one; a person may have written one), replacing an earlier summary of the same run.

Runs of other DAGs have no such XCom and are left alone. Registered through the ``listeners`` of
the plugin in plugins/cc_sync_console.py; the module is imported in every Airflow component, so
the metadata models are imported only when a run ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl

from cc_sync.summary import FINISH_TASK_ID, NOTE_HEADER, NOTE_LIMIT, XCOM_KEY, as_note

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

log = logging.getLogger(__name__)

# Between the note the run was triggered with (the console writes one) and the summary.
NOTE_SEPARATOR = "\n\n"
# Less room than this beside a long note a person wrote: the summary stays in the log only.
MIN_NOTE_ROOM = 200


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
        # dag.test() hands listeners its run detached from any session (seen in 3.3.2). It works
        # in Airflow's scoped session (settings.Session), the one this thread gets here too, so
        # the note goes through dag.test()'s own connection instead of waiting on its locks.
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            attached = session.get(DagRun, dag_run.id)
            return attached is not None and _note(session, attached)
    except Exception:
        log.exception("Could not set the run summary as the note of run %s", dag_run.run_id)
        return False


def _note(session: Any, dag_run: DagRun) -> bool:
    text = _pushed_summary(session, dag_run)
    if text is None:
        return False
    kept = without_summary(dag_run.note or "")
    room = NOTE_LIMIT - (len(kept) + len(NOTE_SEPARATOR) if kept else 0)
    if room < MIN_NOTE_ROOM:
        log.info("Run %s keeps its long note; its summary is in the finish log", dag_run.run_id)
        return False
    dag_run.note = (kept + NOTE_SEPARATOR if kept else "") + as_note(text, limit=room)
    return True


def without_summary(note: str) -> str:
    """The note without a summary this listener put there: a rerun's replaces the earlier one,
    and what the trigger or a person wrote above it stays."""
    if note.startswith(NOTE_HEADER + "\n"):
        return ""
    return note.split(NOTE_SEPARATOR + NOTE_HEADER + "\n", 1)[0]


def _pushed_summary(session: Any, dag_run: DagRun) -> str | None:
    from airflow.models.xcom import XComModel

    query = XComModel.get_many(
        run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=FINISH_TASK_ID, key=XCOM_KEY, limit=1
    )
    row = session.scalars(query).first()
    if row is None:
        return None
    value = XComModel.deserialize_value(row)
    # The summary starts with the run it is of; anything else (say, the path a custom XCom backend
    # stored instead of a large value) is not noted.
    if not isinstance(value, str) or not value.startswith(f"{dag_run.dag_id} {dag_run.run_id}: "):
        return None
    return value
