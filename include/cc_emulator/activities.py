"""Bulk activities: queued on arrival, processed one after another in the background, polled by id.

An activity goes ``initialized`` -> ``processing`` -> ``completed`` (or ``failed`` when a fault says
so), like ``GET /v3/activities/{id}`` shows on the real API. Each one stays ``processing`` for
``activity_processing_seconds`` so a client's polling loop is really exercised. The work itself runs
in the event loop, so it never races the request handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from include.cc_emulator.clock import now_timestamp
from include.cc_emulator.store import new_id

log = logging.getLogger(__name__)

# The work of an activity: applied when its turn comes; answers its status counts and error strings.
ActivityWork = Callable[[], tuple[dict[str, Any], list[str]]]


class ActivityState(StrEnum):
    INITIALIZED = "initialized"
    PROCESSING = "processing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


QUEUED_STATES = frozenset({ActivityState.INITIALIZED.value, ActivityState.PROCESSING.value})


@dataclass
class _Pending:
    activity: dict[str, Any]
    work: ActivityWork
    fails: bool


class ActivityQueue:
    def __init__(
        self,
        processing_seconds: Callable[[], float],
        should_fail: Callable[[], bool],
        on_change: Callable[[], None],
    ) -> None:
        self.activities: dict[str, dict[str, Any]] = {}
        self._processing_seconds = processing_seconds
        self._should_fail = should_fail
        self._on_change = on_change
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._started: dict[str, float] = {}  # activity id -> monotonic start, for percent_done

    def queued_count(self) -> int:
        return sum(1 for a in self.activities.values() if a["state"] in QUEUED_STATES)

    def submit(
        self, status: dict[str, Any], work: ActivityWork, *, source_file_name: str | None = None
    ) -> dict:
        at = now_timestamp()
        activity_id = new_id()
        activity: dict[str, Any] = {
            "activity_id": activity_id,
            "state": ActivityState.INITIALIZED.value,
            "created_at": at,
            "updated_at": at,
            "percent_done": 0,
            "activity_errors": [],
            "status": status,
            "_links": {"self": {"href": f"/v3/activities/{activity_id}"}},
        }
        if source_file_name:
            activity["source_file_name"] = source_file_name
        self.activities[activity_id] = activity
        self._ensure_worker()
        assert self._queue is not None
        self._queue.put_nowait(_Pending(activity, work, self._should_fail()))
        return activity

    def view(self, activity_id: str) -> dict[str, Any] | None:
        activity = self.activities.get(activity_id)
        if activity is not None and activity["state"] == ActivityState.PROCESSING.value:
            duration = self._processing_seconds()
            started = self._started.get(activity_id)
            if duration > 0 and started is not None:
                activity["percent_done"] = min(99, int(100 * (time.monotonic() - started) / duration))
        return activity

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            pending = await self._queue.get()
            try:
                await self._process(pending)
            except Exception:  # one broken activity must not stop the queue
                log.exception("activity %s failed unexpectedly", pending.activity["activity_id"])
                self._finish(pending.activity, ActivityState.FAILED, errors=["internal error"])

    async def _process(self, pending: _Pending) -> None:
        activity = pending.activity
        if activity["state"] != ActivityState.INITIALIZED.value:
            return  # cancelled or reset meanwhile
        activity.update(
            state=ActivityState.PROCESSING.value, started_at=now_timestamp(), updated_at=now_timestamp()
        )
        self._started[activity["activity_id"]] = time.monotonic()
        await asyncio.sleep(self._processing_seconds())
        if activity["state"] != ActivityState.PROCESSING.value:
            return
        if pending.fails:
            self._finish(
                activity,
                ActivityState.FAILED,
                errors=["The activity failed (injected fault); nothing was applied."],
            )
            return
        status, errors = pending.work()
        activity["status"] = {**activity["status"], **status}
        self._finish(activity, ActivityState.COMPLETED, errors=errors)

    def _finish(self, activity: dict[str, Any], state: ActivityState, *, errors: list[str]) -> None:
        at = now_timestamp()
        activity.update(state=state.value, completed_at=at, updated_at=at, activity_errors=errors)
        if state is ActivityState.COMPLETED:
            activity["percent_done"] = 100
        self._started.pop(activity["activity_id"], None)
        self._on_change()

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._worker
        self._worker = None
        self._queue = None

    def cancel_all(self) -> None:
        """Drop queued work (on reset) without awaiting; the worker skips what is no longer queued."""
        for activity in self.activities.values():
            if activity["state"] in QUEUED_STATES:
                activity["state"] = ActivityState.CANCELLED.value
        self.activities.clear()
        self._started.clear()
        if self._worker is not None:
            # The worker may be asleep on a long "processing" activity: start afresh instead of waiting.
            self._worker.cancel()
        self._worker = None
        self._queue = None

    def to_dict(self) -> list[dict[str, Any]]:
        return list(self.activities.values())

    def load(self, activities: list[dict[str, Any]]) -> None:
        for activity in activities:
            if activity.get("state") in QUEUED_STATES:
                # The work died with the previous process: say so rather than leave it queued forever.
                activity["state"] = ActivityState.TIMED_OUT.value
                activity["activity_errors"] = ["The emulator stopped before this activity was processed."]
            self.activities[activity["activity_id"]] = activity
