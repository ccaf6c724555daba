"""Run the emulator in a subprocess and drive it: for tests, benchmarks and the demo.

    with run_emulator(rate_limit_per_second=None) as emulator:
        emulator.admin.seed_contacts(count=1_000)
        requests.get(f"{emulator.base_url}/v3/contacts", headers=...)

The server runs under uvicorn in its own process, so other processes (Airflow task runners) reach
it over real HTTP and it never shares the test's GIL.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from include.cc_emulator.auth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOKEN_PATH = "/oauth2/default/v1/token"
AUTHORIZE_PATH = "/oauth2/default/v1/authorize"
STARTUP_TIMEOUT_SECONDS = 30.0


class EmulatorAdminError(RuntimeError):
    pass


def _iso(moment: datetime | str | None) -> str | None:
    if moment is None or isinstance(moment, str):
        return moment
    return moment.isoformat()


def _admin_session() -> requests.Session:
    """A session that sends an idempotent admin call again when its kept-alive connection was
    closed by the server just as the call went out (CI saw "Connection reset by peer" once in a
    counters read after a 10 s DAG run); never on an HTTP status."""
    session = requests.Session()
    retry = Retry(total=3, connect=3, read=3, status=0, backoff_factor=0.1, raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


@dataclass
class EmulatorAdmin:
    """A thin client of the ``/_admin`` paths (which cost no quota and are never counted)."""

    base_url: str
    session: requests.Session = field(default_factory=_admin_session, repr=False)
    timeout: float = 120.0

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = self.session.request(
            method, f"{self.base_url}/_admin{path}", json=json, timeout=self.timeout
        )
        if response.status_code >= 400:
            raise EmulatorAdminError(
                f"{method} /_admin{path} -> {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    # settings and faults
    def reset(self, **settings: Any) -> None:
        self._call("POST", "/reset", settings)

    def configure(self, **settings: Any) -> dict[str, Any]:
        return self._call("POST", "/configure", settings)

    def snapshot(self) -> dict[str, Any]:
        """The account, counters and request log as they stand (for :meth:`restore`)."""
        return self._call("GET", "/snapshot")

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Put back an account taken with :meth:`snapshot`; settings and faults are unchanged."""
        self._call("POST", "/restore", snapshot)

    def settings(self) -> dict[str, Any]:
        return self._call("GET", "/settings")

    def set_faults(
        self,
        *,
        error_429_rate: float = 0.0,
        error_500_rate: float = 0.0,
        error_503_rate: float = 0.0,
        slow_rate: float = 0.0,
        slow_seconds: float = 2.0,
        drop_rate: float = 0.0,
        lost_answer_rate: float = 0.0,
        truncate_rate: float = 0.0,
        activity_fail_rate: float = 0.0,
        activity_fail_count: int = 0,
        token_lost_answer_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._call("POST", "/faults", {k: v for k, v in locals().items() if k != "self"})

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    # account data
    def seed_contacts(
        self,
        count: int | None = None,
        contacts: list[dict[str, Any]] | None = None,
        list_ids: list[str] | None = None,
        seed: int = 0,
    ) -> list[str]:
        """Add contacts without API calls: ``count`` generated ones and/or ``contacts`` given in
        ContactResource shape (``"email": "..."`` is accepted for ``email_address.address``)."""
        body = {"count": count, "contacts": contacts, "list_ids": list_ids, "seed": seed}
        return self._call("POST", "/seed", body)["contact_ids"]

    def create_list(self, name: str) -> str:
        return self._call("POST", "/lists", {"name": name})["list_id"]

    def create_custom_field(self, label: str, type: str = "string") -> str:
        return self._call("POST", "/custom_fields", {"label": label, "type": type})["custom_field_id"]

    def opt_out(
        self, contact_id: str, at: datetime | None = None, source: str = "Contact", reason: str = ""
    ) -> dict[str, Any]:
        return self._call(
            "POST", f"/contacts/{contact_id}/opt_out", {"at": _iso(at), "source": source, "reason": reason}
        )

    def edit_contact(
        self, contact_id: str, fields: dict[str, Any], at: datetime | None = None
    ) -> dict[str, Any]:
        return self._call("POST", f"/contacts/{contact_id}/edit", {"fields": fields, "at": _iso(at)})

    def delete_contact(self, contact_id: str, at: datetime | None = None) -> dict[str, Any]:
        return self._call("POST", f"/contacts/{contact_id}/delete", {"at": _iso(at)})

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        return self._call("GET", f"/contacts/{contact_id}")

    def all_contacts(self) -> list[dict[str, Any]]:
        return self._call("GET", "/contacts")

    def all_lists(self) -> list[dict[str, Any]]:
        """Every list with a ``member_ids`` field (sorted contact ids)."""
        return self._call("GET", "/lists")

    def all_activities(self) -> list[dict[str, Any]]:
        return self._call("GET", "/activities")

    # campaigns and tracking
    def send_campaign(
        self,
        name: str,
        *,
        list_ids: list[str] | None = None,
        contact_ids: list[str] | None = None,
        at: datetime | str | None = None,
        events: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """ "Send" a campaign to lists and/or contacts (unsubscribed ones are skipped, as CC does).

        Returns the campaign (``campaign_id``, ``campaign_activities``), its primary email's
        ``campaign_activity_id`` and ``sent_to`` (contact ids). ``events`` as for :meth:`track`.
        """
        body = {
            "name": name,
            "list_ids": list_ids,
            "contact_ids": contact_ids,
            "at": _iso(at),
            "events": events,
        }
        campaign = self._call("POST", "/campaigns/send", body)
        campaign["campaign_activity_id"] = campaign["campaign_activities"][0]["campaign_activity_id"]
        return campaign

    def track(self, campaign_activity_id: str, events: list[dict[str, Any]]) -> int:
        """Recipients act: ``[{"type": "open"|"click"|"bounce"|"optout", "contact_id": ..., "at": ...,
        "link_url": ..., "bounce_code": "B", "reason": ...}]``. An opt-out unsubscribes the contact."""
        shown = [{**e, "at": _iso(e.get("at"))} for e in events]
        return self._call("POST", f"/campaign_activities/{campaign_activity_id}/track", {"events": shown})[
            "events"
        ]

    # events and registrations
    def create_event(
        self,
        name: str,
        *,
        start: datetime | str,
        end: datetime | str,
        status: str = "ACTIVE",
        at: datetime | str | None = None,
    ) -> dict[str, Any]:
        """An event (``event_id``, ``track_id``, ...) with one track, created ``at`` (default now)."""
        body = {
            "name": name,
            "start_time": _iso(start),
            "end_time": _iso(end),
            "status": status,
            "at": _iso(at),
        }
        return self._call("POST", "/events", body)

    def register(self, event_id: str, registrants: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """People register: ``[{"email", "first_name", "last_name", "at", "tickets", "price",
        "payment_method", "payment_status", "registration_status"}]``; the registrations made."""
        shown = [{**r, "at": _iso(r.get("at"))} for r in registrants]
        return self._call("POST", f"/events/{event_id}/registrations", {"registrants": shown})[
            "registrations"
        ]

    def ticket_keys(self, event_id: str, registration_id: str) -> list[str]:
        return self._call("GET", f"/events/{event_id}/registrations/{registration_id}/tickets")[
            "order_ticket_keys"
        ]

    # inspection
    def request_log(self) -> list[dict[str, Any]]:
        return self._call("GET", "/request_log")

    def counters(self) -> dict[str, Any]:
        """``api_calls`` (all /v3 requests), ``endpoints`` ("GET /v3/contacts": n, ...), ``resubscribes``,
        ``sign_up_form_calls``, ``token_refreshes``, ``throttled``, ``quota_exceeded``, ``faults``..."""
        return self._call("GET", "/counters")

    # tokens
    def expire_access_tokens(self) -> None:
        self._call("POST", "/expire_access_tokens")

    def issue_access_token(self) -> str:
        """A valid access token that leaves the refresh token alone (for test set-up)."""
        return self._call("POST", "/access_token")["access_token"]

    def current_refresh_token(self) -> str:
        return self._call("GET", "/refresh_token")["refresh_token"]

    def save_state(self) -> None:
        self._call("POST", "/save")


@dataclass
class EmulatorHandle:
    base_url: str
    admin: EmulatorAdmin
    process: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = DEMO_CLIENT_SECRET

    @property
    def token_url(self) -> str:
        return f"{self.base_url}{TOKEN_PATH}"

    @property
    def authorize_url(self) -> str:
        """The browser step of the one-off authorization; it consents at once and redirects."""
        return f"{self.base_url}{AUTHORIZE_PATH}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v3"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def server_log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file and self.log_file.exists() else ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(handle: EmulatorHandle, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the emulator exited with {process.returncode}:\n{handle.server_log()[-3000:]}"
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{handle.base_url}/_admin/health", timeout=1).ok:
                return
        time.sleep(0.05)
    raise RuntimeError(
        f"the emulator did not answer within {STARTUP_TIMEOUT_SECONDS} s:\n{handle.server_log()[-3000:]}"
    )


@contextlib.contextmanager
def run_emulator(
    *, port: int | None = None, state_file: Path | None = None, **settings: Any
) -> Iterator[EmulatorHandle]:
    """Start the emulator in a subprocess, wait until it answers, apply ``settings``, stop it on exit.

    ``settings`` are ``EmulatorSettings`` fields (rate_limit_per_second, daily_quota,
    access_token_ttl_seconds, max_queued_activities, activity_processing_seconds, ...).
    """
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "include.cc_emulator", "--host", "127.0.0.1", "--port", str(port)]
    if state_file is not None:
        command += ["--state-file", str(state_file)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    }
    log_dir = Path(tempfile.mkdtemp(prefix="cc-emulator-"))
    log_file = log_dir / "emulator.log"
    with log_file.open("wb") as log_handle:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=log_handle, stderr=subprocess.STDOUT
        )
    handle = EmulatorHandle(
        base_url=base_url, admin=EmulatorAdmin(base_url), process=process, log_file=log_file
    )
    try:
        _wait_until_up(handle, process)
        if settings:
            handle.admin.configure(**settings)
        yield handle
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        handle.admin.session.close()
