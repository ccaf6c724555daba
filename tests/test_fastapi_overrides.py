"""The test-only memo of FastAPI's per-request dependency rebuild (tests/fastapi_overrides.py)
changes no answer: overrides apply, a swapped or removed override applies from the next request,
parameters are still validated and dependencies still run on every request; only the rebuild is
saved."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.dependencies import utils
from fastapi.testclient import TestClient

from tests import fastapi_overrides

runs: list[str] = []


def account(account_id: Annotated[str, Query()]) -> str:
    runs.append(account_id)
    return f"real:{account_id}"


def allowed() -> str:
    return "real-check"


def always_allowed() -> str:
    return "bypassed"


def always_allowed_too() -> str:
    return "bypassed-too"


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/whoami")
    def whoami(
        who: Annotated[str, Depends(account)], check: Annotated[str, Depends(allowed)]
    ) -> dict[str, str]:
        return {"who": who, "check": check}

    return app


@pytest.fixture
def app() -> FastAPI:
    runs.clear()
    return _app()


def _get(client: TestClient, account_id: str | None) -> dict[str, str] | int:
    response = client.get("/whoami", params={} if account_id is None else {"account_id": account_id})
    return response.json() if response.status_code == 200 else response.status_code


def test_the_memo_is_what_fastapi_solves_with_in_the_tests() -> None:
    assert utils.get_dependant is fastapi_overrides._get_dependant


def test_overrides_apply_and_follow_every_change(app: FastAPI) -> None:
    client = TestClient(app)
    assert _get(client, "a1") == {"who": "real:a1", "check": "real-check"}
    app.dependency_overrides[allowed] = always_allowed
    assert _get(client, "a2") == {"who": "real:a2", "check": "bypassed"}
    assert _get(client, "a3") == {"who": "real:a3", "check": "bypassed"}
    app.dependency_overrides[allowed] = always_allowed_too
    assert _get(client, "a4") == {"who": "real:a4", "check": "bypassed-too"}
    app.dependency_overrides.clear()
    assert _get(client, "a5") == {"who": "real:a5", "check": "real-check"}
    # The dependency ran on every request, its parameter read from each one.
    assert runs == ["a1", "a2", "a3", "a4", "a5"]


def test_parameters_are_still_validated_on_every_request(app: FastAPI) -> None:
    app.dependency_overrides[allowed] = always_allowed
    client = TestClient(app)
    assert _get(client, "a1") == {"who": "real:a1", "check": "bypassed"}
    assert _get(client, None) == 422
    assert _get(client, "a2") == {"who": "real:a2", "check": "bypassed"}
    assert _get(client, None) == 422


def test_only_the_first_request_rebuilds_the_dependencies(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []

    def counting_build(**kwargs: object) -> object:
        built.append(kwargs["call"])
        return real_build(**kwargs)

    real_build = fastapi_overrides._build
    monkeypatch.setattr(fastapi_overrides, "_build", counting_build)
    monkeypatch.setattr(fastapi_overrides, "_kept", type(fastapi_overrides._kept)())
    app.dependency_overrides[allowed] = always_allowed
    client = TestClient(app)
    for n in range(3):
        assert _get(client, f"a{n}") == {"who": f"real:a{n}", "check": "bypassed"}
    # FastAPI alone rebuilds both dependencies on each of the three requests (six builds).
    assert sorted(c.__name__ for c in built) == ["account", "always_allowed"]
