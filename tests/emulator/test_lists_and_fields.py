"""Contact lists and custom fields over real HTTP."""

from __future__ import annotations

import pytest

from include.cc_emulator.testing import EmulatorHandle
from tests.emulator.conftest import ApiClient


def test_list_crud_with_membership_counts(emulator: EmulatorHandle, api: ApiClient) -> None:
    created = api.post("/contact_lists", json={"name": "Volunteers", "favorite": True})
    assert created.status_code == 201
    list_id = created.json()["list_id"]
    assert api.post("/contact_lists", json={"name": "Volunteers"}).status_code == 409
    ids = emulator.admin.seed_contacts(count=5, list_ids=[list_id])
    emulator.admin.opt_out(ids[0])  # leaves all lists
    shown = api.get(f"/contact_lists/{list_id}", params={"include_membership_count": "all"}).json()
    assert shown["membership_count"] == 4
    renamed = api.put(f"/contact_lists/{list_id}", json={"name": "Helpers"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Helpers"
    found = api.get("/contact_lists", params={"name": "Helpers", "include_count": "true"}).json()
    assert found["lists_count"] == 1
    deleted = api.delete(f"/contact_lists/{list_id}")
    assert deleted.status_code == 202
    api.wait_for_activity(deleted.json()["activity_id"])
    assert api.get("/contact_lists").json()["lists"] == []
    assert len(api.get("/contact_lists", params={"status": "deleted"}).json()["lists"]) == 1
    assert all(c["list_memberships"] == [] for c in emulator.admin.all_contacts())


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 256}])
def test_bad_list_names_are_400(api: ApiClient, body: dict) -> None:
    assert api.post("/contact_lists", json=body).status_code == 400


def test_custom_field_crud_and_names(api: ApiClient) -> None:
    created = api.post("/contact_custom_fields", json={"label": "Favourite colour", "type": "string"})
    assert created.status_code == 201
    field = created.json()
    assert field["name"] == "Favourite_colour"
    assert (
        api.post("/contact_custom_fields", json={"label": "Favourite colour", "type": "string"}).status_code
        == 409
    )
    field_id = field["custom_field_id"]
    assert api.get(f"/contact_custom_fields/{field_id}").json()["label"] == "Favourite colour"
    assert api.put(f"/contact_custom_fields/{field_id}", json={"label": "Colour"}).json()["label"] == "Colour"
    assert len(api.get("/contact_custom_fields").json()["custom_fields"]) == 1
    assert api.delete(f"/contact_custom_fields/{field_id}").status_code == 204
    assert api.get(f"/contact_custom_fields/{field_id}").status_code == 404


def test_at_most_100_custom_fields(api: ApiClient) -> None:
    for i in range(100):
        assert (
            api.post("/contact_custom_fields", json={"label": f"F{i}", "type": "string"}).status_code == 201
        )
    refused = api.post("/contact_custom_fields", json={"label": "F100", "type": "string"})
    assert refused.status_code == 400
    assert "100" in refused.json()[0]["error_message"]
    assert len(api.get("/contact_custom_fields", params={"limit": 100}).json()["custom_fields"]) == 100


def test_custom_field_values_on_contacts(emulator: EmulatorHandle, api: ApiClient) -> None:
    field_id = emulator.admin.create_custom_field("Member Number")
    [cid] = emulator.admin.seed_contacts(count=1)
    contact = emulator.admin.get_contact(cid)
    body = {
        "email_address": {"address": contact["email_address"]["address"]},
        "first_name": contact["first_name"],
        "update_source": "Account",
        "custom_fields": [{"custom_field_id": field_id, "value": "M-7"}],
    }
    assert api.put(f"/contacts/{cid}", json=body).status_code == 200
    shown = api.get(f"/contacts/{cid}", params={"include": "custom_fields"}).json()
    assert shown["custom_fields"] == [{"custom_field_id": field_id, "value": "M-7"}]
    bad = {**body, "custom_fields": [{"custom_field_id": "nope", "value": "x"}]}
    assert api.put(f"/contacts/{cid}", json=bad).status_code == 400


def test_account_summary(api: ApiClient) -> None:
    summary = api.get("/account/summary", params={"extra_fields": "physical_address"}).json()
    assert summary["organization_name"]
    assert summary["physical_address"]["country_code"] == "US"


def test_seeded_contacts_take_custom_fields_by_cf_name(emulator: EmulatorHandle, api: ApiClient) -> None:
    field_id = emulator.admin.create_custom_field("Member Number")
    [cid] = emulator.admin.seed_contacts(contacts=[{"email": "cf@example.org", "cf:Member_Number": "M-9"}])
    [found] = api.walk_contacts(email="cf@example.org", include="custom_fields")
    assert found["contact_id"] == cid
    assert found["custom_fields"] == [{"custom_field_id": field_id, "value": "M-9"}]
    with pytest.raises(Exception, match="no custom field"):
        emulator.admin.seed_contacts(contacts=[{"email": "x@example.org", "cf:Nope": "1"}])
