"""The one-off authorization command: PKCE, the authorize URL, reading the pasted answer."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

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


def test_code_exchange_against_the_emulator(emulator):
    verifier, _ = pkce_pair()
    try:
        exchange_code(
            emulator.token_url,
            emulator.client_id,
            emulator.client_secret,
            "code",
            "https://localhost",
            verifier,
        )
    except SystemExit as exc:
        if "unsupported_grant_type" in str(exc):
            pytest.skip("the emulator's token endpoint has no authorization_code grant (refresh_token only)")
        raise
