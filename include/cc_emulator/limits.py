"""The API's limits (4 requests a second, 10,000 a day) and the faults a test can switch on.

Faults are drawn from one ``random.Random(seed)``, so the same seed and the same request sequence
fail the same way again: a failure seen once can be reproduced.
"""

from __future__ import annotations

import random
import time
from collections import deque
from datetime import UTC, datetime
from enum import StrEnum

from include.cc_emulator.settings import FaultSettings


class RateLimiter:
    """A sliding one-second window: more than ``per_second`` requests inside it are throttled."""

    def __init__(self) -> None:
        self._recent: deque[float] = deque()

    def allow(self, per_second: float | None) -> bool:
        if per_second is None:
            return True
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if len(self._recent) >= per_second:
            return False
        self._recent.append(now)
        return True


class DailyQuota:
    """Requests counted per UTC day; the count starts again at 00:00 UTC."""

    def __init__(self) -> None:
        self.day = self._today()
        self.used = 0

    @staticmethod
    def _today() -> str:
        return datetime.now(UTC).date().isoformat()

    def allow(self, quota: int | None) -> bool:
        today = self._today()
        if today != self.day:
            self.day, self.used = today, 0
        if quota is not None and self.used >= quota:
            return False
        self.used += 1
        return True


class Fault(StrEnum):
    THROTTLED = "429"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    DROP = "drop"
    LOST_ANSWER = "lost_answer"
    TRUNCATE = "truncate"


class FaultInjector:
    def __init__(self, settings: FaultSettings) -> None:
        self.configure(settings)

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self.random = random.Random(settings.seed)
        self.activity_failures_left = settings.activity_fail_count

    def draw(self) -> tuple[Fault | None, float]:
        """The fault for the next /v3 request (or None) and how many seconds to delay it."""
        s = self.settings
        if not s.any_active:
            return None, 0.0
        delay = s.slow_seconds if s.slow_rate and self.random.random() < s.slow_rate else 0.0
        roll = self.random.random()
        for fault, rate in (
            (Fault.THROTTLED, s.error_429_rate),
            (Fault.SERVER_ERROR, s.error_500_rate),
            (Fault.UNAVAILABLE, s.error_503_rate),
            (Fault.DROP, s.drop_rate),
            (Fault.LOST_ANSWER, s.lost_answer_rate),
            (Fault.TRUNCATE, s.truncate_rate),
        ):
            if roll < rate:
                return fault, delay
            roll -= rate
        return None, delay

    def token_answer_lost(self) -> bool:
        rate = self.settings.token_lost_answer_rate
        return bool(rate) and self.random.random() < rate

    def activity_fails(self) -> bool:
        if self.activity_failures_left > 0:
            self.activity_failures_left -= 1
            return True
        rate = self.settings.activity_fail_rate
        return bool(rate) and self.random.random() < rate
