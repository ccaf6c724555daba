"""Request validation as Constant Contact applies it, before any route touches the data.

Each served operation's JSON body and query parameters are checked for the types, formats (uuid,
date-time), lengths, enums, item counts and required fields the official v3 spec documents for them,
and anything else is refused with a 400 in CC's error array. The rules below are written by hand
from the spec's definitions (the spec itself stays outside the project) and the contract suite
(tests/contract) fuzzes them against it, so a rule that drifts from the spec fails the build.

Business rules that need the account (a list must exist, an email must be unique, a phone kind is
one of four) stay in ``store.py``; this layer only guarantees the shapes ``store.py`` relies on, so
a malformed item is a 400 rather than a 500 from using a number as a dict.

Objects accept properties the spec does not name (Swagger objects are open unless they say
otherwise); ``null`` is never a valid value (Swagger 2.0 has no nullable).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from include.cc_emulator.errors import validation_error

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# RFC 3339 date-time (what the spec's "date-time" format means): date, T, time, optional fraction, zone.
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII)


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def is_date_time(value: str) -> bool:
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class Rule:
    """One JSON value's constraints; ``check`` raises a 400 ``ApiError`` naming where it failed."""

    def check(self, value: Any, where: str) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Str(Rule):
    max_length: int | None = None
    enum: tuple[str, ...] | None = None
    format: str | None = None  # "uuid" or "date-time"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, str):
            raise validation_error(f"{where} must be a string")
        if self.max_length is not None and len(value) > self.max_length:
            raise validation_error(f"{where} must be at most {self.max_length} characters, got {len(value)}")
        if self.enum is not None and value not in self.enum:
            raise validation_error(f"{where} must be one of {list(self.enum)}")
        if self.format == "uuid" and not is_uuid(value):
            raise validation_error(f"{where} must be a UUID")
        if self.format == "date-time" and not is_date_time(value):
            raise validation_error(f"{where} must be an ISO-8601 date-time")


@dataclass(frozen=True)
class Int(Rule):
    minimum: int | None = None
    maximum: int | None = None

    def check(self, value: Any, where: str) -> None:
        # JSON true/false are not numbers, though Python's bool is an int.
        if isinstance(value, bool) or not isinstance(value, int):
            raise validation_error(f"{where} must be an integer")
        if self.minimum is not None and value < self.minimum:
            raise validation_error(f"{where} must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise validation_error(f"{where} must be at most {self.maximum}")


@dataclass(frozen=True)
class Bool(Rule):
    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, bool):
            raise validation_error(f"{where} must be true or false")


@dataclass(frozen=True)
class Arr(Rule):
    items: Rule
    max_items: int | None = None
    min_items: int = 0

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise validation_error(f"{where} must be an array")
        if len(value) < self.min_items:
            raise validation_error(f"{where} needs at least {self.min_items} item(s)")
        if self.max_items is not None and len(value) > self.max_items:
            raise validation_error(f"{where} accepts at most {self.max_items} items, got {len(value)}")
        for index, item in enumerate(value):
            self.items.check(item, f"{where}[{index}]")


@dataclass(frozen=True)
class Obj(Rule):
    properties: Mapping[str, Rule]
    required: tuple[str, ...] = ()

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise validation_error(
                f"{where} must be an object" if where else "the body must be a JSON object"
            )
        for name in self.required:
            if name not in value:
                raise validation_error(f"{_join(where, name)} is required")
        for name, rule in self.properties.items():
            if name in value:
                rule.check(value[name], _join(where, name))


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def check_body(body: Any, rule: Obj) -> dict[str, Any]:
    """``body`` when it satisfies ``rule``; otherwise a 400 in CC's error array."""
    rule.check(body, "")
    return body


# --------------------------------------------------------------------------------------------------
# Bodies

UUID = Str(format="uuid")
DATE_TIME = Str(format="date-time")
TEXT = Str()
NAME = Str(max_length=50)

