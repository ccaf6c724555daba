"""The run summary every finish task logs: counts under their direction, API calls and budget."""

from __future__ import annotations

from cc_sync.summary import render


def test_counts_go_under_their_direction_and_the_budget_left_is_shown() -> None:
    report = {"status": "success", "api_calls": 11, "api_calls_today": 214, "api_budget": 10_000,
              "cc_updates": 12, "cc_creates": 3, "member_updates": 9, "reviews_opened": 2,
              "links_stored": 30, "write_failures": 0}  # fmt: skip
    lines = render(dag_id="constant_contact_sync", run_id="manual__1", report=report).splitlines()
    assert lines[0] == "constant_contact_sync manual__1: success"
    sections = {line.strip(): i for i, line in enumerate(lines) if not line.startswith("    ")}
    assert sections["to Constant Contact"] < sections["to the member database"] < sections["reviews"]
    cc_rows = lines[sections["to Constant Contact"] + 1 : sections["to the member database"]]
    assert [row.split() for row in cc_rows] == [["cc_creates", "3"], ["cc_updates", "12"]]
    assert not any("write_failures" in line for line in lines), "a zero count is left out"
    assert lines[-2:] == ["  API calls this run: 11", "  API budget today: 214 of 10000 used, 9786 left"]


def test_a_run_that_did_nothing_says_so() -> None:
    text = render(dag_id="constant_contact_sync", run_id="r", report={"status": "success", "api_calls": 5})
    assert "nothing to do: every count is zero" in text
