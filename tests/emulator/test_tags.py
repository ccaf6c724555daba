"""Contact tags over real HTTP: unique names, paging, renames, the tagging activities' sources and
their refusals, consent left alone, a tag's delete untagging everyone, and tags kept in the state."""

from __future__ import annotations

import pytest

from include.cc_emulator.testing import EmulatorHandle
from tests.emulator.conftest import ApiClient


def _tag(api: ApiClient, name: str) -> str:
    response = api.post("/contact_tags", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["tag_id"]


def _tagging(api: ApiClient, action: str, body: dict) -> dict:
    response = api.post(f"/activities/contacts_taggings_{action}", json=body)
    assert response.status_code == 201, response.text
    return api.wait_for_activity(response.json()["activity_id"])


def _taggings(emulator: EmulatorHandle, contact_id: str) -> list[str]:
    return emulator.admin.get_contact(contact_id)["taggings"]


def test_tag_names_are_unique_and_the_list_pages_with_a_cursor(api: ApiClient) -> None:
    ids = [_tag(api, f"Chapter: {n}") for n in range(3)]
    assert api.post("/contact_tags", json={"name": "Chapter: 0"}).status_code == 409
    assert api.put(f"/contact_tags/{ids[1]}", json={"name": "Chapter: 0"}).status_code == 409
    renamed = api.put(f"/contact_tags/{ids[1]}", json={"name": "Chapter: One"})
    assert renamed.json()["name"] == "Chapter: One"
    seen, page = [], api.get("/contact_tags", params={"limit": 2}).json()
    seen += [t["tag_id"] for t in page["tags"]]
    page = api.get(page["_links"]["next"]["href"]).json()
    seen += [t["tag_id"] for t in page["tags"]]
    assert seen == ids
    assert "next" not in page["_links"]


def test_tagging_by_contacts_list_or_tag_and_exclude(emulator: EmulatorHandle, api: ApiClient) -> None:
    list_id = emulator.admin.create_list("Members")
    ids = emulator.admin.seed_contacts(count=4, list_ids=[list_id], seed=3)
    gold, vip = _tag(api, "Member: Gold"), _tag(api, "VIP")
    done = _tagging(
        api,
        "add",
        {"source": {"list_ids": [list_id]}, "exclude": {"contact_ids": [ids[3]]}, "tag_ids": [gold]},
    )
    assert done["state"] == "completed"
    assert [gold in _taggings(emulator, c) for c in ids] == [True, True, True, False]
    _tagging(api, "add", {"source": {"tag_ids": [gold]}, "tag_ids": [vip]})
    assert [vip in _taggings(emulator, c) for c in ids] == [True, True, True, False]
    _tagging(api, "remove", {"source": {"contact_ids": ids[:1]}, "tag_ids": [gold, vip]})
    assert _taggings(emulator, ids[0]) == []
    counted = api.get(f"/contact_tags/{gold}", params={"include_count": "true"}).json()
    assert counted["contacts_count"] == 2


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"source": {"contact_ids": []}, "tag_ids": ["T"]}, "no source"),
        ({"source": {"contact_ids": ["C"], "all_active_contacts": True}, "tag_ids": ["T"]}, "two sources"),
        ({"source": {"contact_ids": ["C"]}, "exclude": {"contact_ids": ["C"]}, "tag_ids": ["T"]}, "exclude"),
        ({"source": {"contact_ids": ["C"]}, "tag_ids": ["00000000-0000-0000-0000-000000000000"]}, "no tag"),
        ({"source": {"contact_ids": ["C"]}}, "no tag_ids"),
    ],
)
def test_a_malformed_tagging_is_refused_and_changes_nothing(
    emulator: EmulatorHandle, api: ApiClient, body: dict, why: str
) -> None:
    (contact_id,) = emulator.admin.seed_contacts(count=1, seed=4)
    tag_id = _tag(api, "Member: Gold")
    filled = {
        **body,
        "source": {k: [contact_id] if v == ["C"] else v for k, v in body["source"].items()},
        **({"tag_ids": [tag_id if t == "T" else t for t in body["tag_ids"]]} if "tag_ids" in body else {}),
        **({"exclude": {"contact_ids": [contact_id]}} if "exclude" in body else {}),
    }
    response = api.post("/activities/contacts_taggings_add", json=filled)
    assert response.status_code == 400, why
    assert _taggings(emulator, contact_id) == []


def test_tagging_an_opted_out_contact_keeps_it_unsubscribed(emulator: EmulatorHandle, api: ApiClient) -> None:
    (contact_id,) = emulator.admin.seed_contacts(count=1, seed=6)
    emulator.admin.opt_out(contact_id)
    before = emulator.admin.get_contact(contact_id)
    _tagging(api, "add", {"source": {"contact_ids": [contact_id]}, "tag_ids": [_tag(api, "Member: Gold")]})
    after = emulator.admin.get_contact(contact_id)
    assert after["email_address"] == before["email_address"]
    assert after["updated_at"] == before["updated_at"], "a tag is no personal field: updated_at stays"
    assert emulator.admin.counters()["resubscribes"] == 0


def test_deleting_a_tag_untags_everyone_and_survives_a_restart_of_the_state(
    emulator: EmulatorHandle, api: ApiClient
) -> None:
    ids = emulator.admin.seed_contacts(count=2, seed=8)
    gold, silver = _tag(api, "Member: Gold"), _tag(api, "Member: Silver")
    _tagging(api, "add", {"source": {"contact_ids": ids}, "tag_ids": [gold, silver]})
    deleted = api.delete(f"/contact_tags/{gold}")
    assert deleted.status_code == 202
    api.wait_for_activity(deleted.json()["activity_id"])
    assert [_taggings(emulator, c) for c in ids] == [[silver], [silver]]
    assert api.get(f"/contact_tags/{gold}").status_code == 404
    snapshot = emulator.admin.snapshot()
    emulator.admin.reset()
    emulator.admin.restore(snapshot)
    assert [t["name"] for t in api.get("/contact_tags").json()["tags"]] == ["Member: Silver"]