_CONTACT_CUSTOM_FIELD = Obj(
    {"custom_field_id": UUID, "value": Str(max_length=255), "choice_ids": Arr(TEXT)},
    required=("custom_field_id",),
)
_PHONE = Obj({"phone_number": Str(max_length=25), "kind": TEXT})
_ADDRESS_PARTS: dict[str, Rule] = {
    "kind": TEXT,
    "street": Str(max_length=255),
    "city": NAME,
    "state": NAME,
    "postal_code": NAME,
    "country": NAME,
}
_ADDRESS = Obj(_ADDRESS_PARTS, required=("kind",))
_NOTE = Obj({"note_id": UUID, "created_at": DATE_TIME, "content": Str(max_length=2000)})
_SMS_CHANNEL = Obj(
    {
        "full_sms_address": TEXT,
        "sms_channel_consents": Arr(
            Obj(
                {"sms_consent_permission": TEXT, "consent_type": TEXT, "consent_medium_details": TEXT},
                required=("consent_type", "sms_consent_permission"),
            )
        ),
    },
    required=("full_sms_address", "sms_channel_consents"),
)
_CONTACT_FIELDS: dict[str, Rule] = {
    "first_name": NAME,
    "last_name": NAME,
    "job_title": NAME,
    "company_name": NAME,
    "birthday_month": Int(),
    "birthday_day": Int(),
    "anniversary": Str(max_length=10),
    "custom_fields": Arr(_CONTACT_CUSTOM_FIELD, max_items=25),
    "phone_numbers": Arr(_PHONE, max_items=3),
    "street_addresses": Arr(_ADDRESS, max_items=3),
    "list_memberships": Arr(UUID, max_items=50),
    "taggings": Arr(UUID, max_items=50),
    "notes": Arr(_NOTE, max_items=150),
    "sms_channel": _SMS_CHANNEL,
}

CONTACT_POST = Obj(
    {
        **_CONTACT_FIELDS,
        "email_address": Obj(
            {"address": Str(max_length=80), "permission_to_send": TEXT}, required=("address",)
        ),
        "create_source": TEXT,
    }
)
CONTACT_PUT = Obj(
    {
        **_CONTACT_FIELDS,
        "email_address": Obj(
            {
                "address": Str(max_length=80),
                "permission_to_send": TEXT,
                "created_at": DATE_TIME,
                "updated_at": DATE_TIME,
                "opt_in_date": DATE_TIME,
                "opt_out_source": TEXT,
                "opt_out_date": DATE_TIME,
                "opt_out_reason": Str(max_length=255),
                "confirm_status": TEXT,
            },
            required=("address",),
        ),
        "update_source": TEXT,
    },
    required=("update_source",),
)
SIGN_UP_FORM = Obj(
    {
        "email_address": NAME,
        "first_name": NAME,
        "last_name": NAME,
        "job_title": NAME,
        "company_name": NAME,
        "phone_number": Str(max_length=25),
        "list_memberships": Arr(UUID, max_items=50, min_items=1),
        "custom_fields": Arr(Obj({"custom_field_id": UUID, "value": Str(max_length=255)}), max_items=50),
        "anniversary": TEXT,
        "birthday_month": Int(),
        "birthday_day": Int(),
        "street_address": _ADDRESS,
        "sms_channel": Obj(
            {
                "sms_address": TEXT,
                "dial_code": TEXT,
                "country_code": TEXT,
                "sms_channel_consents": Arr(
                    Obj(
                        {
                            "sms_consent_permission": TEXT,
                            "consent_type": TEXT,
                            "consent_medium_type": TEXT,
                            "consent_medium_url": TEXT,
                            "consent_medium_details": TEXT,
                            "advertised_frequency": Int(),
                            "advertised_interval": TEXT,
                        },
                        required=(
                            "consent_medium_details",
                            "consent_medium_type",
                            "consent_medium_url",
                            "consent_type",
                            "sms_consent_permission",
                        ),
                    )
                ),
            },
            required=("country_code", "dial_code", "sms_address", "sms_channel_consents"),
        ),
    },
    required=("list_memberships",),
)


