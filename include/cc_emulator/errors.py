"""Error answers in Constant Contact's own shapes.

The v3 API answers most errors with an array (``APIErrorSchema``:
``[{"error_key": ..., "error_message": ...}]``) but 401 and the two 429s with a single object
(``AuthorizationErrorSchema``; rate_limits.html). The OAuth endpoint answers like Okta does:
``{"error": "invalid_grant", "error_description": ...}``.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised anywhere in request handling; the app turns it into the matching CC error answer."""

    def __init__(self, status: int, error_key: str, error_message: str, *, as_object: bool = False) -> None:
        super().__init__(f"{status} {error_key}: {error_message}")
        self.status = status
        self.error_key = error_key
        self.error_message = error_message
        self.as_object = as_object

    def body(self) -> Any:
        item = {"error_key": self.error_key, "error_message": self.error_message}
        return item if self.as_object else [item]


def validation_error(message: str) -> ApiError:
    return ApiError(400, "contacts.api.validation.error", message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "contacts.api.bad.request", message)


def not_found(what: str) -> ApiError:
    return ApiError(404, "contacts.api.not.found", f"{what} was not found")


def conflict(message: str) -> ApiError:
    return ApiError(409, "contacts.api.conflict", message)


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "Unauthorized", as_object=True)


def throttled() -> ApiError:
    return ApiError(429, "throttled", "Too Many Requests", as_object=True)


def quota_exceeded() -> ApiError:
    return ApiError(429, "quota_exceeded", "Limit Exceeded", as_object=True)


def too_many_activities(limit: int) -> ApiError:
    return ApiError(
        429, "activities.api.too.many.requests", f"You exceeded {limit:,} queued activities for this account"
    )


class OAuthError(Exception):
    """An error of the token endpoint, answered as ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
