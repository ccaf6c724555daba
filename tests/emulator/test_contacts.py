"""Contacts over real HTTP: filters, cursor pagination, PUT nulling, opt-outs, POST and DELETE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.cc_emulator.testing import EmulatorHandle
from tests.emulator.conftest import ApiClient

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize(("count", "limit"), [(0, 50), (1, 1), (7, 3), (1_234, 500), (1_000, 500)])
def test_cursor_pagination_returns_every_contact_once(
    emulator: EmulatorHandle, api: ApiClient, count: int, limit: int
) -> None:
    seeded = emulator.admin.seed_contacts(count=count) if count else []
    pages = 0
    found: list[str] = []
    response = api.get("/contacts", params={"limit": limit, "include_count": "true"})
    while True:
        body = response.json()
        assert body["contacts_count"] == count
        assert len(body["contacts"]) <= limit
        found += [c["contact_id"] for c in body["contacts"]]
        pages += 1
        if "next" not in body["_links"]:
            break
        href = body["_links"]["next"]["href"]
        assert href.startswith("/v3/contacts?cursor=")
        response = api.session.get(emulator.base_url + href)
    assert sorted(found) == sorted(seeded)
    assert pages == max(1, -(-count // limit))


@pytest.mark.parametrize("limit", [0, 501, -1])
def test_limit_outside_1_to_500_is_a_400_array_error(api: ApiClient, limit: int) -> None:
    response = api.get("/contacts", params={"limit": limit})
    assert response.status_code == 400
    assert isinstance(response.json(), list)
    assert response.json()[0]["error_key"]


def _seed_variety(emulator: EmulatorHandle) -> dict[str, str]:
    list_a = emulator.admin.create_list("A")
    list_b = emulator.admin.create_list("B")
    ids = emulator.admin.seed_contacts(
        contacts=[
            {"email": "old@example.org", "first_name": "Old", "created_at": _iso(T0), "updated_at": _iso(T0)},
            {
                "email": "new@example.org",
                "first_name": "New",
                "created_at": _iso(T0 + timedelta(days=10)),
                "updated_at": _iso(T0 + timedelta(days=10)),
                "list_memberships": [list_a],
            },
            {
                "email": "edited@example.org",
                "created_at": _iso(T0),
                "updated_at": _iso(T0 + timedelta(days=20)),
                "list_memberships": [list_b],
            },
            {
                "email_address": {
                    "address": "gone@example.org",
                    "permission_to_send": "unsubscribed",
                    "opt_out_date": _iso(T0 + timedelta(days=5)),
                },
                "created_at": _iso(T0),
                "updated_at": _iso(T0),
            },
            {
                "email": "deleted@example.org",
                "created_at": _iso(T0),
                "deleted_at": _iso(T0 + timedelta(days=3)),
            },
        ]
    )
    return dict(zip(["old", "new", "edited", "gone", "deleted"], ids, strict=True)) | {
        "A": list_a,
        "B": list_b,
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"old", "new", "edited", "gone"}),
        ({"status": "all"}, {"old", "new", "edited", "gone", "deleted"}),
        ({"status": "deleted"}, {"deleted"}),
        ({"status": "unsubscribed"}, {"gone"}),
        ({"status": "active"}, {"old", "new", "edited"}),
        ({"status": "active,deleted"}, {"old", "new", "edited", "deleted"}),
        ({"email": "NEW@example.org"}, {"new"}),
        ({"email": "deleted@example.org"}, set()),
        ({"email": "deleted@example.org", "status": "all"}, {"deleted"}),
        ({"email": "nobody@example.org"}, set()),
        ({"lists": "A"}, {"new"}),
        ({"lists": "A,B"}, {"new", "edited"}),
        ({"updated_after": _iso(T0 + timedelta(days=1))}, {"new", "edited"}),
        ({"updated_before": _iso(T0 + timedelta(days=15))}, {"old", "new", "gone"}),
        ({"created_after": _iso(T0 + timedelta(days=1))}, {"new"}),
        ({"created_before": _iso(T0 + timedelta(days=1))}, {"old", "edited", "gone"}),
        ({"optout_after": _iso(T0 + timedelta(days=1))}, {"gone"}),
        ({"optout_before": _iso(T0 + timedelta(days=1))}, set()),
        ({"status": "all", "updated_after": "2026-01-03T00:00:00Z"}, {"new", "edited", "deleted"}),
    ],
)
def test_every_filter(
    emulator: EmulatorHandle, api: ApiClient, params: dict[str, str], expected: set[str]
) -> None:
    ids = _seed_variety(emulator)
    if "lists" in params:
        params = {**params, "lists": ",".join(ids[name] for name in params["lists"].split(","))}
    names = {v: k for k, v in ids.items()}
    found = {names[c["contact_id"]] for c in api.walk_contacts(**params, limit=2)}
    assert found == expected


@pytest.mark.parametrize(
    "include",
    ["", "custom_fields", "list_memberships", "phone_numbers,street_addresses", "list_memberships,notes"],
)
def test_include_adds_only_the_named_subresources(
    emulator: EmulatorHandle, api: ApiClient, include: str
) -> None:
    emulator.admin.seed_contacts(count=3)
    wanted = set(include.split(",")) - {""}
    all_sub = {"custom_fields", "list_memberships", "phone_numbers", "street_addresses", "taggings", "notes"}
    for contact in api.get("/contacts", params={"include": include} if include else {}).json()["contacts"]:
        assert set(contact) & all_sub == wanted


def test_bad_filter_values_are_400(api: ApiClient) -> None:
    assert api.get("/contacts", params={"status": "sleeping"}).status_code == 400
    assert api.get("/contacts", params={"updated_after": "yesterday"}).status_code == 400
    assert api.get("/contacts", params={"include": "everything"}).status_code == 400
    assert api.get("/contacts", params={"cursor": "garbage!"}).status_code == 400


def test_post_creates_and_409s_on_existing_email(api: ApiClient) -> None:
    body = {"email_address": {"address": "ann@example.org"}, "first_name": "Ann", "create_source": "Account"}
    created = api.post("/contacts", json=body)
    assert created.status_code == 201
    contact = created.json()
    assert contact["email_address"]["permission_to_send"] == "implicit"
    assert api.get(f"/contacts/{contact['contact_id']}").json()["first_name"] == "Ann"
    again = api.post("/contacts", json={**body, "email_address": {"address": "ANN@example.org"}})
    assert again.status_code == 409
    assert isinstance(again.json(), list)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"email_address": {"address": "not-an-email"}, "create_source": "Account"}, "valid email"),
        ({"email_address": {"address": "a@example.org"}}, "create_source"),
        (
            {
                "email_address": {"address": "a@example.org"},
                "create_source": "Account",
                "first_name": "x" * 51,
            },
            "50",
        ),
        (
            {"email_address": {"address": "a@example.org"}, "create_source": "Account", "birthday_month": 13},
            "1 to 12",
        ),
    ],
)
def test_post_rejects_bad_input_with_a_reason(api: ApiClient, body: dict, problem: str) -> None:
    response = api.post("/contacts", json=body)
    assert response.status_code == 400
    assert problem in response.json()[0]["error_message"]


def test_put_nulls_omitted_top_level_fields_but_keeps_subresources(
    emulator: EmulatorHandle, api: ApiClient
) -> None:
    list_id = emulator.admin.create_list("Members")
    [cid] = emulator.admin.seed_contacts(
        contacts=[
            {
                "email": "jo@example.org",
                "first_name": "Jo",
                "last_name": "March",
                "job_title": "Writer",
                "phone_numbers": [{"phone_number": "555-1234", "kind": "home"}],
                "created_at": _iso(T0),
            }
        ],
        list_ids=[list_id],
    )
    response = api.put(
        f"/contacts/{cid}",
        json={
            "email_address": {"address": "jo@example.org"},
            "first_name": "Josephine",
            "update_source": "Account",
        },
    )
    assert response.status_code == 200, response.text
    after = emulator.admin.get_contact(cid)
    assert after["first_name"] == "Josephine"
    assert "last_name" not in after
    assert "job_title" not in after
    assert after["phone_numbers"][0]["phone_number"] == "555-1234"
    assert after["list_memberships"] == [list_id]
    assert after["updated_at"] > _iso(T0)


def test_put_requires_update_source(emulator: EmulatorHandle, api: ApiClient) -> None:
    [cid] = emulator.admin.seed_contacts(count=1)
    response = api.put(f"/contacts/{cid}", json={"first_name": "X"})
    assert response.status_code == 400
    assert "update_source" in response.json()[0]["error_message"]


def test_put_to_an_email_of_another_contact_is_409(emulator: EmulatorHandle, api: ApiClient) -> None:
    a, _b = emulator.admin.seed_contacts(contacts=[{"email": "a@example.org"}, {"email": "b@example.org"}])
    response = api.put(
        f"/contacts/{a}", json={"email_address": {"address": "B@example.org"}, "update_source": "Account"}
    )
    assert response.status_code == 409


def test_opt_out_moves_email_updated_at_but_not_contact_updated_at(
    emulator: EmulatorHandle, api: ApiClient
) -> None:
    [cid] = emulator.admin.seed_contacts(
        contacts=[{"email": "leaver@example.org", "created_at": _iso(T0), "updated_at": _iso(T0)}]
    )
    when = T0 + timedelta(days=30)
    emulator.admin.opt_out(cid, at=when, reason="too many emails")
    contact = emulator.admin.get_contact(cid)
    assert contact["updated_at"] == _iso(T0)
    assert contact["email_address"]["permission_to_send"] == "unsubscribed"
    assert contact["email_address"]["opt_out_source"] == "Contact"
    assert contact["email_address"]["opt_out_date"] == _iso(when)
    assert contact["email_address"]["updated_at"] == _iso(when)
    assert api.walk_contacts(updated_after=_iso(T0 + timedelta(days=1))) == []
    assert [c["contact_id"] for c in api.walk_contacts(optout_after=_iso(T0 + timedelta(days=1)))] == [cid]


def test_put_unsubscribe_is_found_by_optout_after_not_updated_after(
    emulator: EmulatorHandle, api: ApiClient
) -> None:
    [cid] = emulator.admin.seed_contacts(
        contacts=[
            {"email": "x@example.org", "first_name": "X", "created_at": _iso(T0), "updated_at": _iso(T0)}
        ]
    )
    body = {
        "email_address": {"address": "x@example.org", "permission_to_send": "unsubscribed"},
        "first_name": "X",
        "update_source": "Account",
    }
    assert api.put(f"/contacts/{cid}", json=body).status_code == 200
    assert api.walk_contacts(updated_after=_iso(T0 + timedelta(days=1))) == []
    [found] = api.walk_contacts(optout_after=_iso(T0 + timedelta(days=1)))
    assert found["email_address"]["opt_out_source"] == "Account"
    assert emulator.admin.counters()["resubscribes"] == 0


def test_any_resubscribe_is_counted(emulator: EmulatorHandle, api: ApiClient) -> None:
    list_id = emulator.admin.create_list("L")
    a, b = emulator.admin.seed_contacts(contacts=[{"email": "a@example.org"}, {"email": "b@example.org"}])
    emulator.admin.opt_out(a)
    emulator.admin.opt_out(b)
    body = {
        "email_address": {"address": "a@example.org", "permission_to_send": "explicit"},
        "update_source": "Account",
    }
    assert api.put(f"/contacts/{a}", json=body).status_code == 200
    assert emulator.admin.counters()["resubscribes"] == 1
    signup = api.post(
        "/contacts/sign_up_form", json={"email_address": "b@example.org", "list_memberships": [list_id]}
    )
    assert signup.status_code == 200
    assert signup.json() == {"contact_id": b, "action": "updated"}
    counters = emulator.admin.counters()
    assert counters["resubscribes"] == 2
    assert counters["sign_up_form_calls"] == 1


def test_delete_keeps_the_contact_as_deleted_without_lists(emulator: EmulatorHandle, api: ApiClient) -> None:
    list_id = emulator.admin.create_list("L")
    [cid] = emulator.admin.seed_contacts(count=1, list_ids=[list_id])
    assert api.delete(f"/contacts/{cid}").status_code == 204
    contact = api.get(f"/contacts/{cid}", params={"include": "list_memberships"}).json()
    assert contact["deleted_at"]
    assert contact["list_memberships"] == []
    assert api.walk_contacts() == []
    assert [c["contact_id"] for c in api.walk_contacts(status="deleted")] == [cid]
    assert api.get("/contacts/no-such-id").status_code == 404


def test_admin_edit_moves_updated_at_to_the_given_time(emulator: EmulatorHandle, api: ApiClient) -> None:
    [cid] = emulator.admin.seed_contacts(contacts=[{"email": "e@example.org", "created_at": _iso(T0)}])
    when = T0 + timedelta(days=2)
    emulator.admin.edit_contact(cid, {"first_name": "Edna", "job_title": "Designer"}, at=when)
    [found] = api.walk_contacts(updated_after=_iso(T0 + timedelta(days=1)))
    assert found["first_name"] == "Edna"
    assert found["updated_at"] == _iso(when)
    assert found["update_source"] == "Contact"


@pytest.mark.parametrize(("update_source", "status"), [("Contact", 400), ("Account", 200)])
def test_put_revives_a_deleted_contact_only_as_account(
    emulator: EmulatorHandle, api: ApiClient, update_source: str, status: int
) -> None:
    [cid] = emulator.admin.seed_contacts(contacts=[{"email": "back@example.org", "first_name": "Back"}])
    emulator.admin.delete_contact(cid)
    body = {
        "email_address": {"address": "back@example.org"},
        "first_name": "Back",
        "update_source": update_source,
    }
    assert api.put(f"/contacts/{cid}", json=body).status_code == status
    assert ("deleted_at" in emulator.admin.get_contact(cid)) is (status == 400)


def test_a_body_that_is_not_json_is_refused(api: ApiClient) -> None:
    not_json = api.post("/contacts", data="email=a@example.org", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 415
    broken = api.post("/contacts", data="{broken", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()[0]["error_message"] == "The request body is not valid JSON"


def test_admin_email_change_moves_updated_at_and_keeps_the_contact(
    emulator: EmulatorHandle, api: ApiClient
) -> None:
    a, _ = emulator.admin.seed_contacts(
        contacts=[{"email": "old@example.org", "created_at": _iso(T0)}, {"email": "taken@example.org"}]
    )
    when = T0 + timedelta(days=3)
    emulator.admin.edit_contact(a, {"email_address": {"address": "new@example.org"}}, at=when)
    [found] = api.walk_contacts(email="new@example.org")
    assert found["contact_id"] == a
    assert found["updated_at"] == _iso(when)
    assert api.walk_contacts(email="old@example.org") == []
    with pytest.raises(Exception, match="409"):
        emulator.admin.edit_contact(a, {"first_name": "Z", "email_address": {"address": "taken@example.org"}})
    assert "first_name" not in emulator.admin.get_contact(a)
