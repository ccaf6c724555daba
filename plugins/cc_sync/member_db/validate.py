"""Checks on member rows before they go to Constant Contact, and the normalisations linking relies on.

:func:`validate_outgoing` splits a canonical frame into rows fit to send and a report of rejected
ones (member_id, field, reason), so one bad row never stops the others. It fills a blank first or
last name with the mapping's placeholder where one is set. Emails are checked with email-validator
(syntax only, no DNS), once per distinct address.
"""

from __future__ import annotations

import pandas as pd
from email_validator import EmailNotValidError, validate_email

from cc_sync.engine.normalise import normalise_email
from cc_sync.fields import MEMBER_ID, field_max_length
from cc_sync.member_db.mapping import MemberMapping

REJECTED_COLUMNS = [MEMBER_ID, "field", "reason"]
# C0 controls but tab, LF and CR, plus DEL and the C1 controls.
_CONTROL_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_NAME_FIELDS = ("first_name", "last_name")


def mask_email(email: str | None) -> str | None:
    """``anne.smith@example.org`` -> ``a***@example.org``: enough to recognise, not to harvest."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def email_problems(emails: pd.Series) -> pd.Series:
    """Per row, why the email cannot be sent (NA where it is fine); each distinct address checked once."""
    normalised = normalise_email(emails)
    reasons: dict[str, str | None] = {}
    for address in normalised.dropna().unique():
        try:
            validate_email(address, check_deliverability=False)
            reasons[address] = None
        except EmailNotValidError as exc:
            reasons[address] = f"invalid email: {exc}".replace(address, "<email>")
    problems = normalised.map(reasons).astype("string")
    return problems.mask(normalised.isna(), "missing email")


def _reject(frame: pd.DataFrame, mask: pd.Series, field: str, reason: str | pd.Series) -> pd.DataFrame:
    picked = frame.loc[mask.fillna(False).to_numpy(bool)]
    reasons = reason.loc[picked.index] if isinstance(reason, pd.Series) else reason
    return pd.DataFrame({MEMBER_ID: picked[MEMBER_ID].to_numpy(), "field": field, "reason": reasons})


def validate_outgoing(frame: pd.DataFrame, mapping: MemberMapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` (canonical member rows) into (valid, rejected[member_id, field, reason]).

    Rejected: missing or invalid email, a value longer than Constant Contact accepts, control
    characters, a required field missing (a blank first/last name takes the mapping's placeholder
    instead, where one is set). A member with any rejection is left out of ``valid``; the valid
    rows have their emails normalised and placeholders filled.
    """
    data = frame.copy()
    reports: list[pd.DataFrame] = []
    if "email" in data:
        problems = email_problems(data["email"])
        reports.append(_reject(data, problems.notna(), "email", problems))
        data["email"] = normalise_email(data["email"])
    else:
        reports.append(_reject(data, pd.Series(True, index=data.index), "email", "missing email"))

    if mapping.name_placeholder:
        for name in _NAME_FIELDS:
            if name in data:
                blank = data[name].astype("string").str.strip().fillna("").eq("")
                data[name] = data[name].astype("string").mask(blank, mapping.name_placeholder)

    for name in mapping.required_fields:
        if name == "email":
            continue
        if name not in data:
            reports.append(
                _reject(data, pd.Series(True, index=data.index), name, f"required field {name} missing")
            )
            continue
        blank = data[name].astype("string").str.strip().fillna("").eq("")
        reports.append(_reject(data, blank, name, f"required field {name} is blank"))

    for name in data.columns:
        limit = field_max_length(name)
        if limit is None or not (pd.api.types.is_string_dtype(data[name]) or data[name].dtype == object):
            continue
        text = data[name].astype("string")
        too_long = text.str.len().gt(limit)
        reports.append(_reject(data, too_long, name, f"longer than {limit} characters"))
        control = text.str.contains(_CONTROL_CHARS, regex=True)
        reports.append(_reject(data, control, name, "contains control characters"))

    rejected = pd.concat([r for r in reports if not r.empty], ignore_index=True) if any(
        not r.empty for r in reports
    ) else pd.DataFrame(columns=REJECTED_COLUMNS)  # fmt: skip
    valid = data.loc[~data[MEMBER_ID].isin(rejected[MEMBER_ID])].reset_index(drop=True)
    return valid, rejected.reset_index(drop=True)
