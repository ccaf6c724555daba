"""The daily quota and the rate limit: stop cleanly before or at the quota, never draw a 429."""

from __future__ import annotations

import pytest

from cc_sync.constant_contact.errors import ConstantContactBudgetExhausted, ConstantContactQuotaExceeded


def test_server_quota_exceeded_fails_at_once_saying_when_it_resets(emulator, make_hook):
    emulator.admin.configure(daily_quota=3)
    hook = make_hook(max_attempts=8)
    for _ in range(3):
        hook.get_account_summary()
    with pytest.raises(ConstantContactQuotaExceeded) as caught:
        hook.get_account_summary()
    assert hook.api_calls == 4  # no retry: retrying before midnight only burns time
    assert "00:00 UTC" in str(caught.value)
    assert caught.value.resets_at.hour == 0
    assert emulator.admin.counters()["quota_exceeded"] == 1


def test_hook_budget_stops_before_calling(emulator, make_hook, database_url):
    hook = make_hook(state_db_uri=database_url, daily_budget=5, budget_reserve=2)
    for _ in range(3):
        hook.get_account_summary()
    with pytest.raises(ConstantContactBudgetExhausted) as caught:
        hook.get_account_summary()
    assert emulator.admin.counters()["api_calls"] == 3  # the refused call never left the hook
    assert caught.value.used == 3
    assert hook.quota_usage().remaining == 0
    # Another task on the same state database is refused too: the count is shared.
    with pytest.raises(ConstantContactBudgetExhausted):
        make_hook(state_db_uri=database_url, daily_budget=5, budget_reserve=2).get_account_summary()


def test_budget_stops_a_long_read_part_way_without_a_server_error(emulator, make_hook):
    emulator.admin.seed_contacts(count=1_000)
    hook = make_hook(daily_budget=4, budget_reserve=0)
    read = []
    with pytest.raises(ConstantContactBudgetExhausted):
        read.extend(hook.iter_contacts(limit=100))
    assert len(read) == 400
    assert emulator.admin.counters()["quota_exceeded"] == 0


def test_every_attempt_counts_against_the_budget(emulator, make_hook):
    hook = make_hook(daily_budget=100, budget_reserve=0)
    emulator.admin.set_faults(error_500_rate=0.5, seed=1)
    for _ in range(5):
        hook.get_account_summary()
    assert hook.quota_usage().used == hook.api_calls
    assert hook.api_calls == emulator.admin.counters()["api_calls"]
    assert hook.api_calls > 5


def test_rate_limited_burst_draws_no_throttling(emulator, make_hook, database_url):
    """Two hooks (two tasks) sharing one limiter, against the emulator's real 4/s window."""
    emulator.admin.configure(rate_limit_per_second=4)
    first = make_hook(state_db_uri=database_url, requests_per_second=4)
    second = make_hook(state_db_uri=database_url, requests_per_second=4)
    for _ in range(6):
        first.get_account_summary()
        second.get_account_summary()
    counters = emulator.admin.counters()
    assert counters["throttled"] == 0
    assert counters["api_calls"] == 12


def test_without_the_limiter_the_same_burst_is_throttled(emulator, make_hook):
    """The control for the test above: the emulator does throttle a burst the hook does not pace."""
    emulator.admin.configure(rate_limit_per_second=4)
    hook = make_hook(max_attempts=10)
    hook.backoff_initial, hook.backoff_max = 0.2, 1.0  # backoff long enough to outlast the window
    for _ in range(12):
        hook.get_account_summary()
    assert emulator.admin.counters()["throttled"] > 0
