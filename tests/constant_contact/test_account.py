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
