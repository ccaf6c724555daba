"""What several benchmarks measure the same way."""

from __future__ import annotations

import threading
import time

import psutil


class PeakRss:
    """Sample this process's resident set every few milliseconds; ``peak`` is the high-water mark.

    Not ``ru_maxrss``: a spawned child starts by fork + exec, and Linux keeps the parent's
    high-water mark across both, so a child of a large parent would report the parent's peak.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
