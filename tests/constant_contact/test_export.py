"""The contact export through the hook, over real HTTP against the emulator: a list's ids and emails
in one export activity, its polls and one file read, whatever the list's size."""

from __future__ import annotations

import pytest

from cc_sync.constant_contact.errors import ConstantContactApiError
from cc_sync.constant_contact.hook import ExportStatus


def _export_calls(emulator) -> dict[str, int]:
    endpoints = emulator.admin.counters()["endpoints"]
    return {
        "post": endpoints.get("POST /v3/activities/contact_exports", 0),
        "polls": endpoints.get("GET /v3/activities/{activity_id}", 0),
        "file": endpoints.get("GET /v3/contact_exports/{file_export_id}", 0),
        "pages": endpoints.get("GET /v3/contacts", 0),
    }


@pytest.mark.parametrize("members", [0, 3, 1_234])
def test_export_gives_every_list_member_once_in_a_constant_number_of_calls(emulator, hook, members):
    target = emulator.admin.create_list("Target")
    listed = emulator.admin.seed_contacts(count=members, list_ids=[target]) if members else []
    emulator.admin.seed_contacts(count=7, seed=99)  # not on the list: never exported

    rows = hook.export_contacts(list_id=target)

    assert sorted(r["contact_id"] for r in rows) == sorted(listed)
    emails = {c["contact_id"]: c["email_address"]["address"] for c in hook.iter_contacts(lists=[target])}
    assert {r["contact_id"]: r["email_address"] for r in rows} == emails
    calls = _export_calls(emulator)
    assert (calls["post"], calls["file"]) == (1, 1)
    # The budget counted every call: the POST, each poll and the file (and the check read above).
    assert hook.api_calls == 2 + calls["polls"] + calls["pages"]


def test_export_columns_and_status_filter(emulator, hook):
    target = emulator.admin.create_list("Target")
    kept, gone = emulator.admin.seed_contacts(
        contacts=[
            {"email": "kept@example.org", "first_name": "Kept, Jr.", "last_name": ""},
            {"email": "gone@example.org", "first_name": "Gone"},
        ],
        list_ids=[target],
    )
    everyone = hook.export_contacts(
        list_id=target, fields=("email_address", "first_name", "email_permission")
    )
    by_id = {r["contact_id"]: r for r in everyone}
    assert set(by_id[kept]) == {"contact_id", "email_address", "first_name", "email_permission"}
    assert by_id[kept]["first_name"] == "Kept, Jr."  # a comma survives the CSV quoting
    assert by_id[gone]["email_permission"] == hook.get_contact(gone)["email_address"]["permission_to_send"]

    # CC takes an unsubscribed contact off its lists: the list's export no longer has it.
    emulator.admin.opt_out(gone)
    assert [r["contact_id"] for r in hook.export_contacts(list_id=target)] == [kept]
    assert [r["contact_id"] for r in hook.export_contacts(list_id=target, status=ExportStatus.ACTIVE)] == [
        kept
    ]
    assert hook.export_contacts(list_id=target, status=ExportStatus.UNSUBSCRIBED) == []


def test_export_of_an_unknown_list_is_a_clear_error(emulator, hook):
    with pytest.raises(ConstantContactApiError) as caught:
        hook.export_contacts(list_id="00000000-0000-4000-8000-000000000000")
    assert caught.value.status == 400
    assert "does not exist" in str(caught.value)


def test_an_unknown_field_is_refused(emulator, hook):
    target = emulator.admin.create_list("Target")
    with pytest.raises(ConstantContactApiError) as caught:
        hook.export_contacts(list_id=target, fields=("email_address", "shoe_size"))
    assert caught.value.status == 400
