"""Code run in child processes (multiprocessing ``spawn``) by the concurrency tests."""

from __future__ import annotations

from typing import Any


def call_api_in_phases(conn_id: str, barrier: Any, phases: int, results: Any) -> None:
    """Each phase: wait for everyone, make one API call, wait again; report refreshes and errors."""
    from cc_sync.constant_contact.hook import ConstantContactHook

    hook = ConstantContactHook(conn_id, backoff_initial=0.01, backoff_max=0.05)
    refreshes: list[int] = []
    error = None
    try:
        for _ in range(phases):
            barrier.wait(timeout=120)
            before = hook.tokens.refreshes
            hook.get_account_summary()
            refreshes.append(hook.tokens.refreshes - before)
            barrier.wait(timeout=120)
    except Exception as exc:  # reported to the parent, which fails the test with it
        error = f"{type(exc).__name__}: {exc}"
        barrier.abort()
    results.put({"refreshes": refreshes, "error": error})
