"""Constant Contact contacts ⇄ canonical rows (pure functions: no HTTP, no Airflow).

- :func:`contacts_to_frame`: contacts as ``GET /v3/contacts`` returns them → one canonical frame.
- :func:`frame_to_import_rows`: a canonical frame → ``JsonImportContact`` rows for the bulk import.
- :func:`merge_contact_for_put`: a contact as read + canonical changes → the full ``PUT`` body.

Consent rule kept here: nothing built by this module can raise a contact's permission. The import
rows carry no permission at all (CC keeps an existing contact's permission on import), and a PUT
body keeps the permission as read, or lowers it to ``unsubscribed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from cc_sync.constant_contact.models import PermissionToSend, UpdateSource
from cc_sync.fields import (
    CANONICAL_FIELDS,
    CONTACT_ID,
    CUSTOM_FIELD_PREFIX,
    DELETED,
    OPTED_OUT,
    OPTED_OUT_AT,
    TAG_IDS,
    UPDATED_AT,
    FieldKind,
    custom_field_name,
    is_custom_field,
)

# Top-level contact properties with the same name in the canonical vocabulary.
_TOP_LEVEL = ("first_name", "last_name", "company_name", "job_title", "birthday_month", "birthday_day")
# Canonical phone field -> CC phone ``kind``.
PHONE_KINDS = {"phone_home": "home", "phone_work": "work", "phone_mobile": "mobile", "phone_other": "other"}
# Canonical address field -> CC street address property.
ADDRESS_PROPERTIES = {
    "street": "street",
    "city": "city",
    "state": "state",
    "postal_code": "postal_code",
    "country": "country",
}
# The canonical address is CC's "home" address (fields.py); on read, another kind stands in for it.
ADDRESS_KIND = "home"
# Canonical field -> JsonImportContact key (custom fields keep their "cf:<name>" key).
IMPORT_KEYS = {
    "email": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "company_name": "company_name",
    "job_title": "job_title",
    "phone_home": "home_phone",
    "phone_work": "work_phone",
    "phone_mobile": "mobile_phone",
    "phone_other": "other_phone",
    "street": "street",
    "city": "city",
    "state": "state",
    "postal_code": "zip",
    "country": "country",
    "birthday_month": "birthday_month",
    "birthday_day": "birthday_day",
}
CANONICAL_BY_IMPORT_KEY = {v: k for k, v in IMPORT_KEYS.items()}
STATUS_COLUMNS = (UPDATED_AT, OPTED_OUT, OPTED_OUT_AT, DELETED)


def _pick_address(addresses: list[dict[str, Any]] | None) -> dict[str, Any]:
    if not addresses:
        return {}
    for address in addresses:
        if address.get("kind") == ADDRESS_KIND:
            return address
    return addresses[0]


def _phones_by_kind(phones: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The first number of each kind (CC allows three numbers, and in principle two of a kind)."""
    found: dict[str, Any] = {}
    for phone in phones or ():
        found.setdefault(phone.get("kind"), phone.get("phone_number"))
    return found


def _timestamps(values: list[str | None]) -> pd.Series:
    parsed = pd.to_datetime(pd.Series(values, dtype="object"), utc=True, format="ISO8601")
    return parsed.dt.as_unit("us")


