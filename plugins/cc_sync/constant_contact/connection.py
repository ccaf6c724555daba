"""What the Constant Contact hook reads from its Airflow connection (split from the hook, issue 11).

The connection's fields are described in the hook's docstring and declared for the UI's form in
:mod:`cc_sync.provider_info`; this module turns a connection into :class:`ConnectionSettings` (and
the two secrets, kept apart so no ``repr`` shows them), or a configuration error naming the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cc_sync.constant_contact.errors import ConstantContactConfigError
from cc_sync.constant_contact.tokens import DEFAULT_TOKEN_URL

DEFAULT_BASE_URL = "https://api.cc.email"
API_PREFIX = "/v3"
DEFAULT_REQUESTS_PER_SECOND = 4.0
DEFAULT_DAILY_BUDGET = 10_000
DEFAULT_BUDGET_RESERVE = 200
DEFAULT_TIMEOUT_SECONDS = 60.0

__all__ = [
    "API_PREFIX",
    "DEFAULT_BASE_URL",
    "DEFAULT_BUDGET_RESERVE",
    "DEFAULT_DAILY_BUDGET",
    "DEFAULT_REQUESTS_PER_SECOND",
    "DEFAULT_TIMEOUT_SECONDS",
    "ConnectionSettings",
]


@dataclass(frozen=True)
class ConnectionSettings:
    """What the hook reads from its Airflow connection (the secret and token stay out of repr)."""

    base_url: str
    client_id: str
    token_url: str
    state_db_uri: str
    requests_per_second: float | None
    daily_budget: int | None
    budget_reserve: int
    timeout: float

    @classmethod
    def from_connection(cls, conn: Any) -> tuple[ConnectionSettings, str, str]:
        """Parse a connection; returns the settings, the client secret and the refresh token."""
        # The form's fields (provider_info.py) are stored under their own names; older UIs used
        # extra__constant_contact__<name>, still read here.
        extra = {
            key.removeprefix("extra__constant_contact__"): value
            for key, value in (conn.extra_dejson or {}).items()
            if value != ""  # an emptied text field; null keeps its meaning ("off")
        }
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            base_url = DEFAULT_BASE_URL
        elif "://" in host:
            base_url = host
        else:
            base_url = f"{conn.schema or 'https'}://{host}"
        if conn.port and urlsplit(base_url).port is None:
            base_url = f"{base_url}:{conn.port}"
        if base_url.endswith(API_PREFIX):
            base_url = base_url[: -len(API_PREFIX)]
        if not conn.login or not conn.password:
            raise ConstantContactConfigError(
                f"connection {conn.conn_id!r} needs the API key as login and its secret as password"
            )
        refresh_token = extra.get("refresh_token")
        if not refresh_token:
            raise ConstantContactConfigError(
                f"connection {conn.conn_id!r} has no extra 'refresh_token': run "
                "`python -m cc_sync.constant_contact.authorize` once and store the token it prints"
            )
        home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
        rate = extra.get("requests_per_second", DEFAULT_REQUESTS_PER_SECOND)
        budget = extra.get("daily_budget", DEFAULT_DAILY_BUDGET)
        settings = cls(
            base_url=base_url,
            client_id=conn.login,
            token_url=extra.get("token_url") or DEFAULT_TOKEN_URL,
            state_db_uri=extra.get("state_db_uri") or f"sqlite:///{home / 'cc_api_state.db'}",
            requests_per_second=float(rate) if rate else None,
            daily_budget=int(budget) if budget is not None else None,
            budget_reserve=int(extra.get("budget_reserve", DEFAULT_BUDGET_RESERVE) or 0),
            timeout=float(extra.get("timeout") or DEFAULT_TIMEOUT_SECONDS),
        )
        return settings, conn.password, refresh_token
