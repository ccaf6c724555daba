"""Checks on member rows before they go to Constant Contact, and the normalisations linking relies on.

:func:`validate_outgoing` splits a canonical frame into rows fit to send and a report of rejected
ones (member_id, field, reason, code), so one bad row never stops the others. The sync and the
send-list both call it. It cleans control characters out of text and fills a blank first or last
name with the mapping's placeholder where one is set. Emails are checked with email-validator
(syntax only, no DNS), once per distinct address.
"""

from __future__ import annotations

import pandas as pd
from email_validator import EmailNotValidError, validate_email

from cc_sync.engine.model import RejectReason
from cc_sync.engine.normalise import clean_frame_text, normalise_email
from cc_sync.fields import MEMBER_ID, field_max_length
from cc_sync.member_db.mapping import MemberMapping

REJECTED_COLUMNS = [MEMBER_ID, "field", "reason", "code"]
_NAME_FIELDS = ("first_name", "last_name")


# The codes (the review queue's kind after ``rejected_``) are the engine's, so the sync's own
# rejections and these read alike; ``reason`` says it in words.
RejectCode = RejectReason


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


def _reject(
    frame: pd.DataFrame, mask: pd.Series, field: str, reason: str | pd.Series, code: RejectCode
) -> pd.DataFrame:
    picked = frame.loc[mask.fillna(False).to_numpy(bool)]
    reasons = reason.loc[picked.index] if isinstance(reason, pd.Series) else reason
    return pd.DataFrame(
        {MEMBER_ID: picked[MEMBER_ID].to_numpy(), "field": field, "reason": reasons, "code": code.value}
    )


def fill_name_placeholder(frame: pd.DataFrame, mapping: MemberMapping) -> pd.DataFrame:
    """Blank first and last names as the mapping's placeholder (for Constant Contact's eyes only)."""
    if not mapping.name_placeholder:
        return frame
    filled = {}
    for name in _NAME_FIELDS:
        if name in frame:
            text = frame[name].astype("string")
            filled[name] = text.mask(text.str.strip().fillna("").eq(""), mapping.name_placeholder)
    return frame.assign(**filled) if filled else frame


def mask_name_placeholder(frame: pd.DataFrame, mapping: MemberMapping) -> pd.DataFrame:
    """A CC name that is the mapping's placeholder read as no name: it was never a member's value,
    so it must neither flow back into the member database nor count as a change."""
    if not mapping.name_placeholder:
        return frame
    masked = {}
    for name in _NAME_FIELDS:
        if name in frame:
            text = frame[name].astype("string")
            is_placeholder = text.str.strip().eq(mapping.name_placeholder).fillna(False)
            if is_placeholder.any():
                masked[name] = text.mask(is_placeholder)
    return frame.assign(**masked) if masked else frame


def validate_outgoing(
    frame: pd.DataFrame, mapping: MemberMapping, *, partial: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` (canonical member rows) into (valid, rejected[member_id, field, reason, code]).

    The one set of rules for every row sent to Constant Contact, by the sync and by the send-list.
    Text is cleaned first (control characters dropped, line breaks as a space: ``clean_text``).
    Rejected: missing or invalid email, a value longer than Constant Contact accepts, a required
    field missing (a blank first/last name takes the mapping's placeholder instead, where one is
    set). A member with any rejection is left out of ``valid``; the valid rows have their emails
    normalised and placeholders filled.

    ``partial``: the rows carry only the fields being written (NA = leave alone, as the sync's
    updates do), so a missing value is not checked against the required fields, nor a missing email.
    """
    data = clean_frame_text(frame.copy())
    reports: list[pd.DataFrame] = []
    if "email" in data:
        problems = email_problems(data["email"])
        if partial:
            problems = problems.mask(data["email"].isna())
        missing = problems.eq("missing email").fillna(False)
        reports.append(_reject(data, missing, "email", problems, RejectCode.NO_EMAIL))
        invalid = problems.notna() & ~missing
        reports.append(_reject(data, invalid, "email", problems, RejectCode.INVALID_EMAIL))
        data["email"] = normalise_email(data["email"])
    elif not partial:
        reports.append(
            _reject(data, pd.Series(True, index=data.index), "email", "missing email", RejectCode.NO_EMAIL)
        )

    if not partial:
        data = fill_name_placeholder(data, mapping)
        for name in mapping.required_fields:
            if name == "email":
                continue
            if name not in data:
                everyone = pd.Series(True, index=data.index)
                reason = f"required field {name} missing"
                reports.append(_reject(data, everyone, name, reason, RejectCode.REQUIRED_BLANK))
                continue
            blank = data[name].astype("string").str.strip().fillna("").eq("")
            reason = f"required field {name} is blank"
            reports.append(_reject(data, blank, name, reason, RejectCode.REQUIRED_BLANK))

    for name in data.columns:
        limit = field_max_length(name)
        if limit is None or not (pd.api.types.is_string_dtype(data[name]) or data[name].dtype == object):
            continue
        too_long = data[name].astype("string").str.len().gt(limit)
        reports.append(_reject(data, too_long, name, f"longer than {limit} characters", RejectCode.TOO_LONG))

    found = [r for r in reports if not r.empty]
    rejected = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=REJECTED_COLUMNS)
    valid = data.loc[~data[MEMBER_ID].isin(rejected[MEMBER_ID])].reset_index(drop=True)
    return valid, rejected.reset_index(drop=True)
