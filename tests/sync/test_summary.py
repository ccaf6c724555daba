"""The run summary every finish task logs: counts under their direction, API calls and budget."""

from __future__ import annotations

from cc_sync.summary import NOTE_HEADER, NOTE_LIMIT, as_note, render


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


def test_as_a_note_the_table_is_a_fenced_block_cut_at_a_whole_line_to_fit_airflows_column() -> None:
    text = render(dag_id="constant_contact_sync", run_id="manual__1", report={"status": "success",
                  "api_calls": 3, **{f"cc_count_{i:03}": i for i in range(1, 60)}})  # fmt: skip
    assert len(text) > NOTE_LIMIT

    note = as_note(text)

    assert len(note) <= NOTE_LIMIT
    lines = note.splitlines()
    assert lines[:3] == [NOTE_HEADER, "```", "constant_contact_sync manual__1: success"]
    assert lines[-2:] == ["… (more rows in the finish task's log)", "```"]
    assert all(line in text.splitlines() for line in lines[2:-2]), "only whole lines are kept"


def test_a_short_summary_is_noted_whole() -> None:
    text = render(dag_id="constant_contact_sync", run_id="r", report={"status": "success", "api_calls": 5})
    assert as_note(text) == f"{NOTE_HEADER}\n```\n{text}\n```"
