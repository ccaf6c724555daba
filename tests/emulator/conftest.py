"""Helpers for the emulator's own tests: an authorised API client of the running emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from include.cc_emulator.testing import EmulatorHandle


class ApiClient:
    """A bare requests client of the emulator's /v3 API (the hook is tested elsewhere)."""

    def __init__(self, emulator: EmulatorHandle, access_token: str) -> None:
        self.emulator = emulator
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {access_token}"

    def url(self, path: str) -> str:
        return f"{self.emulator.base_url}{path if path.startswith('/v3') else '/v3' + path}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def walk_contacts(self, **params: Any) -> list[dict[str, Any]]:
        """Every contact a query matches, following ``_links.next.href`` to the end."""
        found: list[dict[str, Any]] = []
        response = self.get("/contacts", params=params)
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            found.extend(body["contacts"])
            next_link = body["_links"].get("next")
            if not next_link:
                return found
            response = self.session.get(self.emulator.base_url + next_link["href"], timeout=60)

    def wait_for_activity(self, activity_id: str, timeout: float = 30.0) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            activity = self.get(f"/activities/{activity_id}").json()
            if activity["state"] not in ("initialized", "processing"):
                return activity
            time.sleep(0.02)
        raise AssertionError(f"activity {activity_id} still {activity['state']} after {timeout} s")


@pytest.fixture
def api(emulator: EmulatorHandle) -> Iterator[ApiClient]:
    client = ApiClient(emulator, emulator.admin.issue_access_token())
    yield client
    client.session.close()
