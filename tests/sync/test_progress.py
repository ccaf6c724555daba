"""Progress lines: at most one per interval, a last one at the end, rates and calls left (a fake
clock: nothing here waits)."""

from __future__ import annotations

import logging

import pytest

from cc_sync.progress import Progress


def test_a_line_per_interval_and_one_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    calls = [0]

    def pages():
        for _ in range(5):
            now[0] += 4.0  # each page of 500 takes 4 s
            calls[0] += 1
            yield list(range(500))

    progress = Progress(
        "Contacts read", total=2_500, per_call=500, calls=lambda: calls[0], every=10.0, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO, logger="cc_sync.progress"):
        read = sum(len(page) for page in progress.track(pages(), size=len))
    lines = [r.getMessage() for r in caplog.records]
    assert read == 2_500
    assert lines == [
        "Contacts read: 1,500 of 2,500 rows, 125 rows/s; 3 API call(s); about 2 more expected",
        "Contacts read: 2,500 of 2,500 rows, 125 rows/s; 5 API call(s); about 0 more expected",
    ]


def test_without_a_total_it_says_what_it_knows() -> None:
    now = [0.0]
    progress = Progress("Members read", clock=lambda: now[0])
    progress.add(300)
    now[0] = 2.0
    assert progress.line() == "Members read: 300 rows, 150 rows/s"
