"""pytest fixtures that serve the Constant Contact emulator over real HTTP.

``emulator_server``: one emulator subprocess for the whole session. ``emulator``: the same server,
reset before each test to a fresh account and the test defaults (no rate limit, no daily quota, no
faults, activities processed at once), yielding its ``EmulatorHandle``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from include.cc_emulator.testing import EmulatorHandle, run_emulator

EMULATOR_TEST_DEFAULTS: dict[str, Any] = {
    "rate_limit_per_second": None,
    "daily_quota": None,
    "activity_processing_seconds": 0.0,
}


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def emulator(emulator_server: EmulatorHandle) -> EmulatorHandle:
    emulator_server.admin.reset(**EMULATOR_TEST_DEFAULTS)
    return emulator_server
