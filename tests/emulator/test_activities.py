"""Bulk activities over real HTTP: JSON import rules and limits, list memberships, deletes, the queue."""

from __future__ import annotations

import json

import pytest

from include.cc_emulator.testing import EmulatorHandle
from tests.emulator.conftest import ApiClient


def _import(api: ApiClient, rows: list[dict], list_ids: list[str]) -> dict:
    response = api.post("/activities/contacts_json_import", json={"import_data": rows, "list_ids": list_ids})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["state"] == "initialized"
    assert created["_links"]["self"]["href"] == f"/v3/activities/{created['activity_id']}"
    return api.wait_for_activity(created["activity_id"])


def test_import_creates_new_contacts_with_implicit_permission(
    emulator: EmulatorHandle, api: ApiClient
) -> None:
    list_id = emulator.admin.create_list("Members")
    emulator.admin.create_custom_field("Member Number")
    rows = [
        {
            "email": "amy@example.org",
            "first_name": "Amy",
            "home_phone": "555-0001",
            "street": "1 Elm St",
            "city": "Salem",
            "zip": "01970",
            "cf:Member_Number": "M-1",
            "birthday_month": 4,
            "birthday_day": 12,
        },
        {"email": "bob@example.org", "last_name": "Stone", "work_phone": "555-0002"},
    ]
    activity = _import(api, rows, [list_id])
    assert activity["state"] == "completed"
    assert activity["percent_done"] == 100
    assert activity["status"]["person_count"] == 2
    assert activity["status"]["error_count"] == 0
    [amy] = api.walk_contacts(
        email="amy@example.org", include="custom_fields,list_memberships,phone_numbers,street_addresses"
    )
    assert amy["email_address"]["permission_to_send"] == "implicit"
    assert amy["email_address"]["opt_in_source"] == "Account"
    assert amy["first_name"] == "Amy"
    assert amy["birthday_month"] == 4
    assert amy["list_memberships"] == [list_id]
    assert amy["phone_numbers"][0]["phone_number"] == "555-0001"
    assert amy["phone_numbers"][0]["kind"] == "home"
    address = amy["street_addresses"][0]
    assert (address["kind"], address["street"], address["city"], address["postal_code"]) == (
        "home",
        "1 Elm St",
        "Salem",
        "01970",
    )
    assert amy["custom_fields"][0]["value"] == "M-1"


def test_import_changes_existing_contacts_only_in_the_fields_sent(
    emulator: EmulatorHandle, api: ApiClient
) -> None:
    list_a = emulator.admin.create_list("A")
    list_b = emulator.admin.create_list("B")
    [cid] = emulator.admin.seed_contacts(
        contacts=[
            {"email": "cat@example.org", "first_name": "Cat", "last_name": "Lee", "job_title": "Chair"}
        ],
        list_ids=[list_a],
    )
    before = emulator.admin.get_contact(cid)
    activity = _import(
        api, [{"email": "CAT@example.org", "last_name": "Leigh", "company_name": ""}], [list_b]
    )
    assert activity["status"]["person_count"] == 1
    after = emulator.admin.get_contact(cid)
    assert after["last_name"] == "Leigh"
    assert after["first_name"] == "Cat"
    assert after["job_title"] == "Chair"
    assert "company_name" not in after  # an empty value counts as not sent
    assert after["email_address"]["permission_to_send"] == before["email_address"]["permission_to_send"]
    assert sorted(after["list_memberships"]) == sorted([list_a, list_b])
    assert after["updated_at"] > before["updated_at"]


def test_import_never_puts_an_unsubscribed_contact_back_on_a_list(
    emulator: EmulatorHandle, api: ApiClient
) -> None:
    list_id = emulator.admin.create_list("Newsletter")
    [cid] = emulator.admin.seed_contacts(contacts=[{"email": "out@example.org", "first_name": "Out"}])
    emulator.admin.opt_out(cid)
    activity = _import(
        api, [{"email": "out@example.org", "first_name": "Outie"}, {"email": "in@example.org"}], [list_id]
    )
    assert activity["status"]["cannot_add_to_list_count"] == 1
    contact = emulator.admin.get_contact(cid)
    assert contact["list_memberships"] == []
    assert contact["email_address"]["permission_to_send"] == "unsubscribed"
    assert contact["first_name"] == "Outie"
    assert emulator.admin.counters()["resubscribes"] == 0


