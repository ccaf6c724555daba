"""The sync console's endpoints with Airflow's own auth (SimpleAuthManager, real JWTs), on a world
after a real sync run: anonymous 401, no role 403, a viewer reads but may not decide, a decision
is stored with the Airflow user who made it, and nothing outside the mapping's fields is accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cc_sync.console.app import create_app
from cc_sync.member_db.bookkeeping import Decision, DecisionStatus
from tests.dags.conftest import SyncWorld

pytestmark = pytest.mark.slow


@pytest.fixture
def near(world_factory: Any, sqlite_url: str) -> SyncWorld:
    return world_factory(sqlite_url, synced=True, renamed_share=0.2)


@pytest.fixture
def client(near: SyncWorld, airflow_db: Any) -> Iterator[TestClient]:
    from airflow.api_fastapi.app import init_auth_manager

    init_auth_manager()
    outer = FastAPI()
    outer.mount("/cc-sync", create_app())
    with TestClient(outer, base_url="http://testserver") as test_client:
        yield test_client


def _token(role: str | None, name: str) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=name, role=role))
    return {"Authorization": f"Bearer {jwt}"}


ADMIN = ("admin", "alice")


def test_anonymous_gets_401_and_a_user_without_access_403(client: TestClient) -> None:
    for path in ("/cc-sync/", "/cc-sync/reviews", "/cc-sync/person?q=1"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=_token(None, "nobody")).status_code == 403
    assert client.post("/cc-sync/reviews/1/decision", data={"decision": "dismiss"}).status_code == 401


def test_status_page_shows_runs_quota_reviews_and_plots(client: TestClient, near: SyncWorld) -> None:
    page = client.get("/cc-sync/", headers=_token("viewer", "vera"))
    assert page.status_code == 200
    html = page.text
    assert near.runs[-1]["run_id"] in html
    assert html.count("<svg") == 2
    assert "near_match" in html
    assert 'id="calls-used"' in html  # today's calls against the budget, from the hook's shared state


def test_a_viewer_may_not_decide_an_editor_decision_is_recorded_with_the_user(
    client: TestClient, near: SyncWorld, caplog: pytest.LogCaptureFixture
) -> None:
    item = near.reviews("near_match").iloc[0]
    path = f"/cc-sync/reviews/{item['id']}/decision"
    body = {"decision": "link", "why": "same person, nickname"}
    assert client.post(path, data=body, headers=_token("viewer", "vera")).status_code == 403

    caplog.set_level(logging.DEBUG)
    answer = client.post(path, data=body, headers=_token("user", "uma"), follow_redirects=False)

    assert answer.status_code == 303
    pending = near.bookkeeping.pending_decisions()
    assert len(pending) == 1
    decision = pending[0]
    assert decision["decided_by"] == "uma"
    assert decision["decision"] == Decision.LINK
    assert decision["why"] == "same person, nickname"
    assert decision["status"] == DecisionStatus.PENDING
    assert decision["member_id"] == item["member_id"]
    # The item page shows it; no full email reached the log.
    page = client.get(f"/cc-sync/reviews/{item['id']}", headers=_token("viewer", "vera"))
    assert "Pending decision" in page.text
    assert "@" not in caplog.text


def test_only_the_mappings_fields_are_accepted(client: TestClient, near: SyncWorld) -> None:
    item = near.reviews("near_match").iloc[0]
    path = f"/cc-sync/reviews/{item['id']}/decision"
    editor = _token("user", "uma")
    for field in ("password; DROP TABLE members", "member_id", "row_version"):
        body = {"decision": "take_member", "field": field}
        assert client.post(path, data=body, headers=editor).status_code == 422
    assert client.post(path, data={"decision": "sql"}, headers=editor).status_code == 422
    assert near.bookkeeping.pending_decisions() == []


def test_a_cross_site_form_post_is_refused(client: TestClient, near: SyncWorld) -> None:
    item = near.reviews("near_match").iloc[0]
    headers = {**_token("user", "uma"), "Origin": "https://evil.example"}
    answer = client.post(
        f"/cc-sync/reviews/{item['id']}/decision", data={"decision": "dismiss"}, headers=headers
    )
    assert answer.status_code == 403
    assert near.bookkeeping.pending_decisions() == []


def test_review_queue_filters_and_person_page(client: TestClient, near: SyncWorld) -> None:
    viewer = _token("viewer", "vera")
    queue = client.get("/cc-sync/reviews?kind=near_match", headers=viewer)
    assert queue.status_code == 200
    total = int(queue.text.split('<span id="total">')[1].split("<")[0])
    assert total == len(near.reviews("near_match"))
    old = client.get("/cc-sync/reviews?min_age_days=1", headers=viewer)
    assert '<span id="total">0</span>' in old.text

    member_id = near.linked_member_ids()[0]
    person = client.get(f"/cc-sync/person?q={member_id}", headers=viewer)
    assert person.status_code == 200
    assert "linked (name_email)" in person.text
    email = near.member(member_id)["email"]
    by_email = client.get("/cc-sync/person", params={"q": email}, headers=viewer)
    assert f"Member {member_id}" in by_email.text


def test_a_runs_api_log_downloads_as_csv_without_tokens_or_emails(
    client: TestClient, near: SyncWorld
) -> None:
    run = near.runs[-1]
    path = f"/cc-sync/runs/{run['run_id']}/api-log.csv"
    assert client.get(path).status_code == 401

    answer = client.get(path, headers=_token("viewer", "vera"))

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.strip().splitlines()
    assert lines[0] == "at,task_id,method,path,status,duration_ms"
    assert len(lines) - 1 == run["api_calls"]  # every call the run counted, one row each
    assert any(",GET,/v3/contacts," in line for line in lines)
    assert "@" not in answer.text
    assert "Bearer" not in answer.text
    assert "?" not in answer.text
