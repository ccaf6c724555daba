"""The package's connection types as Airflow builds their forms (provider metadata, no hook import),
and the plugin's fix for Airflow 3.3.2's Test button (the port 0 its connection list sends)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cc_sync_console import CONNECTION_TEST_PATH, ConnectionTestWithoutPort
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def providers() -> Any:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    manager.initialize_providers_hooks()
    return manager


def test_the_constant_contact_form_has_its_own_fields(providers: Any) -> None:
    behaviour = providers.field_behaviours["constant_contact"]
    assert set(behaviour["hidden_fields"]) == {"schema", "port"}
    assert behaviour["relabeling"] == {
        "host": "API base URL",
        "login": "API key (client id)",
        "password": "Client secret",
    }
    assert behaviour["placeholders"]["host"] == "https://api.cc.email"
    widgets = providers.connection_form_widgets
    labels = {
        name.removeprefix("extra__constant_contact__"): w.field["schema"]["title"]
        for name, w in widgets.items()
        if name.startswith("extra__constant_contact__")
    }
    assert labels == {
        "refresh_token": "Refresh token",
        "token_url": "Token URL",
        "state_db_uri": "State database",
        "requests_per_second": "Requests per second",
        "daily_budget": "Daily budget",
        "budget_reserve": "Reserve",
    }
    assert widgets["extra__constant_contact__refresh_token"].is_sensitive
    assert widgets["extra__constant_contact__daily_budget"].field["value"] == 10_000


def test_the_member_database_form_has_a_url_and_a_mapping(providers: Any) -> None:
    behaviour = providers.field_behaviours["member_database"]
    assert set(behaviour["hidden_fields"]) == {"host", "schema", "login", "password", "port"}
    widgets = providers.connection_form_widgets
    assert widgets["extra__member_database__sqlalchemy_url"].field["schema"]["title"] == "SQLAlchemy URL"
    assert widgets["extra__member_database__sqlalchemy_url"].is_sensitive  # it can hold a password
    assert widgets["extra__member_database__mapping_path"].field["schema"]["title"] == "Mapping file"
    hook = providers.hooks["member_database"]
    assert hook.hook_class_name == "cc_sync.member_db.hook.MemberDatabaseHook"
    assert hook.hook_name == "Member database"


def _echo_app() -> Any:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(
            {"body": json.loads(await request.body()), "length": request.headers["content-length"]}
        )

    routes = [
        Route(CONNECTION_TEST_PATH, echo, methods=["POST"]),
        Route("/api/v2/other", echo, methods=["POST"]),
    ]
    return ConnectionTestWithoutPort(Starlette(routes=routes))


def test_the_test_request_loses_the_port_0_of_a_connection_without_a_port() -> None:
    client = TestClient(_echo_app())
    sent = {"connection_id": "member_db_default", "conn_type": "member_database", "port": 0, "host": ""}

    answer = client.post(CONNECTION_TEST_PATH, json=sent).json()

    assert answer["body"] == {k: v for k, v in sent.items() if k != "port"}
    assert int(answer["length"]) == len(json.dumps(answer["body"]))


def test_a_real_port_and_other_requests_pass_untouched() -> None:
    client = TestClient(_echo_app())
    with_port = {"connection_id": "pg", "port": 5432}
    assert client.post(CONNECTION_TEST_PATH, json=with_port).json()["body"] == with_port
    assert client.post("/api/v2/other", json={"port": 0}).json()["body"] == {"port": 0}
