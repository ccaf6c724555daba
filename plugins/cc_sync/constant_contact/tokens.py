"""OAuth2 tokens for Constant Contact: one refresh at a time, across every worker process.

Constant Contact's refresh tokens rotate: each works once, and the answer to a refresh carries the
next one. The rules this module keeps:

- the new refresh token is committed to the shared state BEFORE the new access token is used, so
  a crash after a refresh never loses the only valid refresh token;
- a refresh happens under the token row's lock (``SharedState.locked_token``): a second process
  that wanted to refresh waits, then finds the new access token and uses it without refreshing;
- the token endpoint's own limit (1 request/s) is kept through the shared limiter;
- when the connection's ``refresh_token`` is not the one the store was seeded from (a person ran
  the authorization again), the store starts over from the connection's token. Only a SHA-256 of
  the seed is kept to tell;
- a stored access token is used only by the API key and secret that obtained it (a SHA-256 of the
  two is kept beside it, never the secret): after the connection's secret changes, the first call
  does a real refresh, so a wrong secret fails at once as ``invalid_client`` instead of riding on
  a cached token for up to 24 hours.

Tokens are encrypted at rest with Airflow's Fernet key when ``[core] fernet_key`` is set, and no
token ever reaches a log line, an exception message or a ``repr``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

import requests
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cc_sync.constant_contact.errors import ConstantContactAuthError, ConstantContactError
from cc_sync.constant_contact.state import MICROS, SharedState, TokenRow, now_us

log = logging.getLogger(__name__)

DEFAULT_TOKEN_URL = "https://authz.constantcontact.com/oauth2/default/v1/token"
TOKEN_ENDPOINT_RATE_PER_SECOND = 1.0
# An access token closer than this to its expiry is refreshed before use, not sent to fail.
EXPIRY_SKEW_SECONDS = 120
DEFAULT_ACCESS_TOKEN_SECONDS = 86_400
TOKEN_ENDPOINT_ATTEMPTS = 4
REAUTHORIZE_HINT = (
    "Run `python -m cc_sync.constant_contact.authorize` and put the new refresh token in the "
    "connection's extra `refresh_token`."
)
# invalid_client: the API key or its secret is wrong; a new authorization would not help.
CLIENT_CREDENTIALS_HINT = (
    "Check the connection's API key (login) and client secret (password) against the app's "
    "in Constant Contact's developer portal; the refresh token was not the problem."
)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def seed_hash(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def credentials_hash(client_id: str, client_secret: str) -> str:
    """SHA-256 of the API key and its secret: tells a changed secret without storing it."""
    return hashlib.sha256(f"{client_id}\0{client_secret}".encode()).hexdigest()


def token_store_key(client_id: str, seed_refresh_token: str) -> str:
    """The token row of one authorization: the API key and the refresh token it started from.

    Not the connection id: every connection holding the same authorization must share one row, or
    one would spend the rotating refresh token the other still holds. Airflow's connection test
    (the UI's Test button) runs the hook under a throw-away connection id; keyed by that id, a test
    refreshed under its own row and left the real connection with a spent token (invalid_grant).
    """
    return f"{client_id}:{seed_hash(seed_refresh_token)[:32]}"


class TokenCipher:
    """Encrypts token values with Airflow's Fernet key(s), or stores them as-is when none is set.

    Stored values carry a ``fernet:`` or ``plain:`` prefix, so turning encryption on later still
    reads the old row, and a row encrypted with a key that is gone fails with a clear message.
    """

    def __init__(self, fernet_keys: str | None):
        self._fernet: MultiFernet | None = None
        keys = [k.strip() for k in (fernet_keys or "").split(",") if k.strip()]
        if keys:
            try:
                self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
            except ValueError:
                _warn_once("[core] fernet_key is not a valid Fernet key: tokens are stored unencrypted")

    @classmethod
    def from_airflow_config(cls) -> TokenCipher:
        try:
            from airflow.sdk.configuration import conf
        except ImportError:  # pragma: no cover - older Task SDK layouts
            from airflow.configuration import conf
        return cls(conf.get("core", "fernet_key", fallback=None))

    @property
    def encrypts(self) -> bool:
        return self._fernet is not None

    def encrypt(self, value: str) -> str:
        if self._fernet is None:
            return "plain:" + value
        return "fernet:" + self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, stored: str) -> str:
        kind, _, payload = stored.partition(":")
        if kind == "plain":
            return payload
        if self._fernet is None:
            raise ConstantContactAuthError(
                "the stored Constant Contact tokens are encrypted but no [core] fernet_key is set"
            )
        try:
            return self._fernet.decrypt(payload.encode()).decode()
        except InvalidToken:
            raise ConstantContactAuthError(
                "the stored Constant Contact tokens cannot be decrypted with the current [core] fernet_key"
            ) from None


@dataclass
class _CachedToken:
    value: str = field(repr=False)
    expires_at: float

    def valid(self) -> bool:
        return time.time() < self.expires_at - EXPIRY_SKEW_SECONDS


class TokenManager:
    """Hands out a valid access token, refreshing it (once, for everyone) when needed.

    :param state: the shared state holding the token row.
    :param token_key: the row's key (:func:`token_store_key`).
    :param client_id: the API key; also the key of the token endpoint's limiter.
    :param client_secret: the API key's secret.
    :param seed_refresh_token: the refresh token from the connection (the first one, from the
        one-off authorization, or a newer one a person put there).
    :param token_url: the OAuth2 token endpoint.
    :param session: the HTTP session to use.
    :param timeout: seconds to wait for the token endpoint.
    """

    def __init__(
        self,
        state: SharedState,
        *,
        token_key: str,
        client_id: str,
        client_secret: str,
        seed_refresh_token: str,
        token_url: str = DEFAULT_TOKEN_URL,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        cipher: TokenCipher | None = None,
    ):
        self.state = state
        self.token_key = token_key
        self.client_id = client_id
        self._client_secret = client_secret
        self._seed = seed_refresh_token
        self._seed_hash = seed_hash(seed_refresh_token)
        self._credentials_hash = credentials_hash(client_id, client_secret)
        self.token_url = token_url
        self.session = session or requests.Session()
        self.timeout = timeout
        self.cipher = cipher or TokenCipher.from_airflow_config()
        self._cached: _CachedToken | None = None
        self.refreshes = 0  # refreshes this instance performed itself (not ones it found done)

    def __repr__(self) -> str:
        return f"TokenManager(token_key={self.token_key!r}, token_url={self.token_url!r})"

    def access_token(self) -> str:
        """A valid access token: from memory, else from the shared state, else a refresh."""
        if self._cached and self._cached.valid():
            return self._cached.value
        row = self.state.read_token(self.token_key)
        if row and self._may_use_stored_access_token(row):
            cached = _CachedToken(self.cipher.decrypt(row.access_token), row.access_expires_us / MICROS)
            if cached.valid():
                self._cached = cached
                return cached.value
        return self.refresh()

    def refresh(self, rejected_access_token: str | None = None, *, force: bool = False) -> str:
        """Refresh under the lock, unless another process already did while we waited.

        :param rejected_access_token: the token the API just answered 401 to; a stored token equal
            to it is not reused even if its expiry says it is still valid.
        :param force: exchange the refresh token even when a valid access token is stored (the
            connection's Test: a cached access token would hide a wrong secret until it expires).
        """
        self._cached = None
        with self.state.locked_token(self.token_key, self.client_id) as (conn, row):
            reseeded = row.seed_hash != self._seed_hash
            if reseeded:
                if row.seed_hash is not None:
                    log.info(
                        "The connection carries a new refresh token: the token store starts over from it"
                    )
                current_refresh = self._seed
            else:
                if not force and self._may_use_stored_access_token(row):
                    stored = _CachedToken(
                        self.cipher.decrypt(row.access_token), row.access_expires_us / MICROS
                    )
                    if stored.valid() and stored.value != rejected_access_token:
                        self._cached = stored
                        return stored.value
                current_refresh = self.cipher.decrypt(row.refresh_token) if row.refresh_token else self._seed

            self.state.take_token_endpoint_slot(conn, self.client_id, TOKEN_ENDPOINT_RATE_PER_SECOND)
            answer = self._call_token_endpoint(current_refresh)
            access = answer["access_token"]
            # A long-lived refresh token comes back unchanged (or not at all); a rotating one is new.
            new_refresh = answer.get("refresh_token") or current_refresh
            expires_at = time.time() + float(answer.get("expires_in") or DEFAULT_ACCESS_TOKEN_SECONDS)
            self.state.write_token(
                conn,
                self.token_key,
                refresh_token=self.cipher.encrypt(new_refresh),
                access_token=self.cipher.encrypt(access),
                access_expires_us=int(expires_at * MICROS),
                seed_hash=self._seed_hash,
                credentials_hash=self._credentials_hash,
                refreshed_us=now_us(),
                refresh_count=row.refresh_count + 1,
            )
        # Leaving the block committed the new refresh token: only now is the access token used.
        self.refreshes += 1
        self._cached = _CachedToken(access, expires_at)
        log.info(
            "Refreshed the Constant Contact access token for %s (refresh #%d, valid %d s)",
            self.token_key,
            row.refresh_count + 1,
            int(expires_at - time.time()),
        )
        return access

    def _may_use_stored_access_token(self, row: TokenRow) -> bool:
        """The stored access token belongs to this authorization and to these credentials.

        A row written before the credentials hash existed (NULL) counts as other credentials: one
        refresh after the upgrade, rather than trusting a token whose secret was never checked.
        """
        return bool(
            row.seed_hash == self._seed_hash
            and row.credentials_hash == self._credentials_hash
            and row.access_token
            and row.access_expires_us
        )

    def _call_token_endpoint(self, refresh_token: str) -> dict[str, str]:
        """POST the refresh grant; transient failures are retried, a refused token is not."""
        last_problem = ""
        for attempt in range(1, TOKEN_ENDPOINT_ATTEMPTS + 1):
            try:
                response = self.session.post(
                    self.token_url,
                    data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                    auth=(self.client_id, self._client_secret),
                    headers={"Accept": "application/json"},
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                last_problem = type(exc).__name__
            else:
                if response.status_code == 200:
                    try:
                        body = response.json()
                        if isinstance(body, dict) and body.get("access_token"):
                            return body
                        last_problem = "an answer without access_token"
                    except ValueError:
                        last_problem = "a malformed JSON answer"
                elif response.status_code in (400, 401, 403):
                    # A refresh whose answer was lost may still have rotated the token on the
                    # server: the retry then finds it spent. Nothing client-side can recover that.
                    lost = (
                        f" An earlier attempt got no answer ({last_problem}): the server probably "
                        "rotated the token and the answer with the new one was lost."
                        if last_problem
                        else ""
                    )
                    code = self._oauth_error(response)
                    if code == "invalid_client":
                        raise ConstantContactAuthError(
                            f"the token endpoint refused the API key or client secret "
                            f"({response.status_code} invalid_client). {CLIENT_CREDENTIALS_HINT}",
                            credential="client",
                        )
                    raise ConstantContactAuthError(
                        f"the token endpoint refused the refresh token ({response.status_code} "
                        f"{code}).{lost} {REAUTHORIZE_HINT}",
                        credential="refresh_token",
                    )
                else:
                    last_problem = f"status {response.status_code}"
            if attempt < TOKEN_ENDPOINT_ATTEMPTS:
                log.warning("Token endpoint attempt %d failed with %s; retrying", attempt, last_problem)
                time.sleep(min(2**attempt, 10))
        raise ConstantContactError(
            f"the token endpoint failed {TOKEN_ENDPOINT_ATTEMPTS} times (last: {last_problem})"
        )

    @staticmethod
    def _oauth_error(response: requests.Response) -> str:
        """The OAuth ``error`` code only: descriptions are free text that could echo a token."""
        try:
            body = response.json()
        except ValueError:
            return "no error code"
        code = body.get("error") if isinstance(body, dict) else None
        return str(code)[:60] if code else "no error code"
