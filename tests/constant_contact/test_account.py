"""The account summary: what the connection test and each run's log say about the account."""

from __future__ import annotations

import json
import logging
import os

import pytest

from cc_sync.account import log_account_summary
from cc_sync.constant_contact.hook import ConstantContactHook
from include.cc_emulator.app import DEMO_ACCOUNT


def test_connection_test_names_the_account_with_its_email_masked(hook) -> None:
    ok, message = hook.test_connection()

    assert ok
    assert DEMO_ACCOUNT["organization_name"] in message
    assert "Demo Administrator" in message
    assert "1 Example Street, Springfield, MA, 01101, US" in message
    assert DEMO_ACCOUNT["contact_email"] not in message
    assert "o***@example.org" in message


def test_each_run_logs_the_account_in_one_call(hook, caplog: pytest.LogCaptureFixture) -> None:
    calls = hook.api_calls
    with caplog.at_level(logging.INFO, logger="cc_sync.account"):
        summary = log_account_summary(hook)

    assert hook.api_calls - calls == 1
    assert summary.organization == DEMO_ACCOUNT["organization_name"]
    assert summary.describe() in caplog.text
    assert DEMO_ACCOUNT["contact_email"] not in caplog.text


def test_a_failed_connection_says_why(make_hook) -> None:
    broken = make_hook(refresh_token="not-a-token")

    ok, message = broken.test_connection()

    assert not ok
    assert message
    assert "not-a-token" not in message


def test_airflow_tests_a_constant_contact_connection_with_this_hook(hook) -> None:
    """The package's provider entry point registers the connection type, so Airflow's own
    connection test (the UI's Test button) reaches ConstantContactHook.test_connection."""
    from airflow.models.connection import Connection
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    registered = ProvidersManagerTaskRuntime().hooks["constant_contact"]
    assert registered is not None
    assert registered.hook_class_name == "cc_sync.constant_contact.hook.ConstantContactHook"
    connection = Connection.get_connection_from_secrets(hook.cc_conn_id)
    assert connection.conn_type == "constant_contact"

    ok, message = connection.test_connection()

    assert ok, message
    assert DEMO_ACCOUNT["organization_name"] in message
    assert DEMO_ACCOUNT["contact_email"] not in message


def _with_secret(monkeypatch: pytest.MonkeyPatch, hook, secret: str) -> None:
    """The same connection with another client secret (a person's typo in the form)."""
    conn = json.loads(os.environ[f"AIRFLOW_CONN_{hook.cc_conn_id.upper()}"])
    monkeypatch.setenv(f"AIRFLOW_CONN_{hook.cc_conn_id.upper()}", json.dumps({**conn, "password": secret}))


def test_a_wrong_secret_is_reported_as_a_wrong_secret_even_with_a_cached_access_token(
    make_hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = make_hook()
    assert good.test_connection()[0]  # an access token is now stored for this authorization
    _with_secret(monkeypatch, good, "typo-in-the-secret")

    ok, message = ConstantContactHook(good.cc_conn_id).test_connection()

    assert not ok
    assert message.startswith("Wrong API key or client secret")
    assert "invalid_client" in message
    assert "authorize" not in message  # re-authorizing would not help
    assert "typo-in-the-secret" not in message
    # The refused exchange spent nothing: the right secret still works with the stored token.
    _with_secret(monkeypatch, good, good.tokens._client_secret)
    assert ConstantContactHook(good.cc_conn_id).test_connection()[0]


def test_test_exchanges_the_refresh_token_and_keeps_the_rotated_one(hook) -> None:
    assert hook.test_connection()[0]
    # The emulator refuses a refresh token used twice: this second exchange succeeds only with the
    # rotated token the first one stored.
    assert hook.test_connection()[0]

    assert hook.tokens.refreshes == 2  # each Test exchanged, though the first token was still valid


def test_a_spent_refresh_token_says_re_authorize(make_hook) -> None:
    ok, message = make_hook(refresh_token="spent-or-revoked").test_connection()

    assert not ok
    assert message.startswith("The refresh token was refused: re-authorize")
    assert "invalid_grant" in message
    assert "cc_sync.constant_contact.authorize" in message
    assert "spent-or-revoked" not in message
