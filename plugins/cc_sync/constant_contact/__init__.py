"""Constant Contact v3: the hook, its shared state, and the conversion of contacts to canonical rows.

One concept, one file:

- ``hook``: :class:`ConstantContactHook`, the only way the project talks to the API;
- ``tokens``: OAuth2 refresh under a cross-process lock, tokens encrypted at rest;
- ``state``: the SQL tables shared by every worker (token row, daily call count, rate limiter);
- ``bulk``: checking import rows and splitting them under CC's 40,000 contacts / 4 MB limits;
- ``convert``: CC contacts ⇄ canonical frames and rows, and full PUT bodies (pure, no HTTP);
- ``models`` and ``errors``: the typed values and errors the hook returns and raises;
- ``authorize``: the one-off authorization-code + PKCE command for a real account.
"""

from __future__ import annotations

from cc_sync.constant_contact.errors import (
    ConstantContactApiError,
    ConstantContactAuthError,
    ConstantContactBudgetExhausted,
    ConstantContactConfigError,
    ConstantContactError,
    ConstantContactMalformedResponse,
    ConstantContactQuotaExceeded,
    ConstantContactTransportError,
)
from cc_sync.constant_contact.models import (
    AcceptedActivity,
    Activity,
    ActivityRequest,
    ActivityState,
    ContactList,
    ContactStatus,
    CustomField,
    ImportResult,
    PermissionToSend,
    RowError,
    UpdateSource,
)

__all__ = [
    "AcceptedActivity",
    "Activity",
    "ActivityRequest",
    "ActivityState",
    "ConstantContactApiError",
    "ConstantContactAuthError",
    "ConstantContactBudgetExhausted",
    "ConstantContactConfigError",
    "ConstantContactError",
    "ConstantContactMalformedResponse",
    "ConstantContactQuotaExceeded",
    "ConstantContactTransportError",
    "ContactList",
    "ContactStatus",
    "CustomField",
    "ImportResult",
    "PermissionToSend",
    "RowError",
    "UpdateSource",
]
