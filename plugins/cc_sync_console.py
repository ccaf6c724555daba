"""The Airflow plugin "Constant Contact sync": the sync console in Airflow's navigation.

Airflow imports this module in every component, so it imports nothing heavy: the FastAPI app is
built on its first request, which only ever reaches the API server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/cc-sync"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyConsoleApp:
    """An ASGI app that builds the console (cc_sync.console.app) when it is first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from cc_sync.console.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class ConstantContactSyncPlugin(AirflowPlugin):
    name = "constant_contact_sync"
    fastapi_apps: ClassVar[list[Any]] = [
        {"app": LazyConsoleApp(), "url_prefix": URL_PREFIX, "name": "Constant Contact sync"}
    ]
    external_views: ClassVar[list[Any]] = [
        {
            "name": "Constant Contact sync",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "cc-sync",
        }
    ]
