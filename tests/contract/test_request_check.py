"""The check every DAG scenario's requests go through (tests/spec_requests.py, tests/world.py) catches
a client that drifts from the v3 spec: here fed requests sent over real HTTP to the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from include.cc_emulator.testing import EmulatorHandle
from tests.ci import skip_or_fail
from tests.emulator.conftest import ApiClient
from tests.spec_requests import SPEC_PATH, load_spec, log_problems, request_problems
from tests.world import check_requests_against_spec


@pytest.fixture(autouse=True)
def _spec() -> None:
    if load_spec() is None:
        skip_or_fail(f"the official Constant Contact spec is not at {SPEC_PATH} (reference data)")


def _entry(method: str, path: str, query: str = "", body: Any = None) -> dict[str, Any]:
    return {"method": method, "path": path, "query": query, "body": body}


CONTACT = "/v3/contacts/4f1e7b0a-0000-4000-8000-000000000001"


def test_requests_as_the_spec_declares_them_pass() -> None:
    assert not request_problems(_entry("GET", "/v3/contacts", "status=all&include=notes&limit=500"))
    assert not request_problems(_entry("GET", "/v3/contacts", "cursor=abc"))
    put = {"email_address": {"address": "a@example.org"}, "update_source": "Account"}
    assert not request_problems(_entry("PUT", CONTACT, body=put))
    assert not request_problems(
        _entry(
            "POST",
            "/v3/activities/list_delete",
            body={"list_ids": ["4f1e7b0a-0000-4000-8000-000000000002"]},
        )
    )


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (_entry("GET", "/v3/contacts", "updated_after=yesterday"), "date-time"),
        (_entry("GET", "/v3/contacts", "include=everything"), "not one of"),
        (_entry("GET", "/v3/contacts", "since=2026-01-01T00:00:00Z"), "not in the spec"),
        (_entry("GET", "/v3/contacts", "limit=501"), "above 500"),
        (_entry("PUT", CONTACT, body={"email_address": {"address": "a@example.org"}}), "update_source"),
        (_entry("PUT", CONTACT, body={"update_source": "Account", "first_name": None}), "None is not"),
        (_entry("POST", "/v3/contact_lists"), "needs a body"),
        (_entry("GET", "/v3/contact_lists", body={"name": "x"}), "does not take"),
        (_entry("PATCH", "/v3/contacts"), "no such operation"),
    ],
)
def test_a_drifting_request_is_reported(entry: dict[str, Any], problem: str) -> None:
    problems = request_problems(entry)
    assert problems
    assert problem in problems[0], problems


def test_a_scenario_whose_client_drifts_fails(api: ApiClient, emulator: EmulatorHandle) -> None:
    api.get("/contacts", params={"limit": 10})
    check_requests_against_spec(emulator)  # all well so far
    # What a hook bug would send: a parameter the real API does not have (the emulator ignores it).
    api.get("/contacts", params={"modified_since": "2026-01-01"})
    problems = log_problems(emulator.admin.request_log())
    assert any("modified_since" in p for p in problems), problems
    with pytest.raises(pytest.fail.Exception, match="modified_since"):
        check_requests_against_spec(emulator)
