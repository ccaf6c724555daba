"""The sync console in a real browser: headless Chromium (Debian's package, `make browser`) driven by
Playwright, against `airflow standalone` as `make airflow` starts it (scheduler, dag-processor, API
server, LocalExecutor), with the emulator and the demo member database.

A person logs in, opens the console from Airflow's navigation, sees the status and a plot, runs the
sync from the console, reads the run's summary in its note (written by the plugin's listener),
decides a near match ("link these two", apply now), and sees the item closed and the person linked
after the run the decision triggered.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import pytest
import requests

from include.airflow_ui import SYNC_DAG_ID, AirflowApi, unpause
from tests.browser.conftest import RUN_TIMEOUT, api_headers

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _runs(airflow: dict[str, Any]) -> list[dict[str, Any]]:
    base, headers = api_headers(airflow)
    answer = requests.get(
        f"{base}/dags/{SYNC_DAG_ID}/dagRuns?order_by=-run_after", headers=headers, timeout=30
    )
    return answer.json()["dag_runs"]


def _wait_for_runs(airflow: dict[str, Any], count: int) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        runs = _runs(airflow)
        if len(runs) >= count and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(3)
    raise AssertionError(
        f"no finished run #{count} of {SYNC_DAG_ID} after {RUN_TIMEOUT:.0f} s: {_runs(airflow)}"
    )


@pytest.mark.timeout(1500)
def test_decide_a_review_item_in_the_browser_and_see_it_applied(
    chromium: str, airflow: dict[str, Any]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = airflow["url"]
    # DAGs are paused at creation; the person would unpause the sync in the UI. On a busy machine the
    # dag-processor may not have parsed it yet (the API answers 404): a run queued for a DAG that is
    # still paused never starts.
    api = AirflowApi(url)
    unpause(api, api.token(airflow["password"]), SYNC_DAG_ID, timeout=RUN_TIMEOUT)
    earlier = len(_runs(airflow))  # the other browser tests share this Airflow

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.set_default_timeout(60_000)
        # The UI renders its navigation after its translations load: slow on a busy machine.
        expect.set_options(timeout=60_000)

        # Anonymous: the console refuses.
        assert page.goto(f"{url}/cc-sync/").status == 401

        page.goto(f"{url}/")
        page.locator("input[name=username]").fill("admin")
        page.locator("input[name=password]").fill(airflow["password"])
        page.keyboard.press("Enter")
        expect(page.get_by_role("link", name="Constant Contact sync").first).to_be_visible()

        # The nav entry opens the console inside Airflow's UI.
        page.get_by_role("link", name="Constant Contact sync").first.click()
        console = page.frame_locator("iframe").first
        expect(console.get_by_role("heading", name="Constant Contact sync: status")).to_be_visible()

        # Run the sync from the console, wait for it, and see its row, today's calls and the plots.
        page.goto(f"{url}/cc-sync/")
        page.get_by_role("button", name="Run the sync now").click()
        first = _wait_for_runs(airflow, earlier + 1)
        assert first["state"] == "success", first

        # The run's summary is its note, written by the plugin's listener when the run ended.
        assert "\n\nRun summary\n" in (first["note"] or ""), first  # below the console's own note
        page.goto(f"{url}/dags/{SYNC_DAG_ID}/runs/{quote(first['dag_run_id'], safe='')}")
        page.get_by_role("button", name="Edit note").click()  # opens the note, rendered, to read
        note = page.get_by_role("dialog")
        expect(note).to_contain_text(f"{SYNC_DAG_ID} {first['dag_run_id']}: success")
        expect(note).to_contain_text("API calls this run")
        page.keyboard.press("Escape")

        page.goto(f"{url}/cc-sync/")
        expect(page.get_by_role("link", name=first["dag_run_id"])).to_be_visible()
        expect(page.locator("svg.plot")).to_have_count(2)
        assert int(page.locator("#calls-used").inner_text()) > 0
        expect(page.locator("#plots rect.bar").first).to_be_attached()

        # The review queue: a near match, both sides side by side; link them and apply now.
        page.goto(f"{url}/cc-sync/reviews?kind=near_match")
        item = page.locator("a.item").first
        item_href = item.get_attribute("href")
        member_id = page.locator("#queue tr").nth(1).locator("td").nth(2).inner_text()
        item.click()
        expect(page.locator("#sides tr.differs").first).to_be_visible()
        page.get_by_label("Link these two").check()
        page.locator("input[name=why]").fill("same person, nickname")
        page.get_by_label("Apply now (trigger the sync)").check()
        page.get_by_role("button", name="Record the decision").click()
        expect(page.locator("#saved")).to_be_visible()
        expect(page.locator("#pending")).to_contain_text("Pending decision: link by admin")

        second = _wait_for_runs(airflow, earlier + 2)
        assert second["state"] == "success", second
        page.goto(f"{url}{item_href}")
        expect(page.locator("#status")).to_have_text("resolved")
        page.goto(f"{url}/cc-sync/person?q={member_id}")
        expect(page.locator("#linked")).to_contain_text("linked (review_decision)")
        expect(page.get_by_text(re.compile(r"link by admin \(same person, nickname\)"))).to_be_visible()
        browser.close()
