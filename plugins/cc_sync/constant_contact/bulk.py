"""Planning a bulk import: check each row, then split the rows into requests CC will take whole.

``POST /v3/activities/contacts_json_import`` takes at most 40,000 contacts and less than 4 MB a
request, and CC silently drops whatever lies beyond 4 MB, so the hook never sends a body it has not
measured: each row is serialised once, here, and the request body is those exact bytes.

Rows the hook can tell CC would refuse (no email, an invalid or duplicate one, a value too long,
too many custom fields) are rejected here with a reason and never cost a call; the rest go through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from cc_sync.constant_contact.convert import CANONICAL_BY_IMPORT_KEY
from cc_sync.constant_contact.models import RowError
from cc_sync.fields import (
    CUSTOM_FIELD_MAX_LENGTH,
    CUSTOM_FIELD_PREFIX,
    MAX_CUSTOM_FIELDS_PER_CONTACT,
    field_max_length,
)

MAX_IMPORT_CONTACTS = 40_000
# CC's limit is "less than 4 MB"; keep 5% of it in hand for the envelope and any byte counting
# difference on CC's side.
MAX_IMPORT_BYTES = 3_984_588  # 0.95 * 4 MiB
MAX_LISTS_PER_IMPORT = 50
# Plain ASCII addresses this strict pattern accepts are valid for email-validator too; checking
# them here first skips its (much slower) full parse for the common case. Anything else, it decides.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


@dataclass
class ImportChunk:
    """One request's worth of rows: the exact JSON body and which input rows it carries."""

    body: bytes
    rows: list[int] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"ImportChunk(contacts={len(self.rows)}, bytes={len(self.body)})"


_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def row_problems(row: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Why CC would refuse this import row, as (field, reason) pairs; empty when it is fine."""
    problems: list[tuple[str | None, str]] = []
    email = row.get("email")
    if not isinstance(email, str) or not email.strip():
        return [("email", "no email address")]
    if not _PLAIN_EMAIL.fullmatch(email) or email.rpartition(".")[2].lower() in _SPECIAL_USE:
        try:
            validate_email(email, check_deliverability=False)
        except EmailNotValidError as exc:
            problems.append(("email", f"invalid email address: {exc}"))
    custom = 0
    for key, value in row.items():
        if key.startswith(CUSTOM_FIELD_PREFIX):
            custom += 1
            limit: int | None = CUSTOM_FIELD_MAX_LENGTH
        elif key in CANONICAL_BY_IMPORT_KEY:
            limit = field_max_length(CANONICAL_BY_IMPORT_KEY[key])
        else:
            problems.append((key, "not a field this import sends"))
            continue
        if key in ("birthday_month", "birthday_day"):
            top = 12 if key == "birthday_month" else 31
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                problems.append((key, f"must be a whole number from 1 to {top}"))
        elif limit is not None and len(str(value)) > limit:
            problems.append((key, f"longer than {limit} characters ({len(str(value))})"))
    if custom > MAX_CUSTOM_FIELDS_PER_CONTACT:
        problems.append((None, f"{custom} custom fields; CC takes at most {MAX_CUSTOM_FIELDS_PER_CONTACT}"))
    if ("birthday_month" in row) != ("birthday_day" in row):
        problems.append(("birthday_month", "birthday_month and birthday_day go together"))
    return problems


def plan_import(
    rows: Iterable[Mapping[str, Any]],
    list_ids: list[str],
    *,
    max_contacts: int | None = None,
    max_bytes: int | None = None,
) -> tuple[list[ImportChunk], list[RowError]]:
    """Check the rows and pack the good ones into request bodies under both limits.

    :return: the chunks in input order, and the rejected rows (by position) with their reasons.
    """
    max_contacts = max_contacts or MAX_IMPORT_CONTACTS
    max_bytes = max_bytes or MAX_IMPORT_BYTES
    if not list_ids or len(list_ids) > MAX_LISTS_PER_IMPORT:
        raise ValueError(f"an import needs 1 to {MAX_LISTS_PER_IMPORT} list ids, got {len(list_ids)}")
    head = b'{"list_ids":' + _dumps(list(list_ids)) + b',"import_data":['
    tail = b"]}"
    envelope = len(head) + len(tail)

    chunks: list[ImportChunk] = []
    errors: list[RowError] = []
    seen_emails: dict[str, int] = {}
    parts: list[bytes] = []
    positions: list[int] = []
    size = envelope

    def flush() -> None:
        nonlocal parts, positions, size
        if parts:
            chunks.append(ImportChunk(body=head + b",".join(parts) + tail, rows=positions))
        parts, positions, size = [], [], envelope

    for position, row in enumerate(rows):
        problems = row_problems(row)
        if not problems:
            key = str(row["email"]).strip().casefold()
            first = seen_emails.setdefault(key, position)
            if first != position:
                problems = [("email", f"duplicate email address: the same as row {first}")]
        if problems:
            errors.extend(RowError(reason=reason, row=position, field=name) for name, reason in problems)
            continue
        encoded = _dumps(dict(row))
        if envelope + len(encoded) > max_bytes:
            errors.append(RowError(reason="row alone exceeds the import size limit", row=position))
            continue
        added = len(encoded) + (1 if parts else 0)
        if len(parts) >= max_contacts or size + added > max_bytes:
            flush()
            added = len(encoded)
        parts.append(encoded)
        positions.append(position)
        size += added
    flush()
    return chunks, errors
