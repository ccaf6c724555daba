"""The Airflow plugin "Constant Contact sync": the sync console in Airflow's navigation, a fix
for the connection list's Test button on Airflow 3.3.2 (:class:`ConnectionTestWithoutPort`), and
the listener that makes each job's run summary its DAG run's note (:mod:`cc_sync.run_note`).

Airflow imports this module in every component, so it imports nothing heavy: the FastAPI app is
built on its first request, which only ever reaches the API server, and the listener imports
Airflow's models only when a run ends.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from cc_sync import run_note

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


CONNECTION_TEST_PATH = "/api/v2/connections/test"


class ConnectionTestWithoutPort:
    """Drops ``"port": 0`` from the body of ``POST /api/v2/connections/test``.

    Airflow 3.3.2's connection list sends ``port: Number(null)``, i.e. 0, for every connection
    without a port (both of this project's types hide the field), and the API compares it with the
    stored NULL and answers 400 "The host or port to test differs from the stored connection": the
    Test button fails for them. Port 0 is never a destination, so leaving it out cannot point the
    stored credentials anywhere new (the API's host check still applies); that is what the upstream
    fix after 3.3.2 does. Any other request passes untouched.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and scope.get("path", "").rstrip("/") == CONNECTION_TEST_PATH
        ):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = without_port_zero(b"".join(chunks))
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app({**scope, "headers": headers}, replay, send)


def without_port_zero(body: bytes) -> bytes:
    """The JSON body without ``"port": 0``; anything else (or not JSON) as it came."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or data.get("port") != 0 or isinstance(data.get("port"), bool):
        return body
    del data["port"]
    return json.dumps(data).encode()


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
    fastapi_root_middlewares: ClassVar[list[Any]] = [
        {"middleware": ConnectionTestWithoutPort, "args": [], "kwargs": {}, "name": "connection test port 0"}
    ]
    listeners: ClassVar[list[Any]] = [run_note]
