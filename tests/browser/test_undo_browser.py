"""Undo a run from the sync console in a real browser: headless Chromium (Debian's, `make browser`)
driven by Playwright, against `airflow standalone` as `make airflow` starts it.

A person opens a sync run's page in the console, clicks "Undo this run", lands on the dry-run undo
it planned in Airflow's UI, opens "Trigger again with this config", and finds Airflow's trigger form
of the undo DAG with that run filled in (Airflow 3.3.2's UI has no URL that opens a pre-filled
trigger form, so this is the way in).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa

from cc_sync.undo.choices import undoable_runs
from include.airflow_ui import SYNC_DAG_ID, AirflowApi, AirflowUiError
from tests.browser.conftest import RUN_TIMEOUT

pytestmark = [pytest.mark.slow, pytest.mark.browser]

UNDO_DAG_ID = "constant_contact_undo"


def _wait_for_dags(api: AirflowApi, token: str, *dag_ids: str) -> None:
    """Until the dag-processor has parsed these DAGs (the API answers 404 before)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    waiting = set(dag_ids)
    while waiting and time.monotonic() < deadline:
        for dag_id in sorted(waiting):
            try:
                api.call(token, "GET", f"/dags/{dag_id}")
                waiting.discard(dag_id)
            except (AirflowUiError, requests.RequestException):
                pass
        time.sleep(3)
    assert not waiting, f"not parsed after {RUN_TIMEOUT:.0f} s: {waiting}"


def _finished_run(api: AirflowApi, token: str, dag_id: str) -> dict[str, Any]:
    """The newest run of ``dag_id`` once it has finished (the API retries a busy metadata DB)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        try:
            runs = api.call(token, "GET", f"/dags/{dag_id}/dagRuns?order_by=-run_after")["dag_runs"]
        except requests.RequestException:  # an API server too busy to answer in 30 s: ask again
            runs = []
        if runs and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(3)
    raise AssertionError(f"no finished run of {dag_id} after {RUN_TIMEOUT:.0f} s")


@pytest.mark.timeout(1500)
def test_undo_this_run_opens_the_undo_trigger_form_with_the_run_filled_in(
    chromium: str, airflow: dict[str, Any]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = airflow["url"]
    api = AirflowApi(url)
    token = api.token(airflow["password"])
    _wait_for_dags(api, token, SYNC_DAG_ID, UNDO_DAG_ID)
    api.call(token, "PATCH", f"/dags/{SYNC_DAG_ID}", {"is_paused": False})
    api.call(token, "POST", f"/dags/{SYNC_DAG_ID}/dagRuns", {"logical_date": None})
    run = _finished_run(api, token, SYNC_DAG_ID)
    assert run["state"] == "success", run
    # The run that wrote the most: the first sync, which created the contacts in Constant Contact
    # (the browser tests share this Airflow; another's newest run may have written to members only).
    engine = sa.create_engine(f"sqlite:///{airflow['var'] / 'members.db'}")
    try:
        run_id = max(undoable_runs(engine), key=lambda run: run.written).run_id
    finally:
        engine.dispose()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        page.goto(f"{url}/")
        page.locator("input[name=username]").fill("admin")
        page.locator("input[name=password]").fill(airflow["password"])
        page.keyboard.press("Enter")
        expect(page.get_by_role("link", name="Constant Contact sync").first).to_be_visible()

        # The run page: what the first sync wrote, and the button.
        page.goto(f"{url}/cc-sync/runs/{quote(run_id, safe='')}")
        expect(page.locator("#written")).to_contain_text("to_cc")
        page.get_by_role("button", name="Undo this run").click()

        # Airflow's page of the dry-run undo the button planned ...
        page.wait_for_url(f"**/dags/{UNDO_DAG_ID}/runs/**")
        (planned,) = api.call(token, "GET", f"/dags/{UNDO_DAG_ID}/dagRuns")["dag_runs"]
        assert planned["conf"] == {"run_id": run_id, "dry_run": True}
        # ... whose "Trigger again with this config" is the undo's trigger form, pre-filled.
        page.get_by_test_id("trigger-dag-button").click()
        page.get_by_text("Trigger again with this config").click()
        expect(page.locator("#element_run_id")).to_have_value(run_id)
        expect(page.get_by_role("dialog")).to_contain_text(f"Trigger Dag - {UNDO_DAG_ID}")
        browser.close()
