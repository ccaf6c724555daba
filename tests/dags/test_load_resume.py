"""The load's bulk requests survive a crash and a failed activity: dag.test(), the emulator over HTTP,
real member databases (SQLite, PostgreSQL, MariaDB: crash and rerun writes differ by dialect, so
the module is marked ``all_dialects``; tests/conftest.py).

From the user's side: members are edited, the sync runs, and something goes wrong after Constant
Contact accepted the import: the worker is killed before the import finishes (Airflow retries the
task), or CC's import activity fails (the load sends it again itself). Either way the edits land,
the import is sent to CC exactly once per accepted activity, and the run costs what it must.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cc_sync.constant_contact.hook import ConstantContactHook
from tests.dags.conftest import SyncWorld

pytestmark = [pytest.mark.slow, pytest.mark.all_dialects]

IMPORTS = "POST /v3/activities/contacts_json_import"
LOAD = "load.constant_contact"
EDITED = 10


class WorkerKilled(Exception):
    """Stands for the worker dying (OOM, a node drained, SIGKILL) at a given point of the load."""


def _imports(world: SyncWorld) -> int:
    return world.emulator.admin.counters()["endpoints"].get(IMPORTS, 0)


def _calls(world: SyncWorld) -> int:
    return world.emulator.admin.counters()["api_calls"]


def _edit(world: SyncWorld, title: str, skip: int = 0) -> list[int]:
    """Give ``EDITED`` subscribed, linked members a new job title (members ``skip`` on)."""
    chosen = [
        m
        for m in world.linked_member_ids()
        if not world.member(m)["email_opt_out"]
        and world.contact_of(m)["email_address"]["permission_to_send"] != "unsubscribed"
    ][skip : skip + EDITED]
    assert len(chosen) == EDITED
    for member_id in chosen:
        world.edit_member(member_id, job_title=f"{title} {member_id}")
    return chosen


def _retry_the_load_once(world: SyncWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """As production does (CC_SYNC_TASK_RETRIES, 2 by default; the tests set 0), without the wait."""
    task = world.dag.get_task(LOAD)
    monkeypatch.setattr(task, "retries", 1)
    monkeypatch.setattr(task, "retry_delay", timedelta(0))


@pytest.mark.parametrize("when", ["before-the-first-poll", "after-it-completed"])
def test_a_load_killed_after_the_import_was_accepted_sends_it_once(
    synced: SyncWorld, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    edited = _edit(synced, "Steward")
    _retry_the_load_once(synced, monkeypatch)
    polled: list[str] = []
    get_activity = ConstantContactHook.get_activity

    def killed_once(self: ConstantContactHook, activity_id: str) -> Any:
        # The first try dies at its first poll: CC has the import, the task has nothing of its answer.
        first = not polled
        polled.append(activity_id)
        if first and when == "before-the-first-poll":
            raise WorkerKilled(f"killed while waiting for activity {activity_id}")
        activity = get_activity(self, activity_id)
        if first:
            assert activity.state.is_success(), activity
            raise WorkerKilled(f"killed after activity {activity_id} completed")
        return activity

    monkeypatch.setattr(ConstantContactHook, "get_activity", killed_once)
    imports_before = _imports(synced)

    run = synced.sync()

    assert run["state"] == "success", run["tasks"]
    assert run["tries"][LOAD] == 2, "the kill did not strike the load"
    assert _imports(synced) - imports_before == 1, "the retry sent the import to Constant Contact again"
    # The retry polled the activity the killed try had been accepted, and no other.
    assert len(set(polled)) == 1
    for member_id in edited:
        assert synced.contact_of(member_id)["job_title"] == f"Steward {member_id}"
    assert synced.reviews("write_failed_cc").empty
    # The retry's load spent one call: the poll that found the import done.
    assert run["counts"]["load_api_calls"] == 1
    monkeypatch.setattr(ConstantContactHook, "get_activity", get_activity)
    settled = synced.sync()
    assert settled["counts"]["changes"] == 0
    assert _imports(synced) - imports_before == 1


def test_an_import_activity_that_fails_once_is_sent_again_by_the_same_task(
    synced: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced.sync()  # the echo of the first sync's writes, so the next two runs read alike
    # Airflow could retry the task; the load must not need it.
    _retry_the_load_once(synced, monkeypatch)

    _edit(synced, "Warden")
    calls_before, imports_before = _calls(synced), _imports(synced)
    clean = synced.sync()
    clean_calls = _calls(synced) - calls_before
    assert clean["state"] == "success", clean["tasks"]
    assert _imports(synced) - imports_before == 1

    edited = _edit(synced, "Verger", skip=EDITED)
    synced.emulator.admin.set_faults(activity_fail_count=1)
    calls_before, imports_before = _calls(synced), _imports(synced)
    faulted = synced.sync()
    faulted_calls = _calls(synced) - calls_before
    synced.emulator.admin.clear_faults()

    assert faulted["state"] == "success", faulted["tasks"]
    assert faulted["tries"][LOAD] == 1, "the failed activity cost a task retry"
    assert _imports(synced) - imports_before == 2
    for member_id in edited:
        assert synced.contact_of(member_id)["job_title"] == f"Verger {member_id}"
    # One failed activity costs its resend and one poll of it: nothing else is done again.
    assert faulted_calls == clean_calls + 2, (clean_calls, faulted_calls)
    print(
        f"calls per edit: fault-free {clean_calls / EDITED:.2f} ({clean_calls} calls), "
        f"one failed import activity {faulted_calls / EDITED:.2f} ({faulted_calls} calls), "
        f"ratio {faulted_calls / clean_calls:.3f}"
    )
    assert synced.sync()["counts"]["changes"] == 0
