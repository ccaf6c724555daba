"""The run summary as the DAG run's note: the finish task pushes it, the plugin's listener
(cc_sync.run_note) writes it into the run's note when dag.test() ends the run, as the scheduler
does, in Airflow's real metadata database."""

from __future__ import annotations

from typing import Any

import pytest

from cc_sync.run_note import note_run_summary
from cc_sync.summary import NOTE_HEADER, NOTE_LIMIT
from tests.dags.conftest import SyncWorld

pytestmark = pytest.mark.slow


def _stored_run(session: Any, run_id: str) -> Any:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return session.scalars(select(DagRun).where(DagRun.run_id == run_id)).one()


def _note(run_id: str) -> str | None:
    from airflow.utils.session import create_session

    with create_session() as session:
        return _stored_run(session, run_id).note


def test_a_finished_sync_shows_its_summary_as_the_run_note(synced: SyncWorld) -> None:
    run = synced.sync()

    assert run["state"] == "success"
    note = _note(run["run_id"])
    assert note is not None, "the listener did not set the note"
    lines = note.splitlines()
    assert lines[:3] == [NOTE_HEADER, "```", f"constant_contact_sync {run['run_id']}: success"]
    assert lines[-1] == "```"
    assert f"  API calls this run: {run['counts']['api_calls']}" in lines
    assert len(note) <= NOTE_LIMIT


def test_the_note_the_run_had_stays_above_the_summary_and_a_rerun_replaces_the_summary(
    synced: SyncWorld,
) -> None:
    from airflow.utils.session import create_session

    run_id = synced.sync()["run_id"]
    summary = _note(run_id)
    assert summary is not None

    with create_session() as session:  # as the console triggers runs, or a person writes one
        stored = _stored_run(session, run_id)
        stored.note = "apply now: review decisions from the sync console"
        assert note_run_summary(stored)
    assert _note(run_id) == f"apply now: review decisions from the sync console\n\n{summary}"

    with create_session() as session:  # the run cleared and run again: one summary, the newest
        stored = _stored_run(session, run_id)
        stored.note = f"{stored.note[: -len(summary)]}{NOTE_HEADER}\n```\nan older try's summary\n```"
        assert note_run_summary(stored)
    assert _note(run_id) == f"apply now: review decisions from the sync console\n\n{summary}"

    with create_session() as session:  # a note too long to leave room: it is kept, untouched
        stored = _stored_run(session, run_id)
        stored.note = "x" * (NOTE_LIMIT - 50)
        assert not note_run_summary(stored)
    assert _note(run_id) == "x" * (NOTE_LIMIT - 50)


def test_a_failed_run_gets_its_summary_too(synced: SyncWorld) -> None:
    """The guard rail refuses a mass change: the run fails, finish still closes it, and the
    on_dag_run_failed listener notes the failed summary."""
    for member_id in synced.linked_member_ids():
        synced.edit_member(member_id, job_title="Volunteer")

    run = synced.sync(max_change_share=0.1)

    assert run["state"] == "failed"
    note = _note(run["run_id"])
    assert note is not None, "the listener did not set the note"
    assert f"constant_contact_sync {run['run_id']}: failed" in note.splitlines()
