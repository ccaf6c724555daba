"""Everything one emulator process holds: account data, tokens, activities, limits, counters, log.

State lives in memory. With a state file it is also written there (atomically, at most about once
a second and at shutdown) and read back at start, so a demo keeps its account, its lists and its
rotated refresh token between runs.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter, deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from include.cc_emulator.activities import ActivityQueue
from include.cc_emulator.auth import TokenStore
from include.cc_emulator.campaigns import CampaignStore
from include.cc_emulator.clock import now_timestamp
from include.cc_emulator.events import EventStore
from include.cc_emulator.exports import ExportFiles
from include.cc_emulator.limits import DailyQuota, FaultInjector, RateLimiter
from include.cc_emulator.settings import EmulatorSettings, FaultSettings
from include.cc_emulator.store import AccountStore

log = logging.getLogger(__name__)
STATE_FORMAT_VERSION = 1


class EmulatorState:
    def __init__(self, settings: EmulatorSettings) -> None:
        settings.validate()
        self.initial_settings = settings
        self.settings = settings
        self.store = AccountStore()
        self.campaigns = CampaignStore()
        self.events = EventStore()
        self.exports = ExportFiles()
        self.tokens = TokenStore()
        self.faults = FaultInjector(settings.faults)
        self.activities = ActivityQueue(
            processing_seconds=lambda: self.settings.activity_processing_seconds,
            should_fail=self.faults.activity_fails,
            on_change=self.mark_dirty,
        )
        self.rate_limiter = RateLimiter()
        self.quota = DailyQuota()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=settings.request_log_size)
        self.endpoint_calls: Counter[str] = Counter()
        self.event_counts: Counter[str] = Counter()
        self.dirty = False
        if settings.state_file is not None and settings.state_file.exists():
            self.load(settings.state_file)

    # ----------------------------------------------------------------------------- settings

    def configure(self, **changes: Any) -> None:
        faults = changes.pop("faults", None)
        settings = self.settings.with_changes(**changes)
        if faults is not None:
            settings = replace(settings, faults=FaultSettings(**faults))
            settings.validate()
            self.faults.configure(settings.faults)
        if settings.request_log_size != self.settings.request_log_size:
            self.request_log = deque(self.request_log, maxlen=settings.request_log_size)
        self.settings = settings

    def set_faults(self, **rates: Any) -> None:
        faults = FaultSettings(**rates)
        faults.validate()
        self.settings = replace(self.settings, faults=faults)
        self.faults.configure(faults)

    def reset(self, **changes: Any) -> None:
        """A fresh account and the start-up settings (plus ``changes``); the state file is kept."""
        self.activities.cancel_all()
        self.store = AccountStore()
        self.campaigns = CampaignStore()
        self.events = EventStore()
        self.exports = ExportFiles()
        self.tokens = TokenStore()
        self.settings = self.initial_settings
        self.faults.configure(self.settings.faults)
        self.rate_limiter = RateLimiter()
        self.quota = DailyQuota()
        self.request_log = deque(maxlen=self.settings.request_log_size)
        self.endpoint_calls.clear()
        self.event_counts.clear()
        if changes:
            self.configure(**changes)
        self.mark_dirty()

    # ----------------------------------------------------------------------------- bookkeeping

    def record(
        self,
        *,
        method: str,
        path: str,
        query: str,
        endpoint: str,
        status: int,
        time: str,
        body: Any = None,
    ) -> None:
        self.endpoint_calls[endpoint] += 1
        self.request_log.append(
            {
                "method": method,
                "path": path,
                "query": query,
                "endpoint": endpoint,
                "status": status,
                "time": time,
                "body": body,
            }
        )

    def count_event(self, name: str) -> None:
        self.event_counts[name] += 1

    def counters(self) -> dict[str, Any]:
        return {
            "api_calls": sum(self.endpoint_calls.values()),
            "endpoints": dict(self.endpoint_calls),
            "quota_used_today": self.quota.used,
            "resubscribes": self.store.resubscribes,
            "sign_up_form_calls": self.event_counts["sign_up_form_calls"],
            "token_refreshes": self.event_counts["token_refreshes"],
            "token_requests": self.event_counts["token_requests"],
            "throttled": self.event_counts["throttled"],
            "quota_exceeded": self.event_counts["quota_exceeded"],
            "unauthorized": self.event_counts["unauthorized"],
            "faults": {k[len("fault:") :]: v for k, v in self.event_counts.items() if k.startswith("fault:")},
        }

    # ----------------------------------------------------------------------------- persistence

    def mark_dirty(self) -> None:
        self.dirty = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": STATE_FORMAT_VERSION,
            "saved_at": now_timestamp(),
            "account": self.store.to_dict(),
            "campaigns": self.campaigns.to_dict(),
            "events": self.events.to_dict(),
            "tokens": self.tokens.to_dict(),
            "activities": self.activities.to_dict(),
        }

    def save(self, path: Path | None = None) -> None:
        path = path or self.settings.state_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(self.to_dict(), separators=(",", ":"))
        # Write then rename, so a crash mid-write never leaves a half file behind.
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
        os.replace(tmp, path)
        self.dirty = False

    def snapshot(self) -> dict[str, Any]:
        """Everything a test may look at afterwards: the saved state plus counters and the log.

        ``restore(snapshot())`` puts the account back exactly (contacts, lists, tokens, finished
        activities, counters), so a test world can start from a state another run built.
        """
        return {
            **self.to_dict(),
            "counters": {
                "endpoint_calls": dict(self.endpoint_calls),
                "event_counts": dict(self.event_counts),
                "quota_used": self.quota.used,
            },
            "request_log": list(self.request_log),
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the account with a :meth:`snapshot` (the settings stay as they are)."""
        self.activities.cancel_all()
        self._load_dict(data, source="snapshot")
        counters = data.get("counters") or {}
        self.endpoint_calls = Counter(counters.get("endpoint_calls") or {})
        self.event_counts = Counter(counters.get("event_counts") or {})
        self.rate_limiter = RateLimiter()
        self.quota = DailyQuota()
        self.quota.used = int(counters.get("quota_used") or 0)
        self.request_log = deque(data.get("request_log") or [], maxlen=self.settings.request_log_size)
        self.mark_dirty()

    def load(self, path: Path) -> None:
        self._load_dict(json.loads(path.read_text(encoding="utf-8")), source=str(path))

    def _load_dict(self, data: dict[str, Any], *, source: str) -> None:
        if data.get("format_version") != STATE_FORMAT_VERSION:
            raise ValueError(f"{source}: unknown emulator state format {data.get('format_version')!r}")
        self.store = AccountStore.from_dict(data.get("account", {}))
        self.campaigns = CampaignStore.from_dict(data.get("campaigns", {}))
        self.events = EventStore.from_dict(data.get("events", {}))
        self.exports = ExportFiles()  # files are not saved: an old export's link answers 404
        self.tokens = TokenStore.from_dict(data.get("tokens", {}))
        self.activities.load(data.get("activities", []))
        log.info("emulator state loaded from %s: %d contacts", source, len(self.store.contacts))
