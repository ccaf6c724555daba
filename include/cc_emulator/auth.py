"""OAuth2 tokens as Constant Contact's Okta-based authorization server hands them out.

Refresh tokens rotate: each refresh answers a new refresh token and the used one stops working
(``invalid_grant``), as with CC's recommended "rotating refresh tokens". Access tokens are opaque
random strings that expire after ``access_token_ttl_seconds`` (24 h by default).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from include.cc_emulator.errors import OAuthError

DEMO_CLIENT_ID = "demo-client-id"
DEMO_CLIENT_SECRET = "demo-client-secret"
DEMO_REFRESH_TOKEN = "demo-refresh-token"
SCOPE = "account_read contact_data campaign_data offline_access"


class TokenStore:
    def __init__(self) -> None:
        self.refresh_tokens: set[str] = {DEMO_REFRESH_TOKEN}
        self.access_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.refresh_count = 0

    def refresh(self, refresh_token: str, ttl_seconds: float) -> dict[str, Any]:
        if refresh_token not in self.refresh_tokens:
            raise OAuthError(400, "invalid_grant", "The refresh token is invalid or expired.")
        self.refresh_tokens.discard(refresh_token)
        new_refresh = secrets.token_urlsafe(32)
        self.refresh_tokens.add(new_refresh)
        self.refresh_count += 1
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
        token = secrets.token_urlsafe(32)
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
        return {"refresh_tokens": sorted(self.refresh_tokens), "access_tokens": self.access_tokens}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenStore:
        tokens = cls()
        tokens.refresh_tokens = set(data.get("refresh_tokens") or [DEMO_REFRESH_TOKEN])
        tokens.access_tokens = {k: float(v) for k, v in (data.get("access_tokens") or {}).items()}
        return tokens
