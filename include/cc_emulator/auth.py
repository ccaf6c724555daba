"""OAuth2 tokens as Constant Contact's Okta-based authorization server hands them out.

Refresh tokens rotate: each refresh answers a new refresh token and the used one stops working
(``invalid_grant``), as with CC's recommended "rotating refresh tokens". Access tokens are signed JWTs,
as CC's (Okta's) are, carrying the claims CC's docs tell clients to decode and check (issuer, audience,
expiry, client id, scopes); they expire after ``access_token_ttl_seconds`` (24 h by default). The
emulator still recognises a token by looking it up, so expiring all of them (admin) stays possible.

The one-off authorization (authorization code with PKCE) is emulated too: ``/authorize`` consents
at once and redirects with a code; exchanging the code gives a new set of tokens, and, as on the
real server, "generating a new set of tokens causes all previous refresh tokens to expire".
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from include.cc_emulator.errors import OAuthError

DEMO_CLIENT_ID = "demo-client-id"
DEMO_CLIENT_SECRET = "demo-client-secret"
DEMO_REFRESH_TOKEN = "demo-refresh-token"
SCOPE = "account_read contact_data campaign_data offline_access"
# Claims of the access token: CC's authorization server is an Okta one, for the v3 API audience.
TOKEN_ISSUER = "https://identity.constantcontact.com/oauth2/default"
TOKEN_AUDIENCE = "https://api.cc.email/v3"
DEMO_USER_ID = "00u0demo0000emulated"


AUTHORIZATION_CODE_TTL_SECONDS = 300


@dataclass(frozen=True)
class PendingAuthorization:
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    expires: float


def pkce_s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TokenStore:
    def __init__(self) -> None:
        self.refresh_tokens: set[str] = {DEMO_REFRESH_TOKEN}
        self.access_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.authorization_codes: dict[str, PendingAuthorization] = {}
        self.refresh_count = 0
        # HS256 with a per-process key: clients only decode the claims (CC's docs); nobody else verifies.
        self.signing_key = secrets.token_urlsafe(32)

    def authorize(self, client_id: str, redirect_uri: str, code_challenge: str | None) -> str:
        """The person consented: a single-use code for ``redirect_uri``, valid for five minutes."""
        code = secrets.token_urlsafe(24)
        self.authorization_codes[code] = PendingAuthorization(
            client_id, redirect_uri, code_challenge, time.time() + AUTHORIZATION_CODE_TTL_SECONDS
        )
        return code

    def exchange_code(
        self,
        code: str,
        *,
        client_id: str,
        redirect_uri: str | None,
        code_verifier: str | None,
        client_authenticated: bool,
        ttl_seconds: float,
    ) -> dict[str, Any]:
        pending = self.authorization_codes.pop(code, None)
        if pending is None or pending.expires < time.time() or pending.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "The authorization code is invalid or has expired.")
        if redirect_uri != pending.redirect_uri:
            raise OAuthError(
                400, "invalid_grant", "The redirect_uri does not match the authorization request."
            )
        if pending.code_challenge is not None:
            if not code_verifier or pkce_s256(code_verifier) != pending.code_challenge:
                raise OAuthError(400, "invalid_grant", "PKCE verification failed.")
        elif not client_authenticated:
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        # A new set of tokens makes every earlier refresh token expire.
        self.refresh_tokens = set()
        return self._new_tokens(ttl_seconds)

    def refresh(self, refresh_token: str, ttl_seconds: float) -> dict[str, Any]:
        if refresh_token not in self.refresh_tokens:
            raise OAuthError(400, "invalid_grant", "The refresh token is invalid or expired.")
        self.refresh_tokens.discard(refresh_token)
        self.refresh_count += 1
        return self._new_tokens(ttl_seconds)

    def _new_tokens(self, ttl_seconds: float) -> dict[str, Any]:
        new_refresh = secrets.token_urlsafe(32)
        self.refresh_tokens.add(new_refresh)
        return {
            "access_token": self.issue_access_token(ttl_seconds),
            "refresh_token": new_refresh,
            "token_type": "Bearer",
            "expires_in": int(ttl_seconds),
            "scope": SCOPE,
        }

    def issue_access_token(self, ttl_seconds: float) -> str:
        now = time.time()
        # Forget long-expired tokens so a long benchmark does not grow the table without end.
        if len(self.access_tokens) > 10_000:
            self.access_tokens = {t: exp for t, exp in self.access_tokens.items() if exp > now}
        claims = {
            "ver": 1,
            "jti": f"AT.{uuid.uuid4().hex}",
            "iss": TOKEN_ISSUER,
            "aud": TOKEN_AUDIENCE,
            "iat": int(now),
            "exp": int(now + ttl_seconds),
            "cid": DEMO_CLIENT_ID,
            "uid": DEMO_USER_ID,
            "scp": SCOPE.split(),
            "auth_time": int(now),
            "sub": "office@example.org",
            "platform_user_id": str(uuid.uuid5(uuid.NAMESPACE_URL, DEMO_USER_ID)),
        }
        token = jwt.encode(claims, self.signing_key, algorithm="HS256")
        self.access_tokens[token] = now + ttl_seconds
        return token

    def is_valid(self, access_token: str) -> bool:
        expiry = self.access_tokens.get(access_token)
        return expiry is not None and expiry > time.time()

    def expire_access_tokens(self) -> None:
        self.access_tokens = dict.fromkeys(self.access_tokens, 0.0)

    def current_refresh_token(self) -> str:
        """The one refresh token that works now (there is only ever one: each refresh rotates it)."""
        return next(iter(self.refresh_tokens))

    def to_dict(self) -> dict[str, Any]:
        return {
            "refresh_tokens": sorted(self.refresh_tokens),
            "access_tokens": self.access_tokens,
            "signing_key": self.signing_key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenStore:
        tokens = cls()
        tokens.refresh_tokens = set(data.get("refresh_tokens") or [DEMO_REFRESH_TOKEN])
        tokens.access_tokens = {k: float(v) for k, v in (data.get("access_tokens") or {}).items()}
        tokens.signing_key = data.get("signing_key") or tokens.signing_key
        return tokens
