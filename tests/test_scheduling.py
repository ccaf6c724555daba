"""The suite's collection order against pytest-xdist's own `worksteal` scheduler: every long file
starts, whole, at the head of a worker's first block, and the long minutes are shared out evenly."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from xdist.scheduler import worksteal

from tests.scheduling import balanced_order


class _Worker:
    """What the scheduler uses of an xdist worker: the tests sent to it."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def _first_blocks(collection: list[str], workers: int, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    monkeypatch.setattr(worksteal, "parse_tx_spec_config", lambda config: ["popen"] * workers)
    scheduler = worksteal.WorkStealingScheduling(SimpleNamespace())  # type: ignore[arg-type]
    nodes = [_Worker(f"gw{index}") for index in range(workers)]
    for node in nodes:
        scheduler.add_node(node)  # type: ignore[arg-type]
    for node in nodes:
        scheduler.add_node_collection(node, collection)  # type: ignore[arg-type]
    scheduler.schedule()
    return [[collection[index] for index in node.sent] for node in nodes]


@pytest.mark.parametrize(
    ("workers", "short", "file_tests", "file_minutes"),
    [
        (2, 1000, [2, 1, 1, 3, 40, 1, 12], [9.0, 6.0, 5.0, 4.0, 5.0, 3.0, 3.0]),
        (2, 7, [1, 1, 2], [1.0, 2.0, 3.0]),
        (3, 500, [1, 1, 1, 2, 1, 1], [5.0, 5.0, 5.0, 1.0, 1.0, 1.0]),
        (2, 50, [], []),
    ],
)
def test_long_files_head_the_workers_first_blocks_whole_and_share_the_minutes(
    workers: int,
    short: int,
    file_tests: list[int],
    file_minutes: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = {f"file{index}": minutes for index, minutes in enumerate(file_minutes)}
    long = [f"file{index}::t{test}" for index, count in enumerate(file_tests) for test in range(count)]
    tests = [f"short{index}" for index in range(short // 2)] + long
    tests += [f"short{index}" for index in range(short // 2, short)]

    def long_file(test: str) -> tuple[str, float] | None:
        path = test.split("::")[0]
        return (path, files[path]) if path in files else None

    order = balanced_order(tests, workers, long_file)
    blocks = _first_blocks(order, workers, monkeypatch)

    assert sorted(test for block in blocks for test in block) == sorted(tests)
    loads = []
    for block in blocks:
        heads = [test for test in block if long_file(test)]
        assert block[: len(heads)] == heads  # long ones first: never stolen, started at once
        paths = {test.split("::")[0] for test in heads}
        assert all(
            sum(test.startswith(f"{path}::") for test in heads) == file_tests[int(path[4:])] for path in paths
        )
        loads.append(sum(files[path] for path in paths))
    if files:
        assert max(loads) - min(loads) <= max(files.values())


def test_one_worker_runs_the_long_files_first_longest_first() -> None:
    files: dict[str, Any] = {"b": ("b", 2.0), "a": ("a", 5.0)}
    assert balanced_order(["x", "b", "y", "a"], 1, files.get) == ["a", "b", "x", "y"]