def contacts_to_frame(contacts: Iterable[dict[str, Any]], custom_fields: Mapping[str, str]) -> pd.DataFrame:
    """One canonical row per contact.

    :param contacts: contacts as the API returns them (with ``include=custom_fields,phone_numbers,
        street_addresses`` for those columns to be filled).
    :param custom_fields: ``custom_field_id`` -> custom field ``name``; each becomes a
        ``cf:<name>`` column. Values of custom fields not in the mapping are ignored.
    :return: columns ``contact_id``, every canonical field, the ``cf:`` columns, then
        ``updated_at`` (the later of the contact's and its email address's ``updated_at``: an
        opt-out only changes the latter), ``opted_out``, ``opted_out_at``, ``deleted`` and
        ``tag_ids`` (the contact's ``taggings``, sorted and comma-separated).
    """
    cf_columns = {cf_id: f"{CUSTOM_FIELD_PREFIX}{name}" for cf_id, name in custom_fields.items()}
    contacts = contacts if isinstance(contacts, list) else list(contacts)
    # One list comprehension per column: far quicker than one loop appending to 25 lists.
    emails = [c.get("email_address") or {} for c in contacts]
    phones = [_phones_by_kind(c.get("phone_numbers")) for c in contacts]
    addresses = [_pick_address(c.get("street_addresses")) for c in contacts]
    columns: dict[str, list[Any]] = {CONTACT_ID: [c.get("contact_id") for c in contacts]}
    columns["email"] = [e.get("address") for e in emails]
    for name in CANONICAL_FIELDS:
        if name in _TOP_LEVEL:
            columns[name] = [c.get(name) for c in contacts]
        elif name in PHONE_KINDS:
            kind = PHONE_KINDS[name]
            columns[name] = [p.get(kind) for p in phones]
        elif name in ADDRESS_PROPERTIES:
            prop = ADDRESS_PROPERTIES[name]
            columns[name] = [a.get(prop) for a in addresses]
    if cf_columns:
        values = [
            {cf.get("custom_field_id"): cf.get("value") for cf in c.get("custom_fields") or ()}
            for c in contacts
        ]
        for cf_id, column in cf_columns.items():
            columns[column] = [v.get(cf_id) for v in values]
    columns = {name: columns[name] for name in (CONTACT_ID, *CANONICAL_FIELDS, *cf_columns.values())}
    unsubscribed = [e.get("permission_to_send") == PermissionToSend.UNSUBSCRIBED for e in emails]
    contact_updated = [c.get("updated_at") for c in contacts]
    email_updated = [e.get("updated_at") for e in emails]
    opted_out_at = [
        e.get("opt_out_date") if out else None for e, out in zip(emails, unsubscribed, strict=True)
    ]
    deleted = [bool(c.get("deleted_at")) or c.get("status") == "deleted" for c in contacts]

    frame = pd.DataFrame(
        {
            name: pd.array(values, dtype="Int64" if _is_integer(name) else "string")
            for name, values in columns.items()
        }
    )
    contact_ts, email_ts = _timestamps(contact_updated), _timestamps(email_updated)
    frame[UPDATED_AT] = contact_ts.where(email_ts.isna() | (contact_ts >= email_ts), email_ts).array
    frame[OPTED_OUT] = pd.array(unsubscribed, dtype="bool")
    frame[OPTED_OUT_AT] = _timestamps(opted_out_at).array
    frame[DELETED] = pd.array(deleted, dtype="bool")
    # A text column, not a list one: it travels through the XCom store and the engine like any other.
    frame[TAG_IDS] = pd.array([",".join(sorted(c.get("taggings") or ())) for c in contacts], dtype="string")
    return frame


def _is_integer(name: str) -> bool:
    field = CANONICAL_FIELDS.get(name)
    return field is not None and field.kind is FieldKind.INTEGER


def _is_blank(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value) or value == ""


