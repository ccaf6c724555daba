"""CI cannot pass with a database left out: under CI=true a missing server fails its tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# A port nothing listens on: PostgreSQL "does not answer" there.
DEAD_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:9/test"


def _run_state_tests(ci: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": ci, "CC_SYNC_TEST_POSTGRES_URL": DEAD_POSTGRES}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-k", "postgresql",
         "tests/constant_contact/test_state.py"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


@pytest.mark.parametrize(("ci", "exit_code", "word"), [("true", 1, "error"), ("", 0, "skipped")])
def test_a_missing_database_fails_under_ci_and_skips_elsewhere(ci: str, exit_code: int, word: str) -> None:
    result = _run_state_tests(ci)
    assert result.returncode == exit_code, result.stdout[-2000:]
    assert word in result.stdout.splitlines()[-1]
    assert "postgresql does not answer" in result.stdout
