"""The Constant Contact account a run works on, shown at the start of each run's log (as Realm shows
it when linking): name, organisation, contact email (masked) and physical address. One API call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.member_db.validate import mask_email

log = logging.getLogger(__name__)

ADDRESS_PARTS = ("address_line1", "address_line2", "address_line3", "city", "state_code", "state_name",
                 "postal_code", "country_code")  # fmt: skip


@dataclass(frozen=True)
class AccountSummary:
    """What identifies the account; ``contact_email`` is already masked (``o***@example.org``)."""

    name: str | None
    organization: str | None
    contact_email: str | None
    physical_address: str | None

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> AccountSummary:
        person = " ".join(p for p in (body.get("first_name"), body.get("last_name")) if p) or None
        address = body.get("physical_address") or {}
        parts = [str(address[k]) for k in ADDRESS_PARTS if address.get(k)]
        return cls(
            name=person,
            organization=body.get("organization_name"),
            contact_email=mask_email(body.get("contact_email")),
            physical_address=", ".join(parts) or None,
        )

    def describe(self) -> str:
        return (
            f"Constant Contact account: {self.organization or '(no organisation)'}; "
            f"owner {self.name or '(no name)'} <{self.contact_email or 'no email'}>; "
            f"address {self.physical_address or '(none on file)'}"
        )


def log_account_summary(cc: ConstantContactHook, logger: logging.Logger | None = None) -> AccountSummary:
    """Read ``GET /v3/account/summary`` once (with the physical address) and log who we talk to."""
    summary = AccountSummary.from_api(cc.get_account_details())
    (logger or log).info("%s", summary.describe())
    return summary
