"""state.py: the daily budget and the rate limiter shared through SQL, on every dialect."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from cc_sync.constant_contact.errors import ConstantContactBudgetExhausted
from cc_sync.constant_contact.state import (
    MICROS,
    RATE_SAFETY_MARGIN,
    SharedState,
    dispose_engines,
    limiter_table,
)


@pytest.fixture
def state(database_url):
    yield SharedState(database_url)
    dispose_engines()


def test_budget_counts_every_call_and_stops_before_the_reserve(state):
    for _ in range(7):
        state.reserve_call("app-1", rate_per_second=None, budget=10, reserve=3)
    with pytest.raises(ConstantContactBudgetExhausted) as caught:
        state.reserve_call("app-1", rate_per_second=None, budget=10, reserve=3)
    assert caught.value.used == 7
    assert "00:00 UTC" in str(caught.value)
    # The refused call was not counted, and another API key has its own count.
    assert state.usage("app-1", 10, 3).used == 7
    assert state.usage("app-1", 10, 3).remaining == 0
    state.reserve_call("app-2", rate_per_second=None, budget=10, reserve=3)
    assert state.usage("app-2", 10, 3).used == 1


def test_a_sqlite_state_file_keeps_a_write_ahead_log(tmp_path):
    """Two commits per API call: the rollback journal cost twice the CPU (README, API budget)."""
    state = SharedState(f"sqlite:///{tmp_path / 'state.db'}")
    state.reserve_call("app", rate_per_second=None, budget=10, reserve=0)
    with state.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert (tmp_path / "state.db-wal").exists()
    dispose_engines()


def test_budget_is_shared_by_two_state_objects_on_one_database(state):
    other = SharedState(state.url)
    state.reserve_call("app", rate_per_second=None, budget=3, reserve=0)
    other.reserve_call("app", rate_per_second=None, budget=3, reserve=0)
    state.reserve_call("app", rate_per_second=None, budget=3, reserve=0)
    with pytest.raises(ConstantContactBudgetExhausted):
        other.reserve_call("app", rate_per_second=None, budget=3, reserve=0)


@pytest.mark.parametrize("rate", [4.0, 10.0])
def test_limiter_hands_out_slots_at_least_one_interval_apart(state, rate):
    slots = [state.reserve_call("app", rate_per_second=rate, budget=None) for _ in range(12)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= RATE_SAFETY_MARGIN / rate - 1 / MICROS
    # Any rate+1 consecutive slots span more than one second: the server never sees rate+1 in a second.
    assert all(slots[i + int(rate)] - slots[i] > 1.0 for i in range(len(slots) - int(rate)))


def test_a_refused_call_takes_no_limiter_slot(state):
    first = state.reserve_call("app", rate_per_second=4.0, budget=1, reserve=0)
    with pytest.raises(ConstantContactBudgetExhausted):
        state.reserve_call("app", rate_per_second=4.0, budget=1, reserve=0)
    with state.engine.begin() as conn:
        next_free = conn.execute(sa.select(limiter_table.c.next_free_us)).scalar_one()
    assert next_free == round(first * MICROS) + int(MICROS * RATE_SAFETY_MARGIN / 4.0)


def test_a_run_s_calls_are_counted_per_dag_as_its_api_log_lists_them(state):
    # Two DAGs' scheduled runs of the same hour share a run id; each run counts only its own calls.
    run_id = "scheduled__2026-12-05T20:00:00+00:00"
    calls = [("constant_contact_sync", "extract.contacts")] * 3 + [("constant_contact_activity", "pull")] * 2
    for n, (dag_id, task_id) in enumerate(calls):
        state.log_call(
            {"run_id": run_id, "dag_id": dag_id, "task_id": task_id, "method": "GET",
             "path": "/v3/contacts", "status": 200, "duration_ms": 5, "at_us": n}
        )  # fmt: skip
    state.log_call(
        {"run_id": "manual__other", "dag_id": "constant_contact_sync", "task_id": "link", "method": "GET",
         "path": "/v3/contacts/x", "status": None, "duration_ms": 5, "at_us": 9}
    )  # fmt: skip

    assert state.call_count(run_id, "constant_contact_sync") == 3
    assert state.call_count(run_id, "constant_contact_activity") == 2
    assert state.call_count(run_id) == 5
    assert [c["task_id"] for c in state.call_log(run_id, "constant_contact_activity")] == ["pull", "pull"]
    assert state.call_count("manual__other", "constant_contact_sync") == 1
    assert state.call_count("manual__never", "constant_contact_sync") == 0