@pytest.mark.parametrize(
    ("row", "reason", "correctable"),
    [
        ({"email": "not an email"}, "invalid email", True),
        ({"first_name": "No Email"}, "email is required", True),
        ({"email": "long@example.org", "first_name": "x" * 51}, "first_name is longer than 50", False),
        ({"email": ("x" * 45) + "@example.org"}, "longer than 50", False),
        ({"email": "cf@example.org", "cf:unknown": "v"}, "no custom field", False),
        ({"email": "bd@example.org", "birthday_month": 13}, "birthday_month", True),
    ],
)
def test_bad_rows_are_reported_and_the_rest_goes_through(
    emulator: EmulatorHandle, api: ApiClient, row: dict, reason: str, correctable: bool
) -> None:
    list_id = emulator.admin.create_list("L")
    activity = _import(api, [{"email": "good@example.org"}, row, {"email": "fine@example.org"}], [list_id])
    status = activity["status"]
    assert status["person_count"] == 2
    assert status["error_count"] == 1
    assert status["correctable_count"] == (1 if correctable else 0)
    [error] = activity["activity_errors"]
    assert error.startswith("import_data[1]:")
    assert reason in error
    assert {c["email_address"]["address"] for c in emulator.admin.all_contacts()} == {
        "good@example.org",
        "fine@example.org",
    }
    assert "not an email" not in json.dumps(activity)


def test_import_over_40000_contacts_is_400(emulator: EmulatorHandle, api: ApiClient) -> None:
    list_id = emulator.admin.create_list("L")
    rows = [{"email": f"p{i}@e.io"} for i in range(40_001)]
    response = api.post("/activities/contacts_json_import", json={"import_data": rows, "list_ids": [list_id]})
    assert response.status_code == 400
    assert "40,000" in response.json()[0]["error_message"]
    assert emulator.admin.all_contacts() == []


