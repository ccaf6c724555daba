"""`make demo` end to end in a temporary folder: a fresh world, two dag.test() runs around edits on
both sides, and the story it prints, checked against what both sides and the bookkeeping hold.

The emulator runs without its rate limit here (the hook still keeps to 4 requests a second); the
sample is small so the test stays near half a minute.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from cc_sync.member_db.bookkeeping import Bookkeeping
from include.demo import DemoPaths, DemoResult, EditKind, run_demo

pytestmark = pytest.mark.slow

MEMBERS = 80
# Anything that looks like an address with more than its first letter shown.
FULL_EMAIL = re.compile(r"[\w.+-]{2,}@[\w-]+\.[\w.]+")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, str]:
    saved = dict(os.environ)
    var_dir = tmp_path_factory.mktemp("demo-var")
    # A world left by an earlier demo: the demo must start afresh, not trip over it.
    (var_dir / "emulator-state.json").write_text("{not json")
    (var_dir / "members.db").write_text("not a database")
    out = io.StringIO()
    # pytest's log capture formats each of Airflow's many INFO records; the demo's own log file
    # keeps them, so the report only needs warnings (this halves the test's time).
    handlers = [(handler, handler.level) for handler in logging.getLogger().handlers]
    for handler, _ in handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    try:
        result = run_demo(
            var_dir,
            members=MEMBERS,
            out=out,
            emulator_settings={"rate_limit_per_second": None, "activity_processing_seconds": 0.0},
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for handler, level in handlers:
            handler.setLevel(level)
    return result, out.getvalue()


def _member(paths: DemoPaths, member_id: str) -> dict:
    engine = sa.create_engine(paths.member_db_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM members WHERE member_id = :id"), {"id": int(member_id)})
        member = dict(row.mappings().one())
    engine.dispose()
    return member


def _contact(paths: DemoPaths, contact_id: str) -> dict:
    """The contact as the emulator saved it at the end of the demo (its state file)."""
    contacts = json.loads(paths.emulator_state.read_text())["account"]["contacts"]
    if isinstance(contacts, dict):
        return contacts[contact_id]
    return next(c for c in contacts if c["contact_id"] == contact_id)


def _edit(result: DemoResult, kind: EditKind):
    return next(e for e in result.edits if e.kind == kind)


def _bookkeeping(paths: DemoPaths) -> Bookkeeping:
    return Bookkeeping(sa.create_engine(paths.member_db_url))


def test_both_runs_succeed_and_the_second_changes_only_the_edited_people(demo_run) -> None:
    result, _ = demo_run
    assert result.first.succeeded, result.first
    assert result.second.succeeded, result.second
    assert result.first.counts["new_links"] > 0
    assert result.first.api_calls > 0
    changes = _bookkeeping(result.paths).get_changes(result.second.run_id)
    assert set(changes["member_id"].astype(str)) == {e.member_id for e in result.edits}
    assert len({e.member_id for e in result.edits}) == 4


@pytest.mark.parametrize(
    ("kind", "field", "direction", "reason"),
    [
        (EditKind.MEMBER_EDIT, "city", "to_cc", "member_changed"),
        (EditKind.CC_OPT_OUT, "opted_out", "to_member_db", "opt_out"),
        (EditKind.CC_EMAIL_CHANGE, "email", "to_member_db", "cc_changed"),
        (EditKind.CONFLICT, "job_title", "to_member_db", "conflict_cc_later"),
    ],
)
def test_each_edit_is_logged_with_its_rule(demo_run, kind, field, direction, reason) -> None:
    result, _ = demo_run
    edit = _edit(result, kind)
    changes = _bookkeeping(result.paths).get_changes(result.second.run_id)
    mine = changes[changes["member_id"].astype(str) == edit.member_id]
    assert mine[["field", "direction", "reason"]].values.tolist() == [[field, direction, reason]]


def test_both_sides_hold_the_merged_values(demo_run) -> None:
    result, _ = demo_run
    paths = result.paths

    edited = _edit(result, EditKind.MEMBER_EDIT)
    assert _contact(paths, edited.contact_id)["street_addresses"][0]["city"] == "Springfield"

    opted = _edit(result, EditKind.CC_OPT_OUT)
    assert bool(_member(paths, opted.member_id)["email_opt_out"]) is True
    assert _contact(paths, opted.contact_id)["email_address"]["permission_to_send"] == "unsubscribed"

    moved = _edit(result, EditKind.CC_EMAIL_CHANGE)
    new_address = _contact(paths, moved.contact_id)["email_address"]["address"]
    assert new_address == f"moved.{moved.member_id}@example.com"
    assert _member(paths, moved.member_id)["email"] == new_address

    conflicted = _edit(result, EditKind.CONFLICT)
    assert _member(paths, conflicted.member_id)["job_title"] == "Club secretary"
    assert _contact(paths, conflicted.contact_id)["job_title"] == "Club secretary"


def test_consent_is_recorded_and_nobody_is_resubscribed(demo_run) -> None:
    result, _ = demo_run
    opted = _edit(result, EditKind.CC_OPT_OUT)
    ledger = _bookkeeping(result.paths).get_opt_outs()
    entry = ledger[(ledger["member_id"] == opted.member_id) & (ledger["run_id"] == result.second.run_id)]
    assert entry["side"].tolist() == ["cc"]
    account = json.loads(result.paths.emulator_state.read_text())["account"]
    assert not account["resubscribes"]


def test_the_story_names_each_person_and_shows_no_email_address(demo_run) -> None:
    result, story = demo_run
    for edit in result.edits:
        assert f"member {edit.member_id} / contact {edit.contact_id[:8]}: {edit.kind}" in story
    assert "Constant Contact's change was later" in story
    assert "0 re-subscription(s), 0 sign_up_form call(s)" in story
    assert "0 other member(s) changed in the second run" in story
    assert FULL_EMAIL.findall(story) == []


def test_a_fresh_start_removes_the_previous_world(tmp_path: Path) -> None:
    paths = DemoPaths(tmp_path / "var")
    paths.var_dir.mkdir()
    for path in (paths.members_db, paths.emulator_state, paths.cc_state_db, paths.airflow_log):
        path.write_text("left over")
    keep = paths.var_dir / "bench"
    keep.mkdir()
    paths.start_fresh()
    assert sorted(p.name for p in paths.var_dir.iterdir()) == ["bench"]


def test_every_resolver_rule_has_words_in_the_story() -> None:
    from cc_sync.engine.model import ChangeReason
    from cc_sync.member_db.bookkeeping import ChangeDirection
    from include.demo import DIRECTION_WORDS, REASON_WORDS

    assert set(REASON_WORDS) == {reason.value for reason in ChangeReason}
    assert set(DIRECTION_WORDS) == {direction.value for direction in ChangeDirection}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("email", "anne.smith@example.org", "a***@example.org"),
        ("email", "not-an-address", "(invalid email)"),
        ("email", None, "-"),
        ("city", "Springfield", "'Springfield'"),
        ("city", "", "-"),
        ("opted_out", True, "yes"),
    ],
)
def test_values_are_shown_with_emails_masked(field: str, value: object, expected: str) -> None:
    from include.demo import shown

    assert shown(field, value) == expected


# ---- make airflow: stopping airflow standalone ------------------------------------------------------

# Stands in for `airflow standalone`: a parent that dies on Ctrl-C, and a component (like a scheduler
# stuck with its workers) that ignores both SIGINT and SIGTERM.
_STUBBORN_TREE = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import signal, time\\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
    "time.sleep(600)"])
time.sleep(600)
"""


def test_stopping_standalone_leaves_no_process_of_its_tree_running() -> None:
    import subprocess
    import sys
    import time

    import psutil

    from include.airflow_ui import stop_standalone

    parent = subprocess.Popen([sys.executable, "-c", _STUBBORN_TREE], start_new_session=True)
    deadline = time.monotonic() + 30
    while not psutil.Process(parent.pid).children() and time.monotonic() < deadline:
        time.sleep(0.1)
    (component,) = psutil.Process(parent.pid).children()
    time.sleep(0.5)  # let the component install its signal handlers

    stop_standalone(parent, grace=2)

    assert parent.poll() is not None
    assert not component.is_running() or component.status() == psutil.STATUS_ZOMBIE
