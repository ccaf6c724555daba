"""The two connection types in Airflow's own UI, in headless Chromium, as a new user meets them after
`make airflow`: each form shows its own fields (not Host/Login/Port/Schema), the list's Test button
answers with the account and with the member count (on Airflow 3.3.2, whose list sends port 0 with
Test, through the plugin's fix), and a wrong client secret is reported as a wrong secret."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import requests

from include.cc_emulator.app import DEMO_ACCOUNT
from tests.browser.conftest import api_headers

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WRONG_SECRET_CONN_ID = "cc_wrong_secret"


def _add_wrong_secret_connection(airflow: dict[str, Any]) -> None:
    """constant_contact_default's copy with a typo in the client secret, as a user might save it."""
    base, headers = api_headers(airflow)
    stored = requests.get(f"{base}/connections/constant_contact_default", headers=headers, timeout=30).json()
    extra = json.loads(stored["extra"])
    # Masked in the answer ("***"): the copy takes the real values from airflow_settings.yaml.
    extra["refresh_token"] = _settings_entry()["conn_extra"]["refresh_token"]
    body = {
        "connection_id": WRONG_SECRET_CONN_ID,
        "conn_type": "constant_contact",
        "host": stored["host"],
        "login": stored["login"],
        "password": "typo-in-the-secret",
        "extra": json.dumps({**extra, "token_url": f"{stored['host']}/oauth2/default/v1/token"}),
    }
    answer = requests.post(f"{base}/connections", json=body, headers=headers, timeout=30)
    assert answer.status_code == 201, answer.text


def _settings_entry() -> dict[str, Any]:
    from include import local_setup

    (entry,) = [
        c
        for c in local_setup.render_settings("http://unused")["connections"]
        if c["conn_id"] == "constant_contact_default"
    ]
    return entry


def _members_in_scope(db: Path) -> int:
    """The demo mapping's scope, counted straight in the demo member database."""
    with sqlite3.connect(db) as conn:
        query = "SELECT count(*) FROM members WHERE membership_status = 'active' AND deleted_at IS NULL"
        return conn.execute(query).fetchone()[0]


@pytest.mark.timeout(900)
def test_connection_forms_show_their_fields_and_test_answers(chromium: str, airflow: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = airflow["url"]
    _add_wrong_secret_connection(airflow)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 2000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=90_000)  # a Test runs a token exchange or a table scan: slow when busy

        page.goto(f"{url}/")
        page.locator("input[name=username]").fill("admin")
        page.locator("input[name=password]").fill(airflow["password"])
        page.keyboard.press("Enter")
        expect(page.get_by_role("link", name="Constant Contact sync").first).to_be_visible()
        page.goto(f"{url}/connections")

        def row(conn_id: str) -> Any:
            return page.get_by_role("row").filter(has_text=conn_id)

        # The Constant Contact form: its own labels; no port or schema; the extra as named fields.
        row("constant_contact_default").get_by_label("Edit Connection").dispatch_event("click")
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_text("Constant Contact", exact=True)).to_be_visible()
        for label in ("API base URL", "API key (client id)", "Client secret"):
            expect(dialog.get_by_text(label, exact=True)).to_be_visible()
        dialog.get_by_text("Extra Fields", exact=True).click()
        for label in ("Refresh token", "State database", "Requests per second", "Daily budget", "Reserve"):
            expect(dialog.get_by_text(label, exact=True)).to_be_visible()
        for generic in ("Port", "Schema", "Host", "Login", "Password"):
            expect(dialog.get_by_text(generic, exact=True)).to_have_count(0)
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)

        # The member database form: the SQLAlchemy URL and the mapping, nothing else.
        row("member_db_default").get_by_label("Edit Connection").dispatch_event("click")
        expect(dialog.get_by_text("Member database", exact=True)).to_be_visible()
        dialog.get_by_text("Extra Fields", exact=True).click()
        for label in ("SQLAlchemy URL", "Mapping file"):
            expect(dialog.get_by_text(label, exact=True)).to_be_visible()
        for generic in ("Port", "Schema", "Host", "Login", "Password", "API base URL"):
            expect(dialog.get_by_text(generic, exact=True)).to_have_count(0)
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)

        # Test from the list: Airflow 3.3.2 sends port 0 for these port-less connections; it works.
        with page.expect_request("**/api/v2/connections/test") as sent:
            row("constant_contact_default").get_by_label("Test Connection").dispatch_event("click")
        assert json.loads(sent.value.post_data or "{}").get("port") == 0
        account = page.get_by_text(f"Constant Contact account: {DEMO_ACCOUNT['organization_name']}")
        expect(account).to_be_visible()
        assert DEMO_ACCOUNT["contact_email"] not in page.content()

        row("member_db_default").get_by_label("Test Connection").dispatch_event("click")
        counted = page.get_by_text("member(s) in scope")
        expect(counted).to_be_visible()
        assert (
            f"{_members_in_scope(airflow['var'] / 'members.db')} member(s) in scope" in counted.inner_text()
        )

        # A wrong client secret is reported as a wrong secret (not as a refresh token to re-authorize).
        row(WRONG_SECRET_CONN_ID).get_by_label("Test Connection").dispatch_event("click")
        wrong = page.get_by_text("Wrong API key or client secret")
        expect(wrong).to_be_visible()
        assert "invalid_client" in wrong.inner_text()
        assert "typo-in-the-secret" not in page.content()
        browser.close()
