"""The order the suite's tests are collected in, so that pytest-xdist's `worksteal` finishes early.

`worksteal` first gives each worker one contiguous block of the collection (the first half to the
first of two workers, the rest to the second, and so on), then lets an idle worker steal the tail of the
longest queue. Minutes-long end-to-end tests (a real `airflow standalone`, the demo, the contract
suite) are never stolen once a worker holds them at the head of its block, so they must be spread
over the blocks from the start: all of them in the first block ran one after another on one
worker while the other worker stole the short tests and then waited.

`balanced_order` sorts them, longest first, onto the least loaded worker, puts each worker's share
at the head of its block and fills every block with the short tests up to the size `worksteal`
gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import TypeVar

Test = TypeVar("Test")


def block_sizes(count: int, workers: int) -> list[int]:
    """The block each worker gets first, as `WorkStealingScheduling.check_schedule` cuts them."""
    sizes = []
    left = count
    for index in range(workers):
        size = left // (workers - index)
        sizes.append(size)
        left -= size
    return sizes


def balanced_order(
    tests: Sequence[Test], workers: int, long_file: Callable[[Test], tuple[str, float] | None]
) -> list[Test]:
    """`tests` reordered: the long files' tests spread over `workers` blocks, longest file first.

    ``long_file`` gives a long test's file and that file's minutes (None for a short test). A file
    stays whole on one worker: its tests share module fixtures (the demo's run, the contract
    suite's fuzzing) that a split would run twice. With one worker (or no long file) the long
    files simply go first, so they overlap nothing and a failing suite shows them early."""
    files: dict[str, list[Test]] = {}
    minutes: dict[str, float] = {}
    short: list[Test] = []
    for test in tests:
        found = long_file(test)
        if found is None:
            short.append(test)
            continue
        files.setdefault(found[0], []).append(test)
        minutes[found[0]] = found[1]
    by_length = sorted(files, key=lambda path: -minutes[path])
    if workers <= 1 or not files:
        return [test for path in by_length for test in files[path]] + short

    shares: list[list[Test]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for path in by_length:
        lightest = loads.index(min(loads))
        shares[lightest].extend(files[path])
        loads[lightest] += minutes[path]

    sizes = block_sizes(len(tests), workers)
    if any(len(share) > size for share, size in zip(shares, sizes, strict=True)):
        return [test for path in by_length for test in files[path]] + short  # nothing to balance

    order: list[Test] = []
    rest = iter(short)
    for share, size in zip(shares, sizes, strict=True):
        order.extend(share)
        order.extend(islice(rest, size - len(share)))
    return order