def frame_to_import_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Canonical rows → ``JsonImportContact`` dicts, in the frame's order.

    Missing and empty values are left out of each row, so an import never blanks a field in CC
    (CC only updates the properties a row includes). Columns that are not canonical fields
    (``member_id``, ``contact_id``, status columns...) are ignored. No permission is ever sent.
    """
    rows: list[dict[str, Any]] = [{} for _ in range(len(frame))]
    for column in frame.columns:
        if column in IMPORT_KEYS:
            key = IMPORT_KEYS[column]
        elif is_custom_field(column) and len(column) > len(CUSTOM_FIELD_PREFIX):
            key = column
        else:
            continue
        series = frame[column]
        present = series.notna()
        if series.dtype != "Int64":
            present &= (series.astype("string").str.strip() != "").fillna(False)
        present = present.to_numpy(dtype=bool)
        positions = present.nonzero()[0]
        for position, value in zip(positions.tolist(), series.iloc[positions].tolist(), strict=True):
            rows[position][key] = value
    return rows


def _clean(value: Any) -> Any:
    return None if _is_blank(value) else value


def merge_contact_for_put(
    existing: Mapping[str, Any],
    changes: Mapping[str, object],
    update_source: str | UpdateSource,
    *,
    custom_field_ids: Mapping[str, str] | None = None,
    opt_out_reason: str | None = None,
) -> dict[str, Any]:
    """The complete ``PUT /v3/contacts/{id}`` body: the contact as read, with ``changes`` applied.

    ``PUT`` nulls every top-level property it is not sent, so the body carries them all.

    :param existing: the contact as read (``GET /v3/contacts/{id}?include=custom_fields,
        list_memberships,phone_numbers,street_addresses``: sub-resources that were not read are
        left out of the body, and CC leaves omitted sub-resources as they are).
    :param changes: canonical field -> new value (``None`` clears the field), and optionally
        ``opted_out: True`` to unsubscribe the contact. ``opted_out: False`` is refused: the sync
        never re-subscribes anyone.
    :param update_source: ``Contact`` when the person asked for the change, else ``Account``.
    :param custom_field_ids: custom field ``name`` -> ``custom_field_id``, for ``cf:`` changes.
    :param opt_out_reason: stored with an unsubscribe (at most 255 characters).
    """
    unknown = [k for k in changes if k not in CANONICAL_FIELDS and not is_custom_field(k) and k != OPTED_OUT]
    if unknown:
        raise ValueError(f"not canonical contact fields: {sorted(unknown)}")
    source = UpdateSource(update_source)
    email = dict(existing.get("email_address") or {})
    permission = email.get("permission_to_send")
    if OPTED_OUT in changes:
        if changes[OPTED_OUT] is not True:
            if permission == PermissionToSend.UNSUBSCRIBED:
                raise ValueError(
                    "refusing to re-subscribe an opted-out contact: consent is the contact's own"
                )
        else:
            permission = PermissionToSend.UNSUBSCRIBED.value
    email_body: dict[str, Any] = {
        "address": _clean(changes["email"]) if "email" in changes else email.get("address")
    }
    if email_body["address"] is None:
        raise ValueError("a contact needs an email address: the change would remove it")
    if permission:
        email_body["permission_to_send"] = permission
    if changes.get(OPTED_OUT) is True:
        reason = opt_out_reason if opt_out_reason is not None else email.get("opt_out_reason")
        if reason:
            email_body["opt_out_reason"] = str(reason)[:255]

    body: dict[str, Any] = {"email_address": email_body, "update_source": source.value}
    for name in (*_TOP_LEVEL, "anniversary"):
        value = changes[name] if name in changes else existing.get(name)
        if not _is_blank(value):
            body[name] = int(value) if name.startswith("birthday_") else value

    if "phone_numbers" in existing or any(name in changes for name in PHONE_KINDS):
        phones = {
            p["kind"]: p.get("phone_number") for p in existing.get("phone_numbers") or [] if "kind" in p
        }
        for name, kind in PHONE_KINDS.items():
            if name in changes:
                phones[kind] = _clean(changes[name])
        body["phone_numbers"] = [{"phone_number": n, "kind": k} for k, n in phones.items() if n]

    if "street_addresses" in existing or any(name in changes for name in ADDRESS_PROPERTIES):
        addresses = [
            {k: a.get(k) for k in ("kind", "street", "city", "state", "postal_code", "country") if a.get(k)}
            for a in existing.get("street_addresses") or []
        ]
        if any(name in changes for name in ADDRESS_PROPERTIES):
            target = next((a for a in addresses if a.get("kind") == ADDRESS_KIND), None)
            if target is None:
                target = {"kind": ADDRESS_KIND}
                addresses.append(target)
            for name, prop in ADDRESS_PROPERTIES.items():
                if name in changes:
                    target[prop] = _clean(changes[name])
            addresses = [{k: v for k, v in a.items() if v is not None} for a in addresses]
            addresses = [a for a in addresses if set(a) - {"kind"}]
        body["street_addresses"] = addresses

    cf_changes = {custom_field_name(k): v for k, v in changes.items() if is_custom_field(k)}
    if "custom_fields" in existing or cf_changes:
        ids = dict(custom_field_ids or {})
        missing = sorted(name for name in cf_changes if name not in ids)
        if missing:
            raise ValueError(f"no custom_field_id known for custom fields {missing}")
        values = {cf["custom_field_id"]: cf.get("value") for cf in existing.get("custom_fields") or []}
        for name, value in cf_changes.items():
            values[ids[name]] = _clean(value)
        body["custom_fields"] = [
            {"custom_field_id": cf_id, "value": value} for cf_id, value in values.items() if value is not None
        ]

    for name in ("list_memberships", "taggings"):
        if name in existing:
            body[name] = list(existing[name] or [])
    return body
