"""What the hook sends is what the official v3 spec declares: paths, methods, query parameters and
body properties. The spec is reference data kept outside the project (../shared); without it these
tests skip (and fail under CI=true: tests/ci.py)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml

from cc_sync.constant_contact.convert import IMPORT_KEYS, merge_contact_for_put
from tests.ci import skip_or_fail

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "constant-contact" / "swagger.yaml"


@pytest.fixture(scope="module")
def spec() -> dict:
    if not SPEC_PATH.exists():
        skip_or_fail(
            f"the official Constant Contact spec is not at {SPEC_PATH} (reference data, not shipped)"
        )
    # The C loader when PyYAML has it: the spec is large.
    return yaml.load(SPEC_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def spec_operation(spec: dict, method: str, path: str) -> dict | None:
    """The spec's operation for a concrete path: ``/v3/activities/1`` -> ``/activities/{activity_id}``."""
    local = path.removeprefix(spec.get("basePath", "/v3"))
    for template, operations in spec["paths"].items():
        pattern = "^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"
        if re.match(pattern, local) and method.lower() in operations:
            return operations[method.lower()]
    return None


def properties(spec: dict, name: str) -> set[str]:
    return set(spec["definitions"][name]["properties"])


def test_every_call_of_a_sync_tour_is_a_declared_operation_with_declared_parameters(emulator, hook, spec):
    ids = emulator.admin.seed_contacts(count=600)
    lst = hook.get_or_create_list("Tour")
    hook.create_custom_field("Tour Field")
    list(hook.iter_contacts(updated_after="2026-01-01T00:00:00Z", lists=[lst.list_id]))
    list(hook.iter_contacts(optout_after="2026-01-01T00:00:00Z", status="all"))
    hook.custom_field_names()
    hook.import_contacts([{"email": "tour@example.org", "first_name": "T"}], [lst.list_id])
    hook.add_list_memberships(ids, [lst.list_id])
    hook.remove_list_memberships(ids[:10], [lst.list_id])
    existing = hook.get_contact(ids[0])
    hook.update_contact(ids[0], merge_contact_for_put(existing, {"opted_out": True}, "Contact"))
    hook.get_account_summary()

    log = emulator.admin.request_log()
    assert log, "the emulator logged no request"
    checked = 0
    for entry in log:
        if not entry["path"].startswith("/v3/"):
            continue
        operation = spec_operation(spec, entry["method"], entry["path"])
        assert operation is not None, f"{entry['method']} {entry['path']} is not in the spec"
        declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        sent = set(parse_qs(entry.get("query") or "", keep_blank_values=True))
        assert sent <= declared | {"cursor"}, f"{entry['endpoint']}: undeclared query {sent - declared}"
        checked += 1
    assert checked >= 10
    assert emulator.admin.counters()["sign_up_form_calls"] == 0


def test_import_keys_are_json_import_contact_properties(spec):
    assert set(IMPORT_KEYS.values()) <= properties(spec, "JsonImportContact")


def test_put_bodies_use_only_put_properties(spec):
    existing = {
        "contact_id": "c",
        "email_address": {"address": "a@example.org", "permission_to_send": "implicit", "opt_out_reason": ""},
        "first_name": "A",
        "anniversary": "2020-01-01",
        "phone_numbers": [{"phone_number_id": "p", "phone_number": "1", "kind": "home", "created_at": "x"}],
        "street_addresses": [{"street_address_id": "s", "kind": "home", "street": "1 Rd", "updated_at": "x"}],
        "custom_fields": [{"custom_field_id": "f", "value": "v"}],
        "list_memberships": ["l"],
        "taggings": ["t"],
        "created_at": "x",
        "updated_at": "x",
    }
    body = merge_contact_for_put(
        existing,
        {"opted_out": True, "city": "C", "phone_work": "2", "cf:x": "y"},
        "Account",
        custom_field_ids={"x": "f2"},
        opt_out_reason="asked",
    )
    assert set(body) <= properties(spec, "ContactPutRequest")
    assert set(body["email_address"]) <= properties(spec, "EmailAddressPut")
    for phone in body["phone_numbers"]:
        assert set(phone) <= properties(spec, "PhoneNumberPut")
    for address in body["street_addresses"]:
        assert set(address) <= properties(spec, "StreetAddressPut")
    for field in body["custom_fields"]:
        assert set(field) <= properties(spec, "ContactCustomField")
