"""Benchmark of the Constant Contact hook against the emulator over real HTTP (`make bench`, part 1).

1. Read N contacts through the hook (rate limits off on both sides): contacts/s, and API calls
   against the minimum ceil(N/500).
2. Bulk-import N contacts: requests against ceil(N/40,000), polls, and polls per 2 s of activity.
3. Rate limits on (the emulator's real 4/s window, the hook's shared limiter at 4/s): a burst of
   calls draws no 429.

``run(results, quick=False, burst=None)`` writes the figures into ``results``; run alone with
``python -m bench.bench_cc_hook [--quick] [--burst N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONN_ID = "cc_bench"
FULL_CONTACTS = 100_000
QUICK_CONTACTS = 10_000
FULL_BURST = 1_000
QUICK_BURST = 40


def _connection(emulator: Any, state_db_uri: str, **extra: Any) -> str:
    from include.cc_emulator import DEMO_REFRESH_TOKEN

    settings = {
        "refresh_token": DEMO_REFRESH_TOKEN,
        "token_url": emulator.token_url,
        "state_db_uri": state_db_uri,
        "requests_per_second": None,
        "daily_budget": None,
        "timeout": 120,
        **extra,
    }
    return json.dumps(
        {
            "conn_type": "constant_contact",
            "host": emulator.base_url,
            "login": emulator.client_id,
            "password": emulator.client_secret,
            "extra": settings,
        }
    )


def _hook(emulator: Any, state_db_uri: str, **extra: Any) -> Any:
    from cc_sync.constant_contact.hook import ConstantContactHook

    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = _connection(emulator, state_db_uri, **extra)
    return ConstantContactHook(CONN_ID)


def bench_read(emulator: Any, state_db_uri: str, n: int, results: dict[str, Any]) -> None:
    from cc_sync.constant_contact.convert import contacts_to_frame

    emulator.admin.seed_contacts(count=n)
    hook = _hook(emulator, state_db_uri)
    hook.get_account_summary()  # the token refresh is not part of the read
    calls_before = hook.api_calls
    started = time.perf_counter()
    contacts = list(hook.iter_contacts())
    read_seconds = time.perf_counter() - started
    calls = hook.api_calls - calls_before
    frame = contacts_to_frame(contacts, hook.custom_field_names())
    total_seconds = time.perf_counter() - started
    assert len(frame) == n, f"read {len(frame)} of {n} contacts"
    results["read_contacts"] = n
    results["read_contacts_per_s"] = round(n / read_seconds)
    results["read_and_frame_contacts_per_s_incl_custom_field_call"] = round(n / total_seconds)
    results["read_api_calls"] = calls
    results["read_api_calls_minimum"] = math.ceil(n / 500)
    results["read_target_met"] = n / read_seconds >= 5_000 and calls == math.ceil(n / 500)


def bench_import(emulator: Any, state_db_uri: str, n: int, results: dict[str, Any]) -> None:
    hook = _hook(emulator, state_db_uri)
    list_id = hook.get_or_create_list("Benchmark import").list_id
    rows = [
        {"email": f"bench.{i}@example.org", "first_name": "Bench", "last_name": f"Person {i}", "city": "Town"}
        for i in range(n)
    ]
    started = time.perf_counter()
    result = hook.import_contacts(rows, [list_id])
    seconds = time.perf_counter() - started
    assert result.ok, result.summary()
    requests = len(result.activities)
    minimum = math.ceil(n / 40_000)
    results["import_contacts"] = n
    results["import_seconds"] = round(seconds, 1)
    results["import_contacts_per_s"] = round(n / seconds)
    results["import_requests"] = requests
    results["import_requests_minimum"] = minimum
    results["import_polls"] = result.polls
    results["import_api_calls"] = result.api_calls
    # The first poll comes after ~1 s by design; after that at most one every 2 s.
    polls_allowed = 1 + math.floor(max(seconds - 1, 0) / 2)
    results["import_polls_allowed"] = polls_allowed
    results["import_target_met"] = requests == minimum and result.polls <= polls_allowed


def bench_burst(emulator: Any, state_db_uri: str, burst: int, results: dict[str, Any]) -> None:
    emulator.admin.configure(rate_limit_per_second=4)
    hook = _hook(emulator, state_db_uri, requests_per_second=4)
    hook.get_account_summary()
    throttled_before = emulator.admin.counters()["throttled"]
    started = time.perf_counter()
    for _ in range(burst):
        hook.get_account_summary()
    seconds = time.perf_counter() - started
    throttled = emulator.admin.counters()["throttled"] - throttled_before
    results["burst_calls"] = burst
    results["burst_seconds"] = round(seconds, 1)
    results["burst_calls_per_s"] = round(burst / seconds, 2)
    results["burst_429s"] = throttled
    results["burst_target_met"] = throttled == 0


def run(results: dict[str, Any], *, quick: bool = False, burst: int | None = None) -> None:
    from include import airflow_env

    airflow_env.apply()
    from include.cc_emulator.testing import run_emulator

    n = QUICK_CONTACTS if quick else FULL_CONTACTS
    burst = burst or (QUICK_BURST if quick else FULL_BURST)
    # One state database for all three parts, as one deployment has: the refresh token rotates.
    state_db_uri = f"sqlite:///{Path(tempfile.mkdtemp(prefix='cc-hook-bench-')) / 'cc_api_state.db'}"
    with run_emulator(rate_limit_per_second=None, daily_quota=None) as emulator:
        bench_read(emulator, state_db_uri, n, results)
        bench_import(emulator, state_db_uri, n, results)
        bench_burst(emulator, state_db_uri, burst, results)
    for key, value in results.items():
        print(f"{key}: {value}", flush=True)


if __name__ == "__main__":
    sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--burst", type=int, default=None)
    args = parser.parse_args()
    run({}, quick=args.quick, burst=args.burst)
