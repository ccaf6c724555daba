"""Skips that CI turns into failures.

A test whose PostgreSQL, MariaDB or reference spec is missing skips on a developer's machine, with
the reason. Under ``CI=true`` (``.ci/run`` sets it) it fails instead: a green CI run means every
dialect and the spec conformance were tested, not quietly left out.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str, *, allow_module_level: bool = False) -> None:
    """Skip with ``reason``; under ``CI=true``, fail with it."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=allow_module_level)
