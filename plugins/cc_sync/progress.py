"""Progress lines for long reads and writes: done (of total, where known), rows/s, calls so far
and, with a total, the calls still expected.

One line every :data:`EVERY` at most (and one at the end), so a 100,000-contact read logs a dozen
lines, not two hundred pages' worth; the clock is a parameter, so tests need no waiting.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

EVERY = 10.0  # seconds between two progress lines


class Progress:
    """Counts ``unit`` done towards ``total`` (None: unknown) and logs how it goes.

    ``per_call`` is how many units one API call does (500 contacts a page; 0.5 where a contact
    costs two calls): with a total, the line says about how many calls are left.
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        unit: str = "rows",
        per_call: float | None = None,
        calls: Callable[[], int] | None = None,
        logger: logging.Logger | None = None,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit, self.per_call = label, total, unit, per_call
        self._calls, self._every, self._clock = calls, every, clock
        self._log = logger or logging.getLogger(__name__)
        self._calls_before = calls() if calls else 0
        self.done = 0
        self._started = self._last = clock()

    def add(self, count: int) -> None:
        self.done += count
        if self._clock() - self._last >= self._every:
            self.log()

    def line(self) -> str:
        elapsed = max(self._clock() - self._started, 1e-9)
        parts = [f"{self.label}: {self.done:,}" + (f" of {self.total:,}" if self.total is not None else "")]
        parts.append(f"{self.unit}, {self.done / elapsed:,.0f} {self.unit}/s")
        if self._calls is not None:
            parts.append(f"{self._calls() - self._calls_before} API call(s)")
            if self.total is not None and self.per_call:
                left = max(math.ceil((self.total - self.done) / self.per_call), 0)
                parts.append(f"about {left} more expected")
        return "; ".join([" ".join(parts[:2]), *parts[2:]])

    def log(self) -> None:
        self._last = self._clock()
        self._log.info("%s", self.line())

    def track(self, items: Iterable[T], size: Callable[[T], int] = lambda _: 1) -> Iterator[T]:
        """Yield ``items``, counting ``size(item)`` of each; a last line when they run out."""
        for item in items:
            yield item
            self.add(size(item))
        self.log()
