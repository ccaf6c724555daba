"""Fixtures for the Constant Contact hook tests: a connection to the emulator, set through the
environment as Airflow reads it (AIRFLOW_CONN_*), with the hook's state in a fresh database."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.constant_contact.state import dispose_engines
from include.cc_emulator import DEMO_REFRESH_TOKEN
from include.cc_emulator.testing import EmulatorHandle

CONN_ID = "constant_contact_default"
# Retries in tests wait milliseconds, not seconds: the behaviour is the same, the suite is quick.
FAST_RETRIES = {"backoff_initial": 0.01, "backoff_max": 0.05}


def connection_json(emulator: EmulatorHandle, state_db_uri: str, **extra: Any) -> str:
    settings: dict[str, Any] = {
        "refresh_token": DEMO_REFRESH_TOKEN,
        "token_url": emulator.token_url,
        "state_db_uri": state_db_uri,
        "requests_per_second": None,
        "daily_budget": None,
        "timeout": 5,
    }
    settings.update(extra)
    return json.dumps(
        {
            "conn_type": "constant_contact",
            "host": emulator.base_url,
            "login": emulator.client_id,
            "password": emulator.client_secret,
            "extra": settings,
        }
    )


HookFactory = Callable[..., ConstantContactHook]


@pytest.fixture
def state_db_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cc_state.db'}"


@pytest.fixture
def make_hook(
    emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, state_db_uri: str
) -> Iterator[HookFactory]:
    """``make_hook(state_db_uri=None, conn_id=..., max_attempts=8, **extra)`` -> a hook on the emulator."""
    hooks: list[ConstantContactHook] = []

    def make(
        *, state_db_uri: str = state_db_uri, conn_id: str = CONN_ID, max_attempts: int = 8, **extra: Any
    ) -> ConstantContactHook:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(emulator, state_db_uri, **extra)
        )
        hook = ConstantContactHook(conn_id, max_attempts=max_attempts, **FAST_RETRIES)
        hooks.append(hook)
        return hook

    yield make
    for hook in hooks:
        hook.close()
    dispose_engines()


@pytest.fixture
def hook(make_hook: HookFactory) -> ConstantContactHook:
    return make_hook()
