"""The emulator against the official Constant Contact v3 spec (Swagger 2.0).

Two checks: every path and method the emulator serves under /v3 exists in the spec with the same
path and query parameters; and the answers the emulator gives in a scenario that calls each of those
endpoints match the spec's response schemas (``#/definitions`` refs resolved, date-time and uuid
formats checked), with status codes the spec documents and CC's error shapes. The requests the
scenario sends are validated against the spec's body schemas too, so the scenario speaks real v3.

The spec is reference data kept outside the project (its licence is "Private"); it is read from
``<project>/../shared/constant-contact/swagger.yaml`` and the module is skipped when it is absent
(under ``CI=true`` it fails: tests/ci.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from fastapi.routing import APIRoute
from jsonschema import Draft4Validator, FormatChecker

from include.cc_emulator import create_app
from include.cc_emulator.testing import EmulatorHandle
from tests.ci import skip_or_fail
from tests.fixtures_emulator import EMULATOR_TEST_DEFAULTS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = PROJECT_ROOT.parent / "shared" / "constant-contact" / "swagger.yaml"

if not SPEC_PATH.exists():
    skip_or_fail(
        f"the official Constant Contact spec is not at {SPEC_PATH} (it is reference data kept outside the "
        "project; put swagger.yaml there to run the conformance tests)",
        allow_module_level=True,
    )

# Query parameters the emulator reads that the spec does not list, and why.
UNDOCUMENTED_QUERY_PARAMETERS = {
    # The real API pages with an opaque `cursor` in `_links.next.href` (e.g. /v3/contact_tags
    # description: "/v3/contact_tags?limit=1&cursor=..."), without listing it as a parameter.
    ("get", "/contacts"): {"cursor"},
    ("get", "/emails"): {"cursor"},
    ("get", "/contact_tags"): {"cursor"},
    **{
        ("get", f"/reports/email_reports/{{campaign_activity_id}}/tracking/{kind}"): {"cursor"}
        for kind in ("sends", "opens", "clicks", "bounces", "optouts")
    },
}
# 429s come from the gateway for every endpoint (rate_limits.html), not only where the spec lists them.
STATUSES_ANY_ENDPOINT = {401, 429}

_formats = FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(datetime.fromisoformat(value.replace("Z", "+00:00")))


@_formats.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _validator(spec: dict[str, Any], schema: dict[str, Any]) -> Draft4Validator:
    return Draft4Validator({**schema, "definitions": spec["definitions"]}, format_checker=_formats)


def _without_zero_max_items(node: Any) -> Any:
    """The spec's ``ListActivityRemoveContacts`` says ``maxItems: 0`` on arrays the endpoint needs
    filled (its description: "up to 500 contact_ids"); read 0 as "no stated limit" for requests."""
    if isinstance(node, dict):
        return {k: _without_zero_max_items(v) for k, v in node.items() if not (k == "maxItems" and v == 0)}
    if isinstance(node, list):
        return [_without_zero_max_items(v) for v in node]
    return node


@pytest.fixture(scope="module")
def request_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return {"definitions": _without_zero_max_items(spec["definitions"])}


def _served_v3_routes() -> list[tuple[str, str, APIRoute]]:
    app = create_app()
    served = []
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path.startswith("/v3/"):
            for method in sorted(route.methods):
                served.append((method.lower(), route.path[len("/v3") :], route))
    return served


SERVED = _served_v3_routes()
SERVED_IDS = [f"{method.upper()} {path}" for method, path, _ in SERVED]


@pytest.mark.parametrize(("method", "path", "route"), SERVED, ids=SERVED_IDS)
def test_served_operation_exists_in_the_spec_with_its_parameters(
    spec: dict[str, Any], method: str, path: str, route: APIRoute
) -> None:
    assert path in spec["paths"], f"{path} is not a path of the v3 spec"
    operation = spec["paths"][path].get(method)
    assert operation is not None, f"the spec has no {method.upper()} {path}"
    parameters = operation.get("parameters", [])
    spec_query = {p["name"] for p in parameters if p["in"] == "query"}
    spec_path = {p["name"] for p in parameters if p["in"] == "path"}
    served_query = {p.alias for p in route.dependant.query_params}
    served_path = {p.alias for p in route.dependant.path_params}
    assert served_path == spec_path
    extra = served_query - spec_query - UNDOCUMENTED_QUERY_PARAMETERS.get((method, path), set())
    assert not extra, f"{method.upper()} {path} reads query parameters the spec does not have: {extra}"
    body_params = [p for p in parameters if p["in"] == "body"]
    if body_params:
        assert method in ("post", "put"), "a body on a method that should not have one"


# --------------------------------------------------------------------------------------------------
# The scenario: one call (or more) of every served endpoint, recorded for the schema checks below.


@dataclass
class Exchange:
    method: str
    path: str  # the spec's path template, e.g. /contacts/{contact_id}
    status: int
    body: Any
    request_body: Any = None


class Recorder:
    def __init__(self, emulator: EmulatorHandle) -> None:
        self.emulator = emulator
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {emulator.admin.issue_access_token()}"
        self.exchanges: list[Exchange] = []

    def call(
        self,
        method: str,
        template: str,
        *,
        ids: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        url: str | None = None,
    ) -> Any:
        target = url or self.emulator.api_url + template.format(**(ids or {}))
        response = self.session.request(method, target, params=params, json=json, timeout=60)
        if not response.content:
            body = None
        elif "json" in response.headers.get("content-type", ""):
            body = response.json()
        else:  # a file (an export's CSV)
            body = response.text
        self.exchanges.append(Exchange(method.lower(), template, response.status_code, body, json))
        return body

    def wait(self, activity_id: str) -> None:
        for _ in range(500):
            body = self.call("GET", "/activities/{activity_id}", ids={"activity_id": activity_id})
            if body["state"] not in ("initialized", "processing"):
                return
        raise AssertionError(f"activity {activity_id} did not finish")


def _run_scenario(emulator: EmulatorHandle) -> list[Exchange]:
    emulator.admin.reset(**EMULATOR_TEST_DEFAULTS)
    r = Recorder(emulator)
    every = "custom_fields,list_memberships,phone_numbers,street_addresses,taggings,notes"
    # lists and custom fields
    members = r.call("POST", "/contact_lists", json={"name": "Members", "favorite": False})["list_id"]
    extra = r.call("POST", "/contact_lists", json={"name": "Extra"})["list_id"]
    r.call("POST", "/contact_lists", json={"name": "Members"})  # 409
    r.call("GET", "/contact_lists", params={"include_count": "true", "include_membership_count": "all"})
    r.call(
        "GET",
        "/contact_lists/{list_id}",
        ids={"list_id": members},
        params={"include_membership_count": "active"},
    )
    r.call(
        "PUT",
        "/contact_lists/{list_id}",
        ids={"list_id": extra},
        json={"name": "Extra list", "favorite": True},
    )
    field_id = r.call("POST", "/contact_custom_fields", json={"label": "Member number", "type": "string"})[
        "custom_field_id"
    ]
    r.call("GET", "/contact_custom_fields")
    r.call("GET", "/contact_custom_fields/{custom_field_id}", ids={"custom_field_id": field_id})
    r.call(
        "PUT",
        "/contact_custom_fields/{custom_field_id}",
        ids={"custom_field_id": field_id},
        json={"label": "No."},
    )
    # contacts
    contact = r.call(
        "POST",
        "/contacts",
        json={
            "email_address": {"address": "ada@example.org", "permission_to_send": "implicit"},
            "first_name": "Ada",
            "last_name": "Lovelace",
            "create_source": "Account",
            "birthday_month": 12,
            "birthday_day": 10,
            "phone_numbers": [{"phone_number": "555-0101", "kind": "home"}],
            "street_addresses": [{"kind": "home", "street": "1 Analytical Way", "city": "London"}],
            "custom_fields": [{"custom_field_id": field_id, "value": "A-1"}],
            "list_memberships": [members],
        },
    )
    cid = contact["contact_id"]
    r.call(
        "POST",
        "/contacts",
        json={"email_address": {"address": "ada@example.org"}, "create_source": "Account"},
    )
    r.call(
        "POST", "/contacts", json={"email_address": {"address": "broken"}, "create_source": "Account"}
    )  # 400
    emulator.admin.seed_contacts(count=7, list_ids=[members])
    page = r.call("GET", "/contacts", params={"limit": 3, "include": every, "include_count": "true"})
    r.call("GET", "/contacts", url=emulator.base_url + page["_links"]["next"]["href"])
    r.call(
        "GET",
        "/contacts",
        params={"status": "all", "updated_after": "2020-01-01T00:00:00Z", "lists": members},
    )
    r.call("GET", "/contacts/{contact_id}", ids={"contact_id": cid}, params={"include": every})
    r.call("GET", "/contacts/{contact_id}", ids={"contact_id": "00000000-0000-0000-0000-000000000000"})  # 404
    r.call(
        "PUT",
        "/contacts/{contact_id}",
        ids={"contact_id": cid},
        json={
            "email_address": {"address": "ada@example.org", "permission_to_send": "unsubscribed"},
            "first_name": "Ada",
            "update_source": "Account",
        },
    )
    r.call("GET", "/contacts", params={"optout_after": "2020-01-01T00:00:00Z", "include": every})
    r.call(
        "POST",
        "/contacts/sign_up_form",
        json={"email_address": "grace@example.org", "first_name": "Grace", "list_memberships": [members]},
    )
    # bulk activities
    imported = r.call(
        "POST",
        "/activities/contacts_json_import",
        json={
            "import_data": [
                {
                    "email": "ida@example.org",
                    "first_name": "Ida",
                    "home_phone": "555-0102",
                    "cf:Member_number": "I-1",
                },
                {"email": "not-an-email"},
            ],
            "list_ids": [members],
        },
    )
    r.wait(imported["activity_id"])
    added = r.call(
        "POST",
        "/activities/add_list_memberships",
        json={"source": {"list_ids": [members]}, "list_ids": [extra]},
    )
    r.wait(added["activity_id"])
    removed = r.call(
        "POST",
        "/activities/remove_list_memberships",
        json={"source": {"all_active_contacts": True}, "list_ids": [extra]},
    )
    r.wait(removed["activity_id"])
    deleted = r.call("POST", "/activities/contact_delete", json={"contact_ids": [cid]})
    r.wait(deleted["activity_id"])
    r.call("GET", "/activities", params={"state": "completed", "limit": 10})
    r.call("DELETE", "/contacts/{contact_id}", ids={"contact_id": page["contacts"][0]["contact_id"]})
    r.call("GET", "/contacts", params={"status": "deleted"})
    list_delete = r.call("DELETE", "/contact_lists/{list_id}", ids={"list_id": extra})
    r.wait(list_delete["activity_id"])
    gone = r.call("POST", "/contact_lists", json={"name": "Gone"})["list_id"]
    lists_deleted = r.call("POST", "/activities/list_delete", json={"list_ids": [gone]})
    r.wait(lists_deleted["activity_id"])
    r.call("DELETE", "/contact_custom_fields/{custom_field_id}", ids={"custom_field_id": field_id})
    r.call("GET", "/account/summary", params={"extra_fields": "physical_address"})
    # campaigns and tracking
    recipients = emulator.admin.seed_contacts(count=4, seed=21)
    campaign = emulator.admin.send_campaign("Conformance news", contact_ids=recipients)
    activity = campaign["campaign_activity_id"]
    emulator.admin.track(
        activity,
        [
            {"type": "open", "contact_id": recipients[0]},
            {"type": "open", "contact_id": recipients[1]},
            {"type": "click", "contact_id": recipients[0], "link_url": "https://example.org/news"},
            {"type": "bounce", "contact_id": recipients[2], "bounce_code": "B"},
            {"type": "optout", "contact_id": recipients[3], "reason": "too many emails"},
        ],
    )
    campaigns = r.call("GET", "/emails", params={"limit": 1, "after_date": "2020-01-01T00:00:00Z"})
    r.call("GET", "/emails", params={"before_date": "2020-01-01T00:00:00Z"})
    r.call("GET", "/emails/{campaign_id}", ids={"campaign_id": campaigns["campaigns"][0]["campaign_id"]})
    r.call("GET", "/emails/{campaign_id}", ids={"campaign_id": "00000000-0000-0000-0000-000000000000"})  # 404
    report = "/reports/email_reports/{campaign_activity_id}/tracking/"
    for kind in ("sends", "opens", "clicks", "bounces", "optouts"):
        page = r.call("GET", report + kind, ids={"campaign_activity_id": activity}, params={"limit": 1})
        href = (page["_links"].get("next") or {}).get("href")
        if href:
            r.call("GET", report + kind, url=emulator.base_url + href)
    r.call("GET", report + "clicks", ids={"campaign_activity_id": activity}, params={"url_id": 1})
    r.call(
        "GET", report + "bounces", ids={"campaign_activity_id": activity}, params={"bounce_code": ["B", "F"]}
    )
    r.call(
        "GET", report + "opens", ids={"campaign_activity_id": "00000000-0000-0000-0000-000000000000"}
    )  # 404
    # contact exports: the activity, its file, an unknown file, a refused body
    export = r.call(
        "POST", "/activities/contact_exports", json={"list_ids": [members], "fields": ["email_address"]}
    )
    r.wait(export["activity_id"])
    done = r.call("GET", "/activities/{activity_id}", ids={"activity_id": export["activity_id"]})
    r.call(
        "GET", "/contact_exports/{file_export_id}", url=emulator.base_url + done["_links"]["results"]["href"]
    )
    r.call("GET", "/contact_exports/{file_export_id}", ids={"file_export_id": "gone"})  # 404
    r.call("POST", "/activities/contact_exports", json={"list_ids": [members], "contact_ids": [cid]})  # 400
    # events: listing, detail, registrations, payment status, check-in
    event = emulator.admin.create_event(
        "Conformance AGM", start="2026-06-01T18:00:00Z", end="2026-06-01T20:00:00Z"
    )
    made = emulator.admin.register(
        event["event_id"],
        [
            {"email": "paid@example.org", "payment_method": "STRIPE", "price": 10.0},
            {"email": "free@example.org", "first_name": "Free"},
        ],
    )
    track = {"event_id": event["event_id"], "track_id": event["track_id"]}
    r.call("GET", "/events", params={"limit": 1, "sort_by": "updated_time", "sort_order": "DESC"})
    r.call("GET", "/events/{event_id}", ids={"event_id": event["event_id"]})
    r.call("GET", "/events/{event_id}", ids={"event_id": "00000000-0000-0000-0000-000000000000"})  # 404
    registrations = "/events/{event_id}/tracks/{track_id}/registrations"
    page = r.call("GET", registrations, ids=track, params={"limit": 1})
    r.call("GET", registrations, ids=track, params={"next": page["next_cursor"]})
    r.call("GET", registrations, ids=track, params={"registration_status": "GONE"})  # 400
    ids = [m["registration_id"] for m in made]
    r.call(
        "PUT",
        registrations + "/payment_status",
        ids=track,
        json={"registration_ids": ids, "payment_status": "PAID"},
    )
    r.call(
        "PUT",
        registrations + "/payment_status",
        ids=track,
        json={"registration_ids": ["no-such-registration"], "payment_status": "PAID"},
    )  # 207
    keys = emulator.admin.ticket_keys(event["event_id"], ids[0])
    r.call(
        "POST",
        "/events/{event_id}/check_in/tickets",
        ids={"event_id": event["event_id"]},
        json={"order_ticket_keys": keys},
    )
    r.call(
        "POST",
        "/events/{event_id}/undo_check_in/tickets",
        ids={"event_id": event["event_id"]},
        json={"order_ticket_keys": keys},
    )
    # tags: CRUD, paging, the bulk tagging activities, a tag's delete activity
    chapter = r.call("POST", "/contact_tags", json={"name": "Chapter: North", "tag_source": "sync"})["tag_id"]
    committee = r.call("POST", "/contact_tags", json={"name": "Committee: Finance"})["tag_id"]
    r.call("POST", "/contact_tags", json={"name": "Chapter: North"})  # 409
    r.call("POST", "/contact_tags", json={"name": "   "})  # 400: a blank name
    tags_page = r.call("GET", "/contact_tags", params={"limit": 1, "include_count": "true"})
    r.call("GET", "/contact_tags", url=emulator.base_url + tags_page["_links"]["next"]["href"])
    r.call("GET", "/contact_tags/{tag_id}", ids={"tag_id": chapter}, params={"include_count": "true"})
    r.call("GET", "/contact_tags/{tag_id}", ids={"tag_id": "00000000-0000-0000-0000-000000000000"})  # 404
    r.call("PUT", "/contact_tags/{tag_id}", ids={"tag_id": committee}, json={"name": "Committee: Budget"})
    r.call("PUT", "/contact_tags/{tag_id}", ids={"tag_id": committee}, json={"name": "Chapter: North"})  # 409
    tagged = r.call(
        "POST",
        "/activities/contacts_taggings_add",
        json={"source": {"list_ids": [members]}, "tag_ids": [chapter, committee]},
    )
    r.wait(tagged["activity_id"])
    untagged = r.call(
        "POST",
        "/activities/contacts_taggings_remove",
        json={"source": {"tag_ids": [committee]}, "tag_ids": [committee]},
    )
    r.wait(untagged["activity_id"])
    r.call(
        "POST",
        "/activities/contacts_taggings_add",
        json={"source": {"contact_ids": [cid]}, "tag_ids": ["00000000-0000-0000-0000-000000000000"]},
    )  # 400
    r.call("GET", "/contacts", params={"include": "taggings", "limit": 5})
    tag_delete = r.call("DELETE", "/contact_tags/{tag_id}", ids={"tag_id": committee})
    r.wait(tag_delete["activity_id"])
    # auth error
    r.session.headers["Authorization"] = "Bearer expired"
    r.call("GET", "/contacts")
    r.session.close()
    return r.exchanges


@pytest.fixture(scope="module")
def exchanges(emulator_server: EmulatorHandle) -> Iterator[list[Exchange]]:
    yield _run_scenario(emulator_server)
    emulator_server.admin.reset(**EMULATOR_TEST_DEFAULTS)


def _success_schema(operation: dict[str, Any], status: int) -> dict[str, Any] | None:
    answer = operation["responses"].get(str(status))
    return answer.get("schema") if answer else None


@pytest.mark.parametrize(("method", "path", "route"), SERVED, ids=SERVED_IDS)
def test_answers_match_the_spec(
    spec: dict[str, Any],
    request_spec: dict[str, Any],
    exchanges: list[Exchange],
    method: str,
    path: str,
    route: APIRoute,
) -> None:
    operation = spec["paths"][path][method]
    mine = [e for e in exchanges if e.method == method and e.path == path]
    assert mine, f"the scenario never called {method.upper()} {path}"
    for exchange in mine:
        where = f"{method.upper()} {path} -> {exchange.status}"
        assert str(exchange.status) in operation["responses"] or exchange.status in STATUSES_ANY_ENDPOINT, (
            f"{where}: status not documented by the spec"
        )
        if exchange.status < 300:
            schema = _success_schema(operation, exchange.status)
            if schema is not None:
                errors = sorted(_validator(spec, schema).iter_errors(exchange.body), key=str)
                assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"
        elif exchange.status in (401, 429):
            _validator(spec, {"$ref": "#/definitions/AuthorizationErrorSchema"}).validate(exchange.body)
            assert isinstance(exchange.body, dict)
        else:
            _validator(spec, {"$ref": "#/definitions/APIErrorSchema"}).validate(exchange.body)
            assert isinstance(exchange.body, list), f"{where}: errors must be an array"
            assert exchange.body, f"{where}: the error array is empty"
        body_parameters = [p for p in operation.get("parameters", []) if p["in"] == "body"]
        if exchange.request_body is not None and body_parameters:
            request_validator = _validator(request_spec, body_parameters[0]["schema"])
            errors = list(request_validator.iter_errors(exchange.request_body))
            assert not errors, f"the scenario's own request to {where} breaks the spec: {errors[0].message}"


def test_scenario_saw_success_and_error_answers(exchanges: list[Exchange]) -> None:
    statuses = {e.status for e in exchanges}
    assert {200, 201, 202, 204, 400, 401, 404, 409} <= statuses
