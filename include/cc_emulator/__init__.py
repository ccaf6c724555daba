"""A stateful emulator of the Constant Contact v3 API, for the demo, the tests and the benchmarks.

Serve it with ``python -m include.cc_emulator --port 8765`` (or ``make emulator``); drive it from
tests with ``include.cc_emulator.testing.run_emulator``. The OAuth token endpoint is
``POST /oauth2/default/v1/token``; the API is under ``/v3``; set-up and inspection under ``/_admin``.

A fresh emulator accepts the demo client below and ``DEMO_REFRESH_TOKEN`` once: refresh tokens
rotate, and a used one is refused with ``400 {"error": "invalid_grant"}`` as the real endpoint does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.cc_emulator.auth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN
from include.cc_emulator.settings import EmulatorSettings, FaultSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_REFRESH_TOKEN",
    "EmulatorSettings",
    "FaultSettings",
    "create_app",
]


def create_app(settings: EmulatorSettings | None = None, **kwargs: Any) -> FastAPI:
    """The emulator's ASGI app (FastAPI is imported only when an app is really wanted)."""
    from include.cc_emulator.app import create_app as _create_app

    if kwargs:
        settings = (settings or EmulatorSettings()).with_changes(**kwargs)
    return _create_app(settings)
