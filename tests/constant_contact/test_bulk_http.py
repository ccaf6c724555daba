"""Bulk activities over real HTTP: split imports, asynchronous polling, per-contact errors, consent
kept by imports, and list memberships in batches of 500."""

from __future__ import annotations

import pytest

from cc_sync.constant_contact import bulk
from cc_sync.constant_contact.models import ActivityState


def members(emulator, list_id: str) -> list[str]:
    return next(x for x in emulator.admin.all_lists() if x["list_id"] == list_id)["member_ids"]


def people(n: int, start: int = 0) -> list[dict]:
    return [
        {"email": f"p{i}@example.org", "first_name": "P", "last_name": f"N{i}"}
        for i in range(start, start + n)
    ]


@pytest.mark.parametrize(
    ("limit_name", "limit", "rows", "requests"),
    [("MAX_IMPORT_CONTACTS", 50, 120, 3), ("MAX_IMPORT_BYTES", 2_000, 100, 4)],
    ids=["by-count", "by-size"],
)
def test_import_is_split_and_every_part_lands(emulator, hook, monkeypatch, limit_name, limit, rows, requests):
    monkeypatch.setattr(bulk, limit_name, limit)
    lst = hook.get_or_create_list("Split")
    result = hook.import_contacts(people(rows), [lst.list_id])
    assert result.ok
    assert len(result.activities) == requests
    assert emulator.admin.counters()["endpoints"]["POST /v3/activities/contacts_json_import"] == requests
    assert result.person_count == rows
    assert len(members(emulator, lst.list_id)) == rows
    assert {a.state for a in result.activities} == {ActivityState.COMPLETED}


def test_polling_waits_for_a_slow_activity_and_logs_progress(emulator, hook, capfd):
    # The hook logs through Airflow's structlog logger (the task log), which prints to stdout.
    emulator.admin.configure(activity_processing_seconds=3.0)
    lst = hook.get_or_create_list("Slow")
    result = hook.import_contacts(people(30), [lst.list_id])
    assert result.ok
    assert result.polls >= 2  # the first poll (after ~1 s) found it still processing
    assert result.api_calls == 1 + result.polls
    log_text = capfd.readouterr().out
    progress = [line for line in log_text.splitlines() if "% done" in line]
    assert len(progress) == result.polls
    assert "completed, 100% done" in progress[-1]
    assert "Import finished" in log_text
    assert "@example.org" not in log_text


def test_wait_false_returns_the_started_activities(emulator, hook):
    emulator.admin.configure(activity_processing_seconds=5.0)
    lst = hook.get_or_create_list("NoWait")
    result = hook.import_contacts(people(5), [lst.list_id], wait=False)
    assert result.polls == 0
    assert not result.activities[0].state.is_terminal()
    assert hook.get_activity(result.activities[0].activity_id).activity_id == result.activities[0].activity_id


def test_rows_are_rejected_with_reasons_and_the_rest_imported(emulator, hook):
    lst = hook.get_or_create_list("Mixed")
    rows = [
        *people(3),
        {"email": "broken"},
        {"email": "p0@example.org"},
        {"email": "x@example.org", "cf:nope": "1"},
    ]
    result = hook.import_contacts(rows, [lst.list_id])
    before = {(e.row, e.field) for e in result.errors if e.activity_id is None}
    assert before == {(3, "email"), (4, "email")}
    from_server = [e for e in result.errors if e.activity_id is not None]
    assert len(from_server) == 1  # the unknown custom field, reported by CC in the activity
    assert from_server[0].row == 5  # named by CC ("import_data[3]" of the request's 4 rows)
    assert "@" not in from_server[0].reason
    assert result.unconfirmed_rows() == []
    assert len(members(emulator, lst.list_id)) == 3


def test_import_never_puts_an_opted_out_contact_back_on_a_list(emulator, hook):
    lst = hook.get_or_create_list("Consent")
    [opted_out] = emulator.admin.seed_contacts(contacts=[{"email": "left@example.org"}])
    emulator.admin.opt_out(opted_out)
    result = hook.import_contacts(
        [{"email": "left@example.org", "first_name": "Left"}, *people(2)], [lst.list_id]
    )
    assert result.cannot_add_to_list_count == 1
    assert opted_out not in members(emulator, lst.list_id)
    assert emulator.admin.get_contact(opted_out)["email_address"]["permission_to_send"] == "unsubscribed"
    assert emulator.admin.counters()["resubscribes"] == 0
    assert emulator.admin.counters()["sign_up_form_calls"] == 0


def test_list_memberships_go_in_batches_of_500(emulator, hook):
    ids = emulator.admin.seed_contacts(count=1_001)
    lst = hook.get_or_create_list("Big")
    added = hook.add_list_memberships(ids, [lst.list_id])
    assert len(added) == 3
    assert all(a.state is ActivityState.COMPLETED for a in added)
    assert sorted(members(emulator, lst.list_id)) == sorted(ids)
    removed = hook.remove_list_memberships(ids[:600], [lst.list_id])
    assert len(removed) == 2
    assert sorted(members(emulator, lst.list_id)) == sorted(ids[600:])


def test_put_round_trip_keeps_what_it_does_not_change(emulator, hook):
    from cc_sync.constant_contact.convert import merge_contact_for_put

    [contact_id] = emulator.admin.seed_contacts(count=1)
    existing = hook.get_contact(contact_id)
    body = merge_contact_for_put(existing, {"job_title": "Treasurer"}, "Account")
    hook.update_contact(contact_id, body)
    after = emulator.admin.get_contact(contact_id)
    assert after["job_title"] == "Treasurer"
    for name in ("first_name", "last_name", "phone_numbers", "street_addresses"):
        assert after[name] == existing[name] or name in ("phone_numbers", "street_addresses")
    assert [p["phone_number"] for p in after["phone_numbers"]] == [
        p["phone_number"] for p in existing["phone_numbers"]
    ]
    assert after["street_addresses"][0]["street"] == existing["street_addresses"][0]["street"]
    assert after["email_address"]["permission_to_send"] == existing["email_address"]["permission_to_send"]


@pytest.mark.parametrize("name_rows", [True, False], ids=["errors-name-the-row", "errors-bare-text"])
def test_a_row_cc_refuses_is_placed_or_its_whole_request_unconfirmed(emulator, hook, monkeypatch, name_rows):
    monkeypatch.setattr(bulk, "MAX_IMPORT_CONTACTS", 3)  # two requests: rows 0-2 and 3-5
    emulator.admin.configure(refused_import_emails=["p4@example.org"], import_errors_name_rows=name_rows)
    lst = hook.get_or_create_list("Refusals")

    result = hook.import_contacts(people(6), [lst.list_id])

    (error,) = [e for e in result.errors if e.activity_id is not None]
    assert error.row == (4 if name_rows else None)
    assert result.unconfirmed_rows() == ([] if name_rows else [3, 4, 5])
    assert len(members(emulator, lst.list_id)) == 5


@pytest.mark.parametrize(
    ("message", "row"),
    [
        ("import_data[1]: the address is on the do-not-mail list", 11),
        ("Contact P2@Example.org could not be imported", 12),
        ("import_data[9]: out of this request; quotes p0@example.org", 10),
        ("1 contact could not be imported", None),
        ("stranger@example.org is not in this request", None),
    ],
)
def test_cc_error_text_is_tied_to_the_row_it_names(message, row):
    from cc_sync.constant_contact.hook import _error_row_finder

    rows = [{"email": "unused@example.org"}] * 10 + people(3)  # the request carries rows 10-12
    assert _error_row_finder(rows, [10, 11, 12])(message) == row