def test_import_of_4_mb_or_more_is_400(emulator: EmulatorHandle, api: ApiClient) -> None:
    list_id = emulator.admin.create_list("L")
    rows = [{"email": f"person{i}@example.org", "street": "x" * 250} for i in range(15_000)]
    body = json.dumps({"import_data": rows, "list_ids": [list_id]})
    assert len(body) >= 4 * 1024 * 1024
    response = api.post(
        "/activities/contacts_json_import", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "4 MB" in response.json()[0]["error_message"]


@pytest.mark.parametrize(
    "body",
    [
        {"import_data": [{"email": "a@example.org"}]},
        {"import_data": [], "list_ids": ["LIST"]},
        {"import_data": [{"email": "a@example.org"}], "list_ids": []},
        {"import_data": [{"email": "a@example.org"}], "list_ids": ["no-such-list"]},
    ],
)
def test_import_needs_import_data_and_existing_list_ids(
    emulator: EmulatorHandle, api: ApiClient, body: dict
) -> None:
    list_id = emulator.admin.create_list("L")
    body = json.loads(json.dumps(body).replace("LIST", list_id))
    response = api.post("/activities/contacts_json_import", json=body)
    assert response.status_code == 400
    assert isinstance(response.json(), list)


def test_a_40000_contact_import_is_processed(emulator: EmulatorHandle, api: ApiClient) -> None:
    list_id = emulator.admin.create_list("Big")
    rows = [{"email": f"member{i}@example.org", "first_name": f"M{i}"} for i in range(40_000)]
    activity = _import(api, rows, [list_id])
    assert activity["status"]["person_count"] == 40_000
    body = api.get("/contacts", params={"limit": 1, "include_count": "true", "lists": list_id}).json()
    assert body["contacts_count"] == 40_000


def test_activity_goes_through_processing_while_polled(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.configure(activity_processing_seconds=0.5)
    list_id = emulator.admin.create_list("L")
    response = api.post(
        "/activities/contacts_json_import",
        json={"import_data": [{"email": "a@example.org"}], "list_ids": [list_id]},
    )
    activity_id = response.json()["activity_id"]
    seen = set()
    while True:
        state = api.get(f"/activities/{activity_id}").json()["state"]
        seen.add(state)
        if state == "completed":
            break
    assert "processing" in seen
    assert emulator.admin.all_contacts()[0]["email_address"]["address"] == "a@example.org"


def test_queue_limit_answers_429(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.configure(max_queued_activities=3, activity_processing_seconds=30)
    list_id = emulator.admin.create_list("L")
    body = {"import_data": [{"email": "a@example.org"}], "list_ids": [list_id]}
    statuses = [api.post("/activities/contacts_json_import", json=body).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    listed = api.get("/activities", params={"state": "processing"}).json()["activities"]
    assert len(listed) == 1


def test_add_and_remove_list_memberships(emulator: EmulatorHandle, api: ApiClient) -> None:
    source = emulator.admin.create_list("Source")
    target = emulator.admin.create_list("Target")
    ids = emulator.admin.seed_contacts(count=4, list_ids=[source])
    emulator.admin.opt_out(ids[3])
    add = api.post(
        "/activities/add_list_memberships",
        json={"source": {"contact_ids": ids}, "list_ids": [target], "exclude": {"contact_ids": [ids[0]]}},
    )
    assert add.status_code == 201
    assert api.wait_for_activity(add.json()["activity_id"])["state"] == "completed"
    members = {c["contact_id"] for c in api.walk_contacts(lists=target)}
    assert members == {ids[1], ids[2]}  # ids[0] excluded, ids[3] unsubscribed
    remove = api.post(
        "/activities/remove_list_memberships", json={"source": {"list_ids": [source]}, "list_ids": [target]}
    )
    assert remove.status_code == 201
    api.wait_for_activity(remove.json()["activity_id"])
    assert api.walk_contacts(lists=target) == []
    lists = api.get("/contact_lists", params={"include_membership_count": "all"}).json()["lists"]
    assert {lst["name"]: lst["membership_count"] for lst in lists} == {"Source": 3, "Target": 0}


def test_contact_delete_activity(emulator: EmulatorHandle, api: ApiClient) -> None:
    ids = emulator.admin.seed_contacts(count=3)
    response = api.post("/activities/contact_delete", json={"contact_ids": ids[:2]})
    assert response.status_code == 201
    activity = api.wait_for_activity(response.json()["activity_id"])
    assert activity["status"]["items_completed_count"] == 2
    assert [c["contact_id"] for c in api.walk_contacts()] == [ids[2]]
    too_many = api.post("/activities/contact_delete", json={"contact_ids": [f"id{i}" for i in range(501)]})
    assert too_many.status_code == 400


def test_failed_activity_fault_applies_nothing(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.set_faults(activity_fail_rate=1.0, seed=7)
    list_id = emulator.admin.create_list("L")
    response = api.post(
        "/activities/contacts_json_import",
        json={"import_data": [{"email": "a@example.org"}], "list_ids": [list_id]},
    )
    activity = api.wait_for_activity(response.json()["activity_id"])
    assert activity["state"] == "failed"
    assert activity["activity_errors"]
    assert emulator.admin.all_contacts() == []


def test_failed_activity_count_fails_exactly_the_next_ones(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.set_faults(activity_fail_count=1)
    list_id = emulator.admin.create_list("L")
    states = [
        api.wait_for_activity(
            api.post(
                "/activities/contacts_json_import",
                json={"import_data": [{"email": f"{n}@example.org"}], "list_ids": [list_id]},
            ).json()["activity_id"]
        )["state"]
        for n in ("first", "second", "third")
    ]
    assert states == ["failed", "completed", "completed"]
    assert [c["email_address"]["address"] for c in emulator.admin.all_contacts()] == [
        "second@example.org",
        "third@example.org",
    ]


def test_unknown_activity_is_404(api: ApiClient) -> None:
    assert api.get("/activities/00000000-0000-0000-0000-000000000000").status_code == 404
