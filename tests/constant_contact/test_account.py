"""The account summary: what the connection test and each run's log say about the account."""

from __future__ import annotations

import logging

import pytest

from cc_sync.account import log_account_summary
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
