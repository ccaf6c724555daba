"""The one-off authorization command: PKCE, the authorize URL, reading the pasted answer."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from cc_sync.constant_contact import authorize
from cc_sync.constant_contact.authorize import (
    SCOPES,
    authorization_url,
    code_from_answer,
    exchange_code,
    pkce_challenge,
    pkce_pair,
)


def test_pkce_challenge_matches_the_rfc_7636_example():
    # RFC 7636 appendix B.
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_pkce_pair_is_fresh_and_well_formed():
    (v1, c1), (v2, _) = pkce_pair(), pkce_pair()
    assert v1 != v2
    assert 43 <= len(v1) <= 128
    assert pkce_challenge(v1) == c1


def test_authorization_url_asks_for_offline_access_with_pkce():
    url = authorization_url(
        "my-key", "https://localhost", "CHALLENGE", "STATE", "https://auth.example/authorize"
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["scope"].split() == list(SCOPES)
    assert "offline_access" in query["scope"]
    assert query["code_challenge_method"] == "S256"
    assert (query["client_id"], query["state"], query["response_type"]) == ("my-key", "STATE", "code")


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ("https://localhost/?code=abc123&state=S1", "abc123"),
        ("  abc123\n", "abc123"),
        ("code=abc123&state=S1", "abc123"),
    ],
)
def test_the_code_is_read_from_what_the_person_pastes(answer, code):
    assert code_from_answer(answer, "S1") == code


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("https://localhost/?code=abc&state=OTHER", "state differs"),
        ("https://localhost/?error=access_denied&state=S1", "access_denied"),
    ],
)
def test_a_wrong_answer_stops_with_a_reason(answer, message):
    with pytest.raises(SystemExit, match=message):
        code_from_answer(answer, "S1")


def authorize_in_the_emulator(emulator, challenge: str, state: str) -> str:
    """The browser step: the emulator consents at once and redirects with the code."""
    url = authorization_url(
        emulator.client_id,
        "https://localhost",
        challenge,
        state,
        f"{emulator.base_url}/oauth2/default/v1/authorize",
    )
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    return response.headers["Location"]


@pytest.mark.parametrize("with_secret", [True, False], ids=["confidential-client", "pkce-only"])
def test_the_exchanged_refresh_token_works_in_the_hook(emulator, make_hook, with_secret):
    verifier, challenge = pkce_pair()
    code = code_from_answer(authorize_in_the_emulator(emulator, challenge, "S1"), "S1")
    secret = emulator.client_secret if with_secret else None
    tokens = exchange_code(
        emulator.token_url, emulator.client_id, secret, code, "https://localhost", verifier
    )
    hook = make_hook(refresh_token=tokens["refresh_token"])
    assert hook.test_connection()[0]


def test_a_wrong_verifier_is_refused(emulator):
    _, challenge = pkce_pair()
    code = code_from_answer(authorize_in_the_emulator(emulator, challenge, "S1"), "S1")
    with pytest.raises(SystemExit, match="refused the code"):
        exchange_code(emulator.token_url, emulator.client_id, None, code, "https://localhost", pkce_pair()[0])


def test_the_command_prints_the_refresh_token_once_and_never_the_access_token(emulator, monkeypatch, capsys):
    verifier, challenge = pkce_pair()
    monkeypatch.setattr(authorize, "pkce_pair", lambda: (verifier, challenge))
    code = code_from_answer(authorize_in_the_emulator(emulator, challenge, "S1"), "S1")
    monkeypatch.setattr("sys.stdin", io.StringIO(code + "\n"))
    monkeypatch.setenv("CC_CLIENT_SECRET", emulator.client_secret)
    argv = ["--client-id", emulator.client_id, "--token-url", emulator.token_url]
    argv += ["--authorize-url", f"{emulator.base_url}/oauth2/default/v1/authorize"]
    assert authorize.main(argv) == 0
    out = capsys.readouterr().out
    refresh_token = emulator.admin.current_refresh_token()
    assert out.count(refresh_token) == 1
    assert "constant_contact_default" in out
    assert "offline_access" in out
    assert "access_token" not in out
