"""Learning the sent contacts' ids after the import by one contact export of the list (issue 18,
part 4) instead of reading the list page by page: the same links, in a constant few calls."""

from __future__ import annotations

import pytest

from tests.send_list.conftest import SendWorld
from tests.send_list.test_send_list_dag import WITH_EMAIL, _in_scope, _sendable

pytestmark = pytest.mark.slow

EXPORT = "POST /v3/activities/contact_exports"
EXPORT_FILE = "GET /v3/contact_exports/{file_export_id}"


@pytest.mark.parametrize(("min_pages", "exports"), [("1", 1), ("off", 0)])
def test_ids_after_the_import_come_from_one_export(
    world: SendWorld, monkeypatch: pytest.MonkeyPatch, min_pages: str, exports: int
) -> None:
    # The demo's segment is one page long: from 1 page on, the export reads it ("off": page by page).
    monkeypatch.setenv("CC_SYNC_LIST_EXPORT_MIN_PAGES", min_pages)
    log_from = len(world.emulator.admin.request_log())

    run = world.send(filter=WITH_EMAIL, list="Everyone", mode="create_new")

    assert run["state"] == "success", run["tasks"]
    assert run["counts"]["list_read_after_import"] == 1
    log = world.emulator.admin.request_log()[log_from:]
    endpoints = [r["endpoint"] for r in log]
    assert endpoints.count(EXPORT) == endpoints.count(EXPORT_FILE) == exports
    page_reads = [r for r in log if r["endpoint"] == "GET /v3/contacts" and "lists=" in (r["query"] or "")]
    assert len(page_reads) == 1 - exports
    # Either way, every sent member is linked to the contact that holds their email.
    expected = _sendable(_in_scope(world))
    links = world.links().set_index("member_id")["contact_id"]
    assert len(links) == run["counts"]["linked"] == len(expected)
    for member in expected.itertuples():
        contact = world.contact_by_email(member.email)
        assert contact is not None
        assert links.get(str(member.member_id)) == contact["contact_id"]
    assert run["counts"]["created"] == len(expected)
