"""The OAuth token endpoint: rotating refresh tokens, client authentication, access-token expiry."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from include.cc_emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN
from include.cc_emulator.testing import EmulatorHandle


def _refresh(
    emulator: EmulatorHandle, refresh_token: str, auth: tuple[str, str] | None = None
) -> requests.Response:
    return requests.post(
        emulator.token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=auth or (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        timeout=10,
    )


def _contacts(emulator: EmulatorHandle, access_token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return requests.get(f"{emulator.api_url}/contacts", headers=headers, timeout=10)


def test_refresh_tokens_rotate_and_a_used_one_is_invalid_grant(emulator: EmulatorHandle) -> None:
    first = _refresh(emulator, DEMO_REFRESH_TOKEN)
    assert first.status_code == 200
    body = first.json()
    assert set(body) >= {"access_token", "refresh_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 24 * 3600
    assert body["refresh_token"] != DEMO_REFRESH_TOKEN
    assert _contacts(emulator, body["access_token"]).status_code == 200

    reused = _refresh(emulator, DEMO_REFRESH_TOKEN)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"

    second = _refresh(emulator, body["refresh_token"])
    assert second.status_code == 200
    assert _refresh(emulator, body["refresh_token"]).json()["error"] == "invalid_grant"
    assert emulator.admin.current_refresh_token() == second.json()["refresh_token"]
    assert emulator.admin.counters()["token_refreshes"] == 2


@pytest.mark.parametrize(
    ("auth", "form", "status", "error"),
    [
        (("demo-client-id", "wrong"), {"grant_type": "refresh_token"}, 401, "invalid_client"),
        (("someone-else", "demo-client-secret"), {"grant_type": "refresh_token"}, 401, "invalid_client"),
        (None, {"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
        (None, {"grant_type": "refresh_token", "refresh_token": ""}, 400, "invalid_request"),
    ],
)
def test_token_endpoint_errors(
    emulator: EmulatorHandle, auth: tuple[str, str] | None, form: dict, status: int, error: str
) -> None:
    form = {"refresh_token": DEMO_REFRESH_TOKEN, **form}
    response = requests.post(emulator.token_url, data=form, auth=auth or (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    assert response.status_code == status
    assert response.json()["error"] == error
    assert DEMO_CLIENT_SECRET not in response.text
    # A refused request must not have used up the refresh token.
    assert _refresh(emulator, DEMO_REFRESH_TOKEN).status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic abc"])
def test_missing_or_unknown_bearer_token_is_401_object(emulator: EmulatorHandle, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = requests.get(f"{emulator.api_url}/contacts", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"error_key": "unauthorized", "error_message": "Unauthorized"}


def test_access_token_expires_after_its_lifetime(emulator: EmulatorHandle) -> None:
    emulator.admin.configure(access_token_ttl_seconds=0.5)
    body = _refresh(emulator, DEMO_REFRESH_TOKEN).json()
    assert body["expires_in"] == 0  # whole seconds, as the real endpoint answers
    assert _contacts(emulator, body["access_token"]).status_code == 200
    time.sleep(0.6)
    assert _contacts(emulator, body["access_token"]).status_code == 401


def test_expire_access_tokens_admin_path(emulator: EmulatorHandle) -> None:
    token = _refresh(emulator, DEMO_REFRESH_TOKEN).json()["access_token"]
    emulator.admin.expire_access_tokens()
    assert _contacts(emulator, token).status_code == 401
    assert emulator.admin.counters()["unauthorized"] == 1


def test_reset_accepts_the_demo_refresh_token_again(emulator: EmulatorHandle) -> None:
    assert _refresh(emulator, DEMO_REFRESH_TOKEN).status_code == 200
    emulator.admin.reset(rate_limit_per_second=None, daily_quota=None)
    assert _refresh(emulator, DEMO_REFRESH_TOKEN).status_code == 200


def test_lost_refresh_answer_leaves_the_old_token_used_up(emulator: EmulatorHandle) -> None:
    emulator.admin.set_faults(token_lost_answer_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        _refresh(emulator, DEMO_REFRESH_TOKEN)
    emulator.admin.clear_faults()
    assert _refresh(emulator, DEMO_REFRESH_TOKEN).json()["error"] == "invalid_grant"
    assert _refresh(emulator, emulator.admin.current_refresh_token()).status_code == 200
    assert emulator.admin.counters()["faults"] == {"token_lost_answer": 1}


def _authorize(
    emulator: EmulatorHandle, challenge: str | None, redirect_uri: str = "https://localhost"
) -> str:
    params = {
        "client_id": DEMO_CLIENT_ID,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "state": "S1",
    }
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    response = requests.get(emulator.authorize_url, params=params, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["state"] == ["S1"]
    return query["code"][0]


def _exchange(
    emulator: EmulatorHandle, code: str, verifier: str | None, secret: str | None
) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://localhost"}
    if verifier:
        form["code_verifier"] = verifier
    auth = (DEMO_CLIENT_ID, secret) if secret else None
    if auth is None:
        form["client_id"] = DEMO_CLIENT_ID
    return requests.post(emulator.token_url, data=form, auth=auth, timeout=10)


@pytest.mark.parametrize("secret", [None, DEMO_CLIENT_SECRET])
def test_authorization_code_with_pkce_gives_new_tokens_and_expires_old_refresh_tokens(
    emulator: EmulatorHandle, secret: str | None
) -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
    code = _authorize(emulator, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    answer = _exchange(emulator, code, verifier, secret)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert _contacts(emulator, tokens["access_token"]).status_code == 200
    assert _refresh(emulator, DEMO_REFRESH_TOKEN).json()["error"] == "invalid_grant"
    assert _refresh(emulator, tokens["refresh_token"]).status_code == 200
    assert _exchange(emulator, code, verifier, secret).json()["error"] == "invalid_grant"  # single use


@pytest.mark.parametrize(
    ("verifier", "redirect_uri", "error"),
    [
        ("wrong-verifier-wrong-verifier-wrong-verifier-00", "https://localhost", "invalid_grant"),
        (None, "https://localhost", "invalid_grant"),
        ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "https://elsewhere", "invalid_grant"),
    ],
)
def test_bad_code_exchanges_are_refused(
    emulator: EmulatorHandle, verifier: str | None, redirect_uri: str, error: str
) -> None:
    code = _authorize(emulator, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", redirect_uri)
    answer = _exchange(emulator, code, verifier, None)
    assert answer.status_code == 400
    assert answer.json()["error"] == error
    assert _refresh(emulator, DEMO_REFRESH_TOKEN).status_code == 200  # nothing was rotated


def test_a_made_up_code_is_invalid_grant(emulator: EmulatorHandle) -> None:
    assert _exchange(emulator, "code", "v" * 43, DEMO_CLIENT_SECRET).json()["error"] == "invalid_grant"
