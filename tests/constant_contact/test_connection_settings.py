"""Reading the Airflow connection: base URL forms, defaults, the limits' on/off switches, and clear
errors for what is missing (no HTTP here)."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import Connection

from cc_sync.constant_contact.connection import DEFAULT_BASE_URL, ConnectionSettings
from cc_sync.constant_contact.errors import ConstantContactConfigError
from cc_sync.constant_contact.tokens import DEFAULT_TOKEN_URL


def connection(host: str | None = None, **kwargs) -> Connection:
    extra = kwargs.pop("extra", {"refresh_token": "seed"})
    return Connection(
        conn_id="cc",
        conn_type="http",
        host=host,
        login=kwargs.pop("login", "key"),
        password=kwargs.pop("password", "secret"),
        extra=json.dumps(extra),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("host", "extra_kwargs", "base_url"),
    [
        (None, {}, DEFAULT_BASE_URL),
        ("https://api.cc.email/", {}, "https://api.cc.email"),
        ("https://api.cc.email/v3", {}, "https://api.cc.email"),
        ("127.0.0.1", {"schema": "http", "port": 8765}, "http://127.0.0.1:8765"),
        ("api.cc.email", {}, "https://api.cc.email"),
    ],
)
def test_base_url_forms(host, extra_kwargs, base_url):
    settings, _, _ = ConnectionSettings.from_connection(connection(host, **extra_kwargs))
    assert settings.base_url == base_url


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    settings, secret, refresh_token = ConnectionSettings.from_connection(connection())
    assert (secret, refresh_token) == ("secret", "seed")
    assert settings.token_url == DEFAULT_TOKEN_URL
    assert settings.state_db_uri == f"sqlite:///{tmp_path / 'cc_api_state.db'}"
    assert (settings.requests_per_second, settings.daily_budget, settings.budget_reserve) == (
        4.0,
        10_000,
        200,
    )


@pytest.mark.parametrize(("value", "expected"), [(0, None), (None, None), (2.5, 2.5)])
def test_rate_limit_can_be_switched_off(value, expected):
    conn = connection(extra={"refresh_token": "seed", "requests_per_second": value})
    assert ConnectionSettings.from_connection(conn)[0].requests_per_second == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extra": {}}, "refresh_token"),
        ({"login": None}, "API key"),
        ({"password": None}, "secret"),
    ],
)
def test_missing_parts_are_named(kwargs, message):
    with pytest.raises(ConstantContactConfigError, match=message):
        ConnectionSettings.from_connection(connection(**kwargs))


def test_settings_repr_has_no_secret():
    settings = ConnectionSettings.from_connection(
        connection(password="s3cr3t-value", extra={"refresh_token": "r3fr3sh-value"})
    )[0]
    assert "s3cr3t-value" not in repr(settings)
    assert "r3fr3sh-value" not in repr(settings)
