"""One-off: authorize a real Constant Contact account and get the first refresh token.

Constant Contact has no client-credentials flow: a person signs in once in a browser, and the
hook lives on refresh tokens from then on. Run, with the project's settings::

    python -m cc_sync.constant_contact.authorize --client-id YOUR_API_KEY

(with ``CC_CLIENT_SECRET`` in the environment if the app has a secret; a PKCE-only app needs
none). The command:

1. prints the authorization URL (scopes ``contact_data campaign_data account_read
   offline_access``; ``offline_access`` is what yields a refresh token; redirect
   ``https://localhost`` unless ``--redirect-uri`` says otherwise);
2. waits for you to open it, sign in, allow access, and paste the address the browser was sent to
   (the page itself fails to load: that is expected, only its address matters) or just its ``code``;
3. exchanges the code (with the PKCE verifier) at the token endpoint;
4. prints the refresh token once, and where to put it: the extra ``refresh_token`` of the
   Airflow connection ``constant_contact_default``. The access token is never printed.

From then on the hook rotates the refresh token itself and keeps the current one in its state
database; putting a new one in the connection (by running this again) makes the hook start over
from it. Tip: CC's app settings can switch on long-lived refresh tokens, which survive a lost write.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
import sys
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from cc_sync.constant_contact.tokens import DEFAULT_TOKEN_URL

AUTHORIZE_URL = "https://authz.constantcontact.com/oauth2/default/v1/authorize"
SCOPES = ("contact_data", "campaign_data", "account_read", "offline_access")
DEFAULT_REDIRECT_URI = "https://localhost"


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE code verifier (86 characters, within RFC 7636's 43-128) and its challenge."""
    verifier = secrets.token_urlsafe(64)
    return verifier, pkce_challenge(verifier)


def authorization_url(client_id: str, redirect_uri: str, challenge: str, state: str, base: str) -> str:
    query = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(SCOPES),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{base}?{urlencode(query)}"


def code_from_answer(answer: str, expected_state: str) -> str:
    """The ``code`` from a pasted redirect URL (checking its ``state``), or the pasted code itself."""
    answer = answer.strip()
    if "://" not in answer and "code=" not in answer:
        return answer
    query = parse_qs(urlsplit(answer).query if "://" in answer else answer)
    if "error" in query:
        raise SystemExit(f"authorization refused: {query['error'][0]}")
    if query.get("state", [expected_state])[0] != expected_state:
        raise SystemExit("the pasted address belongs to another authorization attempt (state differs)")
    if "code" not in query:
        raise SystemExit("no code= in the pasted address")
    return query["code"][0]


def exchange_code(
    token_url: str, client_id: str, client_secret: str | None, code: str, redirect_uri: str, verifier: str
) -> dict[str, str]:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        "client_id": client_id,
    }
    auth = (client_id, client_secret) if client_secret else None
    response = requests.post(
        token_url, data=data, auth=auth, timeout=30, headers={"Accept": "application/json"}
    )
    if response.status_code != 200:
        try:
            error = response.json().get("error", "unknown error")
        except ValueError:
            error = "unknown error"
        raise SystemExit(f"the token endpoint refused the code ({response.status_code} {error})")
    return response.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--client-id", required=True, help="the app's API key")
    parser.add_argument("--redirect-uri", default=DEFAULT_REDIRECT_URI)
    parser.add_argument("--authorize-url", default=AUTHORIZE_URL)
    parser.add_argument("--token-url", default=DEFAULT_TOKEN_URL)
    args = parser.parse_args(argv)
    client_secret = os.environ.get("CC_CLIENT_SECRET")

    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    print("1. Open this address, sign in to Constant Contact and allow access:\n")
    print("   " + authorization_url(args.client_id, args.redirect_uri, challenge, state, args.authorize_url))
    print("\n2. Paste the address your browser was sent to (or just its code) and press Enter:")
    code = code_from_answer(sys.stdin.readline(), state)
    tokens = exchange_code(args.token_url, args.client_id, client_secret, code, args.redirect_uri, verifier)
    refresh_token = tokens.get("refresh_token")
    if not refresh_token:
        print("No refresh token came back: the app must request the offline_access scope.", file=sys.stderr)
        return 1
    print("\n3. Done. Put this refresh token in the extra field `refresh_token` of the Airflow connection")
    print("   `constant_contact_default` (login = API key, password = secret). It is shown only this once:\n")
    print(f"   {refresh_token}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
