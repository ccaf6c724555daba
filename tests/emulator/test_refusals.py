"""The emulator refuses what Constant Contact refuses (issue 16), over real HTTP.

Each request below once got a 500, was stored and echoed back outside the response schema, or was
accepted though the spec forbids it. Now each is a 400 in CC's error array, unknown paths and
methods answer in that shape too, access tokens are JWTs, and the request log keeps bodies with
tokens redacted. The contract suite (tests/contract) fuzzes the same ground at scale.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
import requests

from include.cc_emulator.auth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from include.cc_emulator.testing import EmulatorHandle
from tests.emulator.conftest import ApiClient


def _is_cc_error(response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body, list)
    assert {"error_key", "error_message"} <= set(body[0])


@pytest.fixture
def contact_id(api: ApiClient) -> str:
    response = api.post(
        "/contacts", json={"email_address": {"address": "ann@example.org"}, "create_source": "Account"}
    )
    assert response.status_code == 201, response.text
    return response.json()["contact_id"]


@pytest.mark.parametrize(
    "extra",
    [
        {"notes": [0]},
        {"phone_numbers": [0]},
        {"street_addresses": ["x"]},
        {"custom_fields": [1]},
        {"list_memberships": [{}]},
        {"notes": [{"content": {}}]},
        {"notes": [{"note_id": "", "content": "x"}]},
        {"notes": [{"created_at": "", "content": "x"}]},
        {"notes": [{"content": "x" * 2001}]},
        {"taggings": [{}]},
        {"first_name": None},
    ],
)
def test_put_with_a_malformed_item_is_a_400(api: ApiClient, contact_id: str, extra: dict[str, Any]) -> None:
    body = {"email_address": {"address": "ann@example.org"}, "update_source": "Account", **extra}
    _is_cc_error(api.put(f"/contacts/{contact_id}", json=body), 400)


@pytest.mark.parametrize(
    "extra",
    [
        {"phone_numbers": [0]},
        {"list_memberships": [[1]]},
        {"custom_fields": [{"custom_field_id": []}]},
    ],
)
def test_post_with_a_malformed_item_is_a_400(api: ApiClient, extra: dict[str, Any]) -> None:
    body = {"email_address": {"address": "bob@example.org"}, "create_source": "Account", **extra}
    _is_cc_error(api.post("/contacts", json=body), 400)


def test_sign_up_form_with_a_malformed_list_is_a_400(api: ApiClient) -> None:
    body = {"email_address": "cat@example.org", "list_memberships": [{}]}
    _is_cc_error(api.post("/contacts/sign_up_form", json=body), 400)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/contact_lists", {"name": "Numbers", "description": 7}),
        ("/contact_lists", {"name": "Fave", "favorite": "string"}),
        ("/contact_custom_fields", {"label": "Shoe size", "type": "string", "version": {}}),
    ],
)
def test_wrong_types_are_refused_not_stored(
    api: ApiClient, emulator: EmulatorHandle, path: str, body: dict[str, Any]
) -> None:
    _is_cc_error(api.post(path, json=body), 400)
    assert emulator.admin.all_lists() == []


def test_a_note_sent_without_id_or_time_is_stored_with_both(api: ApiClient, contact_id: str) -> None:
    body = {
        "email_address": {"address": "ann@example.org"},
        "update_source": "Account",
        "notes": [{"content": "met at the AGM"}],
    }
    response = api.put(f"/contacts/{contact_id}", json=body)
    assert response.status_code == 200, response.text
    [note] = api.get(f"/contacts/{contact_id}", params={"include": "notes"}).json()["notes"]
    assert note["content"] == "met at the AGM"
    assert note["note_id"]
    assert note["created_at"].endswith("Z")


@pytest.mark.parametrize(
    "query",
    [
        "updated_before=",
        "include=",
        "updated_after=2026-01-03",
        "limit=0",
        "include_count=1",
        "status=everyone",
    ],
)
def test_lax_query_values_are_refused(api: ApiClient, query: str) -> None:
    _is_cc_error(api.get(f"/contacts?{query}"), 400)


def test_unknown_paths_and_methods_answer_in_cc_error_shape(api: ApiClient) -> None:
    _is_cc_error(api.get("/no_such_thing"), 404)
    _is_cc_error(api.request("PATCH", "/contact_lists"), 405)


def test_list_delete_is_served_not_shadowed_by_the_activity_path(
    api: ApiClient, emulator: EmulatorHandle
) -> None:
    list_id = emulator.admin.create_list("Old list")
    response = api.post("/activities/list_delete", json={"list_ids": [list_id]})
    assert response.status_code == 201, response.text
    activity = api.wait_for_activity(response.json()["activity_id"])
    assert activity["state"] == "completed"
    assert api.get(f"/contact_lists/{list_id}").json()["deleted_at"]


def test_access_tokens_are_jwts_with_cc_claims_and_still_work(emulator: EmulatorHandle) -> None:
    answer = requests.post(
        emulator.token_url,
        data={"grant_type": "refresh_token", "refresh_token": emulator.admin.current_refresh_token()},
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        timeout=30,
    ).json()
    token = answer["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["cid"] == DEMO_CLIENT_ID
    assert claims["aud"] == "https://api.cc.email/v3"
    assert claims["exp"] - claims["iat"] == answer["expires_in"]
    assert {"contact_data", "campaign_data", "offline_access"} <= set(claims["scp"])
    response = requests.get(
        f"{emulator.base_url}/v3/contact_lists", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200


def test_the_request_log_keeps_bodies_without_tokens(api: ApiClient, emulator: EmulatorHandle) -> None:
    token = emulator.admin.issue_access_token()
    api.post(
        "/contact_lists",
        json={"name": "Logged", "refresh_token": "r-secret", "description": f"see {token}"},
    )
    api.get("/contact_lists")
    post, get = emulator.admin.request_log()[-2:]
    assert post["body"] == {"name": "Logged", "refresh_token": "[redacted]", "description": "see [redacted]"}
    assert get["body"] is None
    assert token not in str(emulator.admin.request_log())


def test_a_body_the_gate_never_read_is_logged_as_unread(api: ApiClient, emulator: EmulatorHandle) -> None:
    # An injected 503 answers before the route reads the body: the log must not claim there was none.
    emulator.admin.set_faults(error_503_rate=1.0)
    api.post("/contact_lists", json={"name": "Refused"})
    emulator.admin.clear_faults()
    assert emulator.admin.request_log()[-1]["body"] == {"_not_recorded": "answered before the body was read"}
