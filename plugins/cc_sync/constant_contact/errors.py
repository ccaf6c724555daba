"""Typed errors of the Constant Contact hook.

Every message here is written for the task log: it says what failed and what to do, and it never
carries a token, a client secret or an email address (the hook builds them from status codes,
error keys and ids only).
"""

from __future__ import annotations

from datetime import datetime

from cc_sync.errors import NotRetryableError


class ConstantContactError(Exception):
    """Base class of everything the Constant Contact hook raises on purpose."""


class ConstantContactConfigError(NotRetryableError, ConstantContactError):
    """The Airflow connection is missing something the hook needs."""


class ConstantContactAuthError(NotRetryableError, ConstantContactError):
    """Authentication failed for good: the API key or secret, or the refresh token, was refused, or
    a fresh token got a 401. Retrying cannot help; the message says what a person must fix.

    :param credential: which one was refused: ``client`` (the API key or its secret: fix the
        connection's login or password), ``refresh_token`` (re-authorize with
        ``python -m cc_sync.constant_contact.authorize``), or None when it cannot be told.
    """

    def __init__(self, message: str, *, credential: str | None = None):
        super().__init__(message)
        self.credential = credential


class ConstantContactApiError(ConstantContactError):
    """Constant Contact answered with an error status.

    :param status: the HTTP status code.
    :param error_key: CC's ``error_key`` (e.g. ``contacts.api.validation.error``), if the body had one.
    :param message: CC's ``error_message`` (or a short description when the body had none).
    :param method: HTTP method of the failed call.
    :param path: URL path of the failed call (no query string, which can hold an email address).
    """

    def __init__(self, status: int, error_key: str | None, message: str, *, method: str = "", path: str = ""):
        self.status = status
        self.error_key = error_key
        self.message = message
        self.method = method
        self.path = path
        where = f" on {method} {path}" if method else ""
        key = f" {error_key}" if error_key else ""
        super().__init__(f"Constant Contact answered {status}{key}{where}: {message}")

    @property
    def is_retryable(self) -> bool:
        """Throttling and server-side failures are transient; every other 4xx is the caller's fault."""
        return self.status >= 500 or (self.status == 429 and self.error_key != "quota_exceeded")


class ConstantContactQuotaExceeded(NotRetryableError, ConstantContactApiError):
    """The server's daily quota is spent (429 ``quota_exceeded``): stop until it resets at 00:00 UTC."""

    def __init__(self, resets_at: datetime, *, method: str = "", path: str = ""):
        self.resets_at = resets_at
        super().__init__(
            429,
            "quota_exceeded",
            f"the daily API quota is spent; it resets at {resets_at:%Y-%m-%d %H:%M} UTC. "
            "Retrying before then only fails again.",
            method=method,
            path=path,
        )


class ConstantContactBudgetExhausted(NotRetryableError, ConstantContactError):
    """The hook's own daily budget (minus the reserve) is spent; no call was made."""

    def __init__(self, used: int, budget: int, reserve: int, resets_at: datetime):
        self.used = used
        self.budget = budget
        self.reserve = reserve
        self.resets_at = resets_at
        super().__init__(
            f"daily Constant Contact call budget reached: {used} calls made today, budget {budget} "
            f"with {reserve} kept in reserve; the count resets at {resets_at:%Y-%m-%d %H:%M} UTC"
        )


class ConstantContactMalformedResponse(ConstantContactError):
    """A 2xx answer whose body is not the JSON the endpoint promises (truncated, or the wrong shape)."""

    def __init__(self, method: str, path: str, detail: str):
        self.method = method
        self.path = path
        self.detail = detail
        super().__init__(f"Constant Contact sent a malformed answer to {method} {path}: {detail}")


class ConstantContactTransportError(ConstantContactError):
    """The call never got a complete answer: timeout, refused or dropped connection, cut-off body.

    Only the exception's class name is kept: a driver's message can quote the URL and its query.
    """

    def __init__(self, method: str, path: str, kind: str):
        self.method = method
        self.path = path
        self.kind = kind
        super().__init__(f"{method} {path} got no complete answer from Constant Contact ({kind})")
