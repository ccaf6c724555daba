"""The canonical contact fields: the shared vocabulary of the member database and Constant Contact.

Every frame the engine sees has one column per canonical field it carries, named as below, with
``None``/``NA`` for "no value". The member mapping (include/config/member_mapping.yaml) maps table
columns onto these names; ``cc_sync.constant_contact.convert`` maps CC contacts onto them. Lengths
are Constant Contact's own limits (swagger ``ContactResource`` and ``JsonImportContact``), so a
value that would be refused is caught before it costs an API call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

CUSTOM_FIELD_PREFIX = "cf:"


class FieldKind(StrEnum):
    TEXT = "text"
    INTEGER = "integer"


@dataclass(frozen=True)
class CanonicalField:
    name: str
    kind: FieldKind = FieldKind.TEXT
    max_length: int | None = None
    description: str = ""


_FIELDS = (
    # The bulk import caps `email` at 50 characters although a contact holds 80: the tighter one wins.
    CanonicalField("email", max_length=50, description="primary email address"),
    CanonicalField("first_name", max_length=50),
    CanonicalField("last_name", max_length=50),
    CanonicalField("company_name", max_length=50),
    CanonicalField("job_title", max_length=50),
    CanonicalField("phone_home", max_length=25),
    CanonicalField("phone_work", max_length=25),
    CanonicalField("phone_mobile", max_length=25),
    CanonicalField("phone_other", max_length=25),
    CanonicalField("street", max_length=255, description="street address (CC kind 'home')"),
    CanonicalField("city", max_length=50),
    CanonicalField("state", max_length=50, description="state or province, as a code or a name"),
    CanonicalField("postal_code", max_length=50),
    CanonicalField("country", max_length=50),
    # CC has no birthday date, only month and day used together.
    CanonicalField("birthday_month", kind=FieldKind.INTEGER),
    CanonicalField("birthday_day", kind=FieldKind.INTEGER),
)

CANONICAL_FIELDS: dict[str, CanonicalField] = {f.name: f for f in _FIELDS}
CUSTOM_FIELD_MAX_LENGTH = 255
MAX_CUSTOM_FIELDS_PER_CONTACT = 25

# Key and status columns that travel beside the canonical fields in engine frames.
MEMBER_ID = "member_id"
CONTACT_ID = "contact_id"
UPDATED_AT = "updated_at"  # the side's last-modified time of the record (UTC, tz-aware)
OPTED_OUT = "opted_out"  # bool: the person may not be emailed (CC unsubscribed / member opt-out flag)
OPTED_OUT_AT = "opted_out_at"  # when the opt-out happened, if known
DELETED = "deleted"  # bool: CC contact deleted (status=deleted); members are never deleted by the sync
TAG_IDS = "tag_ids"  # CC contacts: the contact's tag ids, sorted and comma-separated ("" for none)


def is_custom_field(name: str) -> bool:
    return name.startswith(CUSTOM_FIELD_PREFIX)


def custom_field_name(name: str) -> str:
    """``cf:favourite_colour`` -> ``favourite_colour`` (the CC custom field's ``name``)."""
    return name[len(CUSTOM_FIELD_PREFIX) :] if is_custom_field(name) else name


def field_max_length(name: str) -> int | None:
    if is_custom_field(name):
        return CUSTOM_FIELD_MAX_LENGTH
    field = CANONICAL_FIELDS.get(name)
    return field.max_length if field else None


def is_known_field(name: str) -> bool:
    return name in CANONICAL_FIELDS or (is_custom_field(name) and len(name) > len(CUSTOM_FIELD_PREFIX))