CONTACTS_JSON_IMPORT = Obj(
    {
        # Rows are only required to be objects: CC checks their fields while importing and reports a
        # bad row (too long, not an email, an unknown cf: name) in the activity's errors, importing the
        # rest; store.parse_import_row does the same.
        "import_data": Arr(Obj({})),
        "list_ids": Arr(UUID, max_items=50, min_items=1),
        "sms_permission_to_send": TEXT,
    },
    required=("import_data", "list_ids"),
)
_EXCLUDE = Obj({"contact_ids": Arr(UUID)})
LIST_MEMBERSHIPS = Obj(
    {
        "source": Obj(
            {
                "list_ids": Arr(UUID, max_items=50),
                "all_active_contacts": Bool(),
                "contact_ids": Arr(UUID, max_items=500),
                "tag_ids": Arr(UUID),
                "engagement_level": TEXT,
                "segment_id": Int(),
            }
        ),
        "exclude": _EXCLUDE,
        "list_ids": Arr(UUID, max_items=50),
    },
    required=("list_ids", "source"),
)
# TagPost / TagPut: a name of 1 to 255 characters (the store refuses a blank one); tag_source on POST.
TAG_INPUT = Obj({"name": Str(max_length=255), "tag_source": TEXT}, required=("name",))
# TagAddRemoveContacts: one source (mutually exclusive, checked with the account), the tags to apply.
TAGGING = Obj(
    {
        "source": Obj(
            {
                "contact_ids": Arr(UUID, max_items=500),
                "list_ids": Arr(UUID, max_items=50),
                "tag_ids": Arr(UUID, max_items=50),
                "all_active_contacts": Bool(),
                "new_subscriber": Bool(),
            }
        ),
        "exclude": _EXCLUDE,
        "tag_ids": Arr(UUID, max_items=50),
    },
    required=("source", "tag_ids"),
)
CONTACT_DELETE = Obj({"contact_ids": Arr(UUID, max_items=500), "list_ids": Arr(UUID, max_items=50)})
LIST_DELETE = Obj({"list_ids": Arr(UUID, max_items=100)}, required=("list_ids",))
# ListInput names name and favorite; the emulator keeps the description CC's UI sets, as a string.
LIST_INPUT = Obj({"name": Str(max_length=255), "favorite": Bool(), "description": TEXT}, required=("name",))
CUSTOM_FIELD_POST = Obj(
    {
        "label": NAME,
        "type": Str(max_length=20),
        "metadata": Obj(
            {
                "display_type": TEXT,
                "allow_negative": Bool(),
                "decimal_places": Int(),
                "currency_code": TEXT,
                "integer": Bool(),
                "display_format": TEXT,
            }
        ),
        "choices": Arr(Obj({"choice_label": Str(max_length=255), "display_order": Int()}), max_items=100),
        "version": Int(),
    }
)
CUSTOM_FIELD_PUT = Obj(
    {
        "label": NAME,
        "choices": Arr(
            Obj({"choice_id": Int(), "choice_label": Str(max_length=255), "display_order": Int()}),
            max_items=100,
        ),
    }
)


# --------------------------------------------------------------------------------------------------
# Query parameters: each value arrives as text, so the rules parse it the way the spec's type says.


@dataclass(frozen=True)
class Param:
    """One query parameter: its Swagger type (as text), an enum, a csv list of enum values, bounds."""

    type: str = "string"  # string, integer, boolean
    enum: tuple[str, ...] | None = None
    csv: bool = False
    format: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    repeatable: bool = False

    def check(self, name: str, values: Sequence[str]) -> None:
        if len(values) > 1 and not self.repeatable:
            raise validation_error(f"{name} may be given once")
        for value in values:
            self._check_one(name, value)

    def _check_one(self, name: str, value: str) -> None:
        if self.type == "boolean":
            if value not in ("true", "false"):
                raise validation_error(f"{name} must be true or false")
            return
        if self.type == "integer":
            if not re.fullmatch(r"-?\d{1,18}", value):
                raise validation_error(f"{name} must be an integer")
            number = int(value)
            if (self.minimum is not None and number < self.minimum) or (
                self.maximum is not None and number > self.maximum
            ):
                raise validation_error(f"{name} must be from {self.minimum} to {self.maximum}")
            return
        parts = value.split(",") if self.csv else [value]
        for part in parts:
            if self.enum is not None and part.strip() not in self.enum:
                raise validation_error(f"{name} accepts {list(self.enum)}, not {part!r}")
            if self.format == "uuid" and not is_uuid(part.strip()):
                raise validation_error(f"{name} must hold UUIDs")
            if self.format == "date-time" and not is_date_time(part):
                raise validation_error(f"{name} must be an ISO-8601 date-time")


_WHEN = Param(format="date-time")
_INCLUDE = Param(
    csv=True,
    enum=("custom_fields", "list_memberships", "phone_numbers", "street_addresses", "taggings", "notes"),
)
_MEMBERSHIP_COUNT = Param(enum=("all", "active"))
_TRACKING_LIMIT = Param(type="integer", minimum=1, maximum=500)

QUERY_RULES: dict[str, dict[str, Param]] = {
    "GET /v3/contacts": {
        "status": Param(
            csv=True,
            enum=(
                "all",
                "active",
                "deleted",
                "not_set",
                "pending_confirmation",
                "temp_hold",
                "unsubscribed",
            ),
        ),
        "tags": Param(csv=True, format="uuid"),
        **dict.fromkeys(
            (
                "updated_after",
                "updated_before",
                "created_after",
                "created_before",
                "optout_after",
                "optout_before",
            ),
            _WHEN,
        ),
        "include": _INCLUDE,
        "sms_status": Param(
            csv=True, enum=("all", "explicit", "unsubscribed", "pending_confirmation", "not_set")
        ),
        "include_count": Param(type="boolean"),
        "limit": Param(type="integer", minimum=1, maximum=500),
    },
    "GET /v3/contacts/{contact_id}": {"include": _INCLUDE},
    # The spec's state enum leaves out "initialized", which GET /v3/activities/{id} does answer.
    "GET /v3/activities": {
        "limit": Param(type="integer", minimum=1, maximum=500),
        "state": Param(enum=("initialized", "processing", "completed", "cancelled", "failed", "timed_out")),
    },
    "GET /v3/contact_lists": {
        "limit": Param(type="integer", minimum=1, maximum=1000),
        "include_count": Param(type="boolean"),
        "include_membership_count": _MEMBERSHIP_COUNT,
        "status": Param(enum=("all", "active", "deleted")),
        "channel_type": Param(enum=("email", "sms")),
        "include_sms_membership_count": Param(type="boolean"),
    },
    "GET /v3/contact_lists/{list_id}": {"include_membership_count": _MEMBERSHIP_COUNT},
    "GET /v3/contact_tags": {
        "limit": Param(type="integer", minimum=1, maximum=500),
        "include_count": Param(type="boolean"),
    },
    "GET /v3/contact_tags/{tag_id}": {"include_count": Param(type="boolean")},
    "GET /v3/contact_custom_fields": {"limit": Param(type="integer", minimum=1, maximum=100)},
    "GET /v3/account/summary": {"extra_fields": Param(csv=True, enum=("physical_address", "company_logo"))},
    "GET /v3/emails": {
        "limit": Param(type="integer", minimum=1, maximum=500),
        "before_date": _WHEN,
        "after_date": _WHEN,
    },
    **{
        f"GET /v3/reports/email_reports/{{campaign_activity_id}}/tracking/{kind}": {"limit": _TRACKING_LIMIT}
        for kind in ("sends", "opens", "optouts")
    },
    "GET /v3/reports/email_reports/{campaign_activity_id}/tracking/clicks": {
        "limit": _TRACKING_LIMIT,
        "url_id": Param(type="integer"),
    },
    "GET /v3/reports/email_reports/{campaign_activity_id}/tracking/bounces": {
        "limit": _TRACKING_LIMIT,
        "bounce_code": Param(enum=("B", "D", "F", "S", "V", "X", "Z"), repeatable=True),
    },
}


def check_query(endpoint: str, items: Sequence[tuple[str, str]]) -> None:
    """Check the query parameters of ``endpoint`` ("GET /v3/contacts"); unknown names are let through."""
    rules = QUERY_RULES.get(endpoint)
    if not rules:
        return
    grouped: dict[str, list[str]] = {}
    for name, value in items:
        grouped.setdefault(name, []).append(value)
    for name, values in grouped.items():
        rule = rules.get(name)
        if rule is not None:
            rule.check(name, values)
