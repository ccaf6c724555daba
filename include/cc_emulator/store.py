"""The account's data: contacts, contact lists and custom fields, with the rules CC applies to them.

Everything lives in plain dicts kept in the JSON shape the API answers with (``ContactResource``,
``ContactList``, ``CustomField``), plus the indexes that keep the hot paths cheap: contacts by
lower-cased email, contacts in creation order (the stable order cursor pagination walks), and the
members of each list. Nothing here knows about HTTP; the app and the admin routes call these methods.

Behaviour copied from the real API (sources in /work/shared/notes/constant-contact-api.md):

- ``PUT /contacts/{id}`` nulls omitted top-level fields but keeps omitted subresources.
- A change of ``email_address.permission_to_send`` moves ``email_address.updated_at`` and the opt-out
  fields, but not the contact's own ``updated_at``, so ``updated_after`` misses opt-outs while
  ``optout_after`` finds them.
- Imports give new contacts implicit permission (opt-in source Account), change existing contacts
  only in the fields sent, and never put an unsubscribed contact back on a list.
- Deleting a contact keeps it (``status=deleted``, ``deleted_at``) and drops its list memberships.

Every move of an address from ``unsubscribed`` to any other permission, by any path, is counted in
``resubscribes`` so tests can prove the sync never does it.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from include.cc_emulator.clock import normalise_timestamp, now_timestamp
from include.cc_emulator.errors import ApiError, conflict, not_found, validation_error


class Permission(StrEnum):
    EXPLICIT = "explicit"
    IMPLICIT = "implicit"
    NOT_SET = "not_set"
    PENDING_CONFIRMATION = "pending_confirmation"
    TEMP_HOLD = "temp_hold"
    UNSUBSCRIBED = "unsubscribed"


class Source(StrEnum):
    CONTACT = "Contact"
    ACCOUNT = "Account"


class StatusFilter(StrEnum):
    """Values of ``GET /contacts?status=``."""

    ALL = "all"
    ACTIVE = "active"
    DELETED = "deleted"
    NOT_SET = "not_set"
    PENDING_CONFIRMATION = "pending_confirmation"
    TEMP_HOLD = "temp_hold"
    UNSUBSCRIBED = "unsubscribed"


class Subresource(StrEnum):
    CUSTOM_FIELDS = "custom_fields"
    LIST_MEMBERSHIPS = "list_memberships"
    PHONE_NUMBERS = "phone_numbers"
    STREET_ADDRESSES = "street_addresses"
    TAGGINGS = "taggings"
    NOTES = "notes"


SUBRESOURCES = frozenset(s.value for s in Subresource)
ACTIVE_PERMISSIONS = frozenset({Permission.EXPLICIT.value, Permission.IMPLICIT.value})
# Top-level fields a PUT overwrites with null when they are left out (ContactPutRequest).
NULLABLE_FIELDS = (
    "first_name",
    "last_name",
    "job_title",
    "company_name",
    "birthday_month",
    "birthday_day",
    "anniversary",
)
TEXT_LIMITS = {"first_name": 50, "last_name": 50, "job_title": 50, "company_name": 50, "anniversary": 10}
PHONE_KINDS = ("home", "work", "mobile", "other")
ADDRESS_KINDS = ("home", "work", "other")
ADDRESS_LIMITS = {"street": 255, "city": 50, "state": 50, "postal_code": 50, "country": 50}
MAX_PHONES = 3
MAX_ADDRESSES = 3
MAX_CUSTOM_FIELDS_PER_CONTACT = 25
MAX_LISTS_PER_CONTACT = 50
MAX_TAGS_PER_CONTACT = 50
MAX_TAG_NAME = 255
MAX_EMAIL_LENGTH = 80
MAX_IMPORT_EMAIL_LENGTH = 50
MAX_CUSTOM_FIELD_VALUE = 255

# CC reports a malformed address as a correctable error; a syntax check is all it does at import time.
_EMAIL_PATTERN = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)


def is_valid_email(address: str) -> bool:
    return bool(_EMAIL_PATTERN.match(address)) and ".." not in address


def new_id() -> str:
    return str(uuid.uuid4())


def contact_status(contact: dict[str, Any]) -> str:
    """The contact's value for the ``status`` filter: ``deleted`` or its email permission."""
    if contact.get("deleted_at"):
        return StatusFilter.DELETED.value
    return contact["email_address"].get("permission_to_send", Permission.NOT_SET.value)


def redact_email(address: str) -> str:
    """``jane.doe@example.org`` -> ``j***@example.org``: enough to tell rows apart, not to identify."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


# --------------------------------------------------------------------------------------------------
# Field validation shared by POST, PUT, the admin edit path and the seeder


def _check_text(body: dict[str, Any], name: str, limit: int) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, str):
        raise validation_error(f"{name} must be a string")
    if len(value) > limit:
        raise validation_error(f"{name} must be at most {limit} characters, got {len(value)}")


def _check_birthday(body: dict[str, Any]) -> None:
    for name, upper in (("birthday_month", 12), ("birthday_day", 31)):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
            raise validation_error(f"{name} must be an integer from 1 to {upper}, got {value!r}")


def _check_email_address(value: Any, *, required: bool) -> dict[str, Any] | None:
    if value is None:
        if required:
            raise validation_error("email_address is required")
        return None
    if not isinstance(value, dict) or not isinstance(value.get("address"), str):
        raise validation_error("email_address must be an object with an address")
    address = value["address"].strip()
    if len(address) > MAX_EMAIL_LENGTH:
        raise validation_error(f"email_address.address must be at most {MAX_EMAIL_LENGTH} characters")
    if not is_valid_email(address):
        raise validation_error("email_address.address is not a valid email address")
    permission = value.get("permission_to_send")
    if permission is not None and permission not in Permission.__members__.values():
        raise validation_error(
            f"email_address.permission_to_send must be one of {[p.value for p in Permission]}"
        )
    reason = value.get("opt_out_reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 255):
        raise validation_error("email_address.opt_out_reason must be a string of at most 255 characters")
    return {**value, "address": address}


def _check_source(value: Any, name: str) -> str:
    if value not in (Source.CONTACT.value, Source.ACCOUNT.value):
        raise validation_error(f"{name} is required and must be 'Contact' or 'Account'")
    return value


@dataclass
class ImportResult:
    """What one ``contacts_json_import`` did, in the counts ``ActivityImport.status`` reports."""

    items_total_count: int = 0
    person_count: int = 0
    created_count: int = 0
    updated_count: int = 0
    error_count: int = 0
    correctable_count: int = 0
    cannot_add_to_list_count: int = 0
    errors: list[str] = field(default_factory=list)


class RowError(Exception):
    def __init__(self, reason: str, *, correctable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.correctable = correctable


@dataclass(frozen=True)
class ContactQuery:
    """The filters of ``GET /contacts``, normalised so they can travel inside a cursor."""

    statuses: tuple[str, ...] = ()
    email: str | None = None
    lists: tuple[str, ...] = ()
    updated_after: str | None = None
    updated_before: str | None = None
    created_after: str | None = None
    created_before: str | None = None
    optout_after: str | None = None
    optout_before: str | None = None

    def predicate(self) -> Callable[[dict[str, Any]], bool]:
        checks: list[Callable[[dict[str, Any]], bool]] = []
        statuses = set(self.statuses)
        if not statuses:
            checks.append(lambda c: not c.get("deleted_at"))
        elif StatusFilter.ALL.value not in statuses:
            wanted = statuses - {StatusFilter.ACTIVE.value}
            if StatusFilter.ACTIVE.value in statuses:
                wanted |= ACTIVE_PERMISSIONS
            checks.append(lambda c: contact_status(c) in wanted)
        if self.email is not None:
            email = self.email.lower()
            checks.append(lambda c: c["email_address"]["address"].lower() == email)
        if self.lists:
            lists = set(self.lists)
            checks.append(lambda c: not lists.isdisjoint(c["list_memberships"]))
        for key, op in (
            ("updated_after", ">"),
            ("updated_before", "<"),
            ("created_after", ">"),
            ("created_before", "<"),
        ):
            bound = getattr(self, key)
            if bound is not None:
                attr = key.split("_")[0] + "_at"
                if op == ">":
                    checks.append(lambda c, a=attr, b=bound: c[a] > b)
                else:
                    checks.append(lambda c, a=attr, b=bound: c[a] < b)
        if self.optout_after is not None or self.optout_before is not None:
            after, before = self.optout_after, self.optout_before

            def opted_out_in_window(c: dict[str, Any]) -> bool:
                when = c["email_address"].get("opt_out_date")
                if when is None:
                    return False
                return (after is None or when > after) and (before is None or when < before)

            checks.append(opted_out_in_window)
        if not checks:
            return lambda c: True
        if len(checks) == 1:
            return checks[0]
        return lambda c: all(check(c) for check in checks)


class AccountStore:
    """One Constant Contact account's contacts, lists and custom fields."""

    def __init__(self) -> None:
        self.contacts: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # contact ids in creation order; cursors are positions in it
        self.by_email: dict[str, str] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        self.list_members: dict[str, set[str]] = {}
        self.custom_fields: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, Any]] = {}
        self.resubscribes = 0
        self.seed_sequence = 0

    # ----------------------------------------------------------------------------- lookups

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise not_found(f"Contact {contact_id}")
        return contact

    def contact_id_for_email(self, address: str) -> str | None:
        return self.by_email.get(address.strip().lower())

    def custom_field_by_name(self, name: str) -> dict[str, Any] | None:
        for custom_field in self.custom_fields.values():
            if custom_field["name"] == name:
                return custom_field
        return None

    def find_contacts(
        self, query: ContactQuery, start: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` matches from position ``start``, and the position of the next page (or None)."""
        matches = query.predicate()
        if query.email is not None:
            # An email names at most one contact: answer from the index instead of a full scan.
            cid = self.contact_id_for_email(query.email)
            found = self.contacts.get(cid) if cid is not None and start == 0 else None
            return ([found] if found is not None and matches(found) else []), None
        page: list[dict[str, Any]] = []
        contacts = self.contacts
        order = self.order
        position = start
        end = len(order)
        while position < end:
            contact = contacts[order[position]]
            if matches(contact):
                if len(page) == limit:
                    return page, position
                page.append(contact)
            position += 1
        return page, None

    def count_contacts(self, query: ContactQuery) -> int:
        if query.email is not None:
            return len(self.find_contacts(query, 0, 1)[0])
        matches = query.predicate()
        return sum(1 for contact in self.contacts.values() if matches(contact))

    def iter_contacts(self) -> Iterator[dict[str, Any]]:
        return (self.contacts[cid] for cid in self.order)

    # ----------------------------------------------------------------------------- building blocks

    def _index_new(self, contact: dict[str, Any]) -> None:
        cid = contact["contact_id"]
        self.contacts[cid] = contact
        self.order.append(cid)
        self.by_email[contact["email_address"]["address"].lower()] = cid
        for list_id in contact["list_memberships"]:
            self.list_members.setdefault(list_id, set()).add(cid)

    def _set_memberships(self, contact: dict[str, Any], list_ids: Iterable[str]) -> bool:
        new = list(dict.fromkeys(list_ids))
        old = contact["list_memberships"]
        if new == old:
            return False
        cid = contact["contact_id"]
        for list_id in set(old) - set(new):
            self.list_members.get(list_id, set()).discard(cid)
        for list_id in set(new) - set(old):
            self.list_members.setdefault(list_id, set()).add(cid)
        contact["list_memberships"] = new
        return True

    def _set_email(self, contact: dict[str, Any], address: str) -> bool:
        old = contact["email_address"]["address"]
        if old == address:
            return False
        owner = self.contact_id_for_email(address)
        if owner is not None and owner != contact["contact_id"]:
            raise conflict("email_address.address is already used by another contact")
        self.by_email.pop(old.lower(), None)
        self.by_email[address.lower()] = contact["contact_id"]
        contact["email_address"]["address"] = address
        return True

    def set_permission(
        self,
        contact: dict[str, Any],
        permission: str,
        *,
        source: str,
        at: str,
        reason: str | None = None,
    ) -> bool:
        """Change the email permission; moves ``email_address.updated_at`` only, never ``updated_at``."""
        email = contact["email_address"]
        old = email.get("permission_to_send")
        if old == permission:
            return False
        email["permission_to_send"] = permission
        email["updated_at"] = at
        if permission == Permission.UNSUBSCRIBED.value:
            email["opt_out_source"] = source
            email["opt_out_date"] = at
            if reason:
                email["opt_out_reason"] = reason
            else:
                email.pop("opt_out_reason", None)
            # An unsubscribed contact is on no list any more (CC removes it from all of them).
            self._set_memberships(contact, [])
        else:
            if old == Permission.UNSUBSCRIBED.value:
                self.resubscribes += 1
            for key in ("opt_out_source", "opt_out_date", "opt_out_reason"):
                email.pop(key, None)
            if permission in ACTIVE_PERMISSIONS:
                email["opt_in_source"] = source
                email["opt_in_date"] = at
        return True

    def _check_lists_exist(self, list_ids: Iterable[Any]) -> list[str]:
        # Types first: dict.fromkeys hashes each id, and an unhashable one ([1], {}) would be a 500.
        given = list(list_ids)
        if not all(isinstance(list_id, str) for list_id in given):
            raise validation_error("list_memberships must be an array of list ids")
        ids = list(dict.fromkeys(given))
        if len(ids) > MAX_LISTS_PER_CONTACT:
            raise validation_error(f"a contact can be on at most {MAX_LISTS_PER_CONTACT} lists")
        for list_id in ids:
            if (
                not isinstance(list_id, str)
                or list_id not in self.lists
                or self.lists[list_id].get("deleted_at")
            ):
                raise validation_error(f"list_memberships: list {list_id} does not exist")
        return ids

    def _validated_subresources(self, body: dict[str, Any], at: str) -> dict[str, Any]:
        """The subresources present in ``body``, checked and given ids and timestamps."""
        out: dict[str, Any] = {}
        if body.get("phone_numbers") is not None:
            phones = body["phone_numbers"]
            if not isinstance(phones, list) or len(phones) > MAX_PHONES:
                raise validation_error(f"phone_numbers must be an array of at most {MAX_PHONES}")
            out["phone_numbers"] = []
            for phone in phones:
                if not isinstance(phone, dict):
                    raise validation_error("phone_numbers items must be objects")
                number, kind = phone.get("phone_number"), phone.get("kind")
                if not isinstance(number, str) or len(number) > 25:
                    raise validation_error(
                        "phone_numbers.phone_number must be a string of at most 25 characters"
                    )
                if kind not in PHONE_KINDS:
                    raise validation_error(f"phone_numbers.kind must be one of {list(PHONE_KINDS)}")
                out["phone_numbers"].append(_phone(number, kind, at))
        if body.get("street_addresses") is not None:
            addresses = body["street_addresses"]
            if not isinstance(addresses, list) or len(addresses) > MAX_ADDRESSES:
                raise validation_error(f"street_addresses must be an array of at most {MAX_ADDRESSES}")
            out["street_addresses"] = []
            for address in addresses:
                if not isinstance(address, dict):
                    raise validation_error("street_addresses items must be objects")
                if address.get("kind") not in ADDRESS_KINDS:
                    raise validation_error(f"street_addresses.kind is required, one of {list(ADDRESS_KINDS)}")
                for name, limit in ADDRESS_LIMITS.items():
                    _check_text(address, name, limit)
                parts = {k: address[k] for k in ADDRESS_LIMITS if address.get(k) is not None}
                out["street_addresses"].append(_address(address["kind"], parts, at))
        if body.get("custom_fields") is not None:
            values = body["custom_fields"]
            if not isinstance(values, list) or len(values) > MAX_CUSTOM_FIELDS_PER_CONTACT:
                raise validation_error(
                    f"custom_fields must be an array of at most {MAX_CUSTOM_FIELDS_PER_CONTACT}"
                )
            out["custom_fields"] = []
            for item in values:
                if not isinstance(item, dict):
                    raise validation_error("custom_fields items must be objects")
                field_id = item.get("custom_field_id")
                if not isinstance(field_id, str) or field_id not in self.custom_fields:
                    raise validation_error(f"custom_fields: custom field {field_id} does not exist")
                value = item.get("value")
                if value is not None and (not isinstance(value, str) or len(value) > MAX_CUSTOM_FIELD_VALUE):
                    raise validation_error("custom_fields.value must be a string of at most 255 characters")
                out["custom_fields"].append({"custom_field_id": field_id, "value": value or ""})
        if body.get("list_memberships") is not None:
            out["list_memberships"] = self._check_lists_exist(body["list_memberships"])
        if body.get("taggings") is not None:
            tags = body["taggings"]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise validation_error("taggings must be an array of tag ids")
            out["taggings"] = list(dict.fromkeys(tags))
        if body.get("notes") is not None:
            notes = body["notes"]
            if not isinstance(notes, list) or not all(isinstance(n, dict) for n in notes):
                raise validation_error("notes must be an array of objects")
            out["notes"] = [_note(note, at) for note in notes]
        return out

    @staticmethod
    def _check_scalars(body: dict[str, Any]) -> None:
        for name, limit in TEXT_LIMITS.items():
            _check_text(body, name, limit)
        _check_birthday(body)

    # ----------------------------------------------------------------------------- API operations

    def create_contact(self, body: dict[str, Any], *, at: str | None = None) -> dict[str, Any]:
        """``POST /contacts``: 409 when the email exists (deleted contacts included)."""
        at = at or now_timestamp()
        create_source = _check_source(body.get("create_source"), "create_source")
        email = _check_email_address(body.get("email_address"), required=False)
        if email is None and not (body.get("first_name") or body.get("last_name")):
            raise validation_error("a contact needs an email_address, a first_name or a last_name")
        if email is None:
            # Contacts without an email (SMS-only) are outside what this package syncs.
            raise validation_error("email_address is required by this emulator")
        if self.contact_id_for_email(email["address"]) is not None:
            raise conflict("Validation failed: Email already exists for contact")
        self._check_scalars(body)
        subresources = self._validated_subresources(body, at)
        permission = email.get("permission_to_send") or Permission.IMPLICIT.value
        contact = _blank_contact(email["address"], at, create_source)
        for name in NULLABLE_FIELDS:
            if body.get(name) is not None:
                contact[name] = body[name]
        contact.update(subresources)
        contact["email_address"]["permission_to_send"] = permission
        if permission == Permission.UNSUBSCRIBED.value:
            contact["email_address"].update(opt_out_source=create_source, opt_out_date=at)
            contact["list_memberships"] = []
        else:
            contact["email_address"].update(opt_in_source=create_source, opt_in_date=at)
        self._index_new(contact)
        return contact

    def put_contact(self, contact_id: str, body: dict[str, Any], *, at: str | None = None) -> dict[str, Any]:
        """``PUT /contacts/{id}``: omitted top-level fields become null, omitted subresources stay."""
        at = at or now_timestamp()
        contact = self.get_contact(contact_id)
        update_source = _check_source(body.get("update_source"), "update_source")
        if contact.get("deleted_at") and update_source != Source.ACCOUNT.value:
            raise validation_error("restoring a deleted contact needs update_source 'Account'")
        email = _check_email_address(body.get("email_address"), required=False)
        self._check_scalars(body)
        subresources = self._validated_subresources(body, at)
        if email is not None:
            owner = self.contact_id_for_email(email["address"])
            if owner is not None and owner != contact_id:
                raise conflict("email_address.address is already used by another contact")

        changed = False
        for name in NULLABLE_FIELDS:
            new = body.get(name)
            if contact.get(name) != new:
                changed = True
                if new is None:
                    contact.pop(name, None)
                else:
                    contact[name] = new
        for name, value in subresources.items():
            if name == "list_memberships":
                if contact["email_address"].get("permission_to_send") != Permission.UNSUBSCRIBED.value:
                    changed |= self._set_memberships(contact, value)
            elif _strip_ids(contact[name]) != _strip_ids(value):
                contact[name] = value
                changed = True
        if contact.get("deleted_at"):
            contact.pop("deleted_at")
            changed = True
        if email is not None:
            if self._set_email(contact, email["address"]):
                contact["email_address"]["updated_at"] = at
                changed = True
            permission = email.get("permission_to_send")
            if permission is not None:
                self.set_permission(
                    contact, permission, source=update_source, at=at, reason=email.get("opt_out_reason")
                )
        contact["update_source"] = update_source
        if changed:
            contact["updated_at"] = at
        return contact

    def delete_contact(self, contact_id: str, *, at: str | None = None) -> None:
        at = at or now_timestamp()
        contact = self.get_contact(contact_id)
        if contact.get("deleted_at"):
            return
        contact["deleted_at"] = at[:10]
        contact["updated_at"] = at
        self._set_memberships(contact, [])

    def sign_up_form(self, body: dict[str, Any], *, at: str | None = None) -> tuple[str, bool]:
        """``POST /contacts/sign_up_form``: an upsert that sets ``explicit``; (contact_id, created)."""
        at = at or now_timestamp()
        address = body.get("email_address")
        if (
            not isinstance(address, str)
            or len(address) > MAX_IMPORT_EMAIL_LENGTH
            or not is_valid_email(address)
        ):
            raise validation_error("email_address must be a valid email address of at most 50 characters")
        lists = body.get("list_memberships")
        if not isinstance(lists, list) or not 1 <= len(lists) <= MAX_LISTS_PER_CONTACT:
            raise validation_error("list_memberships must hold 1 to 50 list ids")
        self._check_lists_exist(lists)
        self._check_scalars(body)
        existing = self.contact_id_for_email(address)
        if existing is None:
            contact = self.create_contact(
                {
                    "email_address": {"address": address, "permission_to_send": Permission.EXPLICIT.value},
                    "create_source": Source.CONTACT.value,
                    "list_memberships": lists,
                    **{k: body[k] for k in NULLABLE_FIELDS if body.get(k) is not None},
                },
                at=at,
            )
            return contact["contact_id"], True
        contact = self.contacts[existing]
        changed = False
        for name in NULLABLE_FIELDS:
            if body.get(name) is not None and contact.get(name) != body[name]:
                contact[name] = body[name]
                changed = True
        contact.pop("deleted_at", None)
        self.set_permission(contact, Permission.EXPLICIT.value, source=Source.CONTACT.value, at=at)
        self._set_memberships(contact, [*contact["list_memberships"], *lists])
        if changed:
            contact["updated_at"] = at
        return existing, False

    # ----------------------------------------------------------------------------- bulk activities

    def import_contacts(
        self,
        rows: list[Any],
        list_ids: list[str],
        *,
        at: str | None = None,
        refused_emails: Iterable[str] = (),
        name_rows: bool = True,
    ) -> ImportResult:
        """Apply one ``contacts_json_import``: create or update each row; bad rows are reported
        (``import_data[N]: reason``, or the bare reason when ``name_rows`` is off)."""
        at = at or now_timestamp()
        result = ImportResult(items_total_count=len(rows))
        names = {cf["name"]: cf["custom_field_id"] for cf in self.custom_fields.values()}
        refused = {str(e).strip().lower() for e in refused_emails}
        for index, row in enumerate(rows):
            try:
                if refused and isinstance(row, dict) and str(row.get("email", "")).strip().lower() in refused:
                    raise RowError("the address is on the account's do-not-mail list")
                self._import_row(row, list_ids, names, at, result)
            except RowError as error:
                result.error_count += 1
                if error.correctable:
                    result.correctable_count += 1
                result.errors.append(f"import_data[{index}]: {error.reason}" if name_rows else error.reason)
        return result

    def _import_row(
        self, row: Any, list_ids: list[str], cf_names: dict[str, str], at: str, result: ImportResult
    ) -> None:
        if not isinstance(row, dict):
            raise RowError("each import_data item must be an object")
        change = parse_import_row(row, cf_names)
        existing_id = self.contact_id_for_email(change.email)
        if existing_id is None:
            contact = _blank_contact(change.email, at, Source.ACCOUNT.value)
            contact["email_address"].update(
                permission_to_send=Permission.IMPLICIT.value,
                opt_in_source=Source.ACCOUNT.value,
                opt_in_date=at,
            )
            _apply_import_change(contact, change, at)
            self._index_new(contact)
            self._set_memberships(contact, list_ids)
            result.created_count += 1
        else:
            contact = self.contacts[existing_id]
            if _apply_import_change(contact, change, at):
                contact["updated_at"] = at
                contact["update_source"] = Source.ACCOUNT.value
            if contact["email_address"].get("permission_to_send") == Permission.UNSUBSCRIBED.value:
                result.cannot_add_to_list_count += 1
            else:
                if contact.get("deleted_at"):
                    # Adding a deleted contact to a list revives it (contacts_delete.html).
                    contact.pop("deleted_at")
                    contact["updated_at"] = at
                merged = list(dict.fromkeys([*contact["list_memberships"], *list_ids]))
                self._set_memberships(contact, merged[:MAX_LISTS_PER_CONTACT])
            result.updated_count += 1
        result.person_count += 1

    def add_list_memberships(self, contact_ids: Iterable[str], list_ids: list[str]) -> int:
        """Add contacts to lists; unsubscribed contacts are skipped, deleted ones revived. Count added."""
        added = 0
        for cid in contact_ids:
            contact = self.contacts.get(cid)
            if (
                contact is None
                or contact["email_address"].get("permission_to_send") == Permission.UNSUBSCRIBED.value
            ):
                continue
            merged = list(dict.fromkeys([*contact["list_memberships"], *list_ids]))[:MAX_LISTS_PER_CONTACT]
            if contact.get("deleted_at"):
                contact.pop("deleted_at")
                contact["updated_at"] = now_timestamp()
            if self._set_memberships(contact, merged):
                added += 1
        return added

    def remove_list_memberships(self, contact_ids: Iterable[str], list_ids: list[str]) -> int:
        removed = 0
        drop = set(list_ids)
        for cid in contact_ids:
            contact = self.contacts.get(cid)
            if contact is None:
                continue
            if self._set_memberships(
                contact, [lid for lid in contact["list_memberships"] if lid not in drop]
            ):
                removed += 1
        return removed

    def members_of(self, list_ids: Iterable[str]) -> list[str]:
        members: dict[str, None] = {}
        for list_id in list_ids:
            members.update(dict.fromkeys(sorted(self.list_members.get(list_id, ()))))
        return list(members)

    def active_contact_ids(self) -> list[str]:
        return [cid for cid in self.order if contact_status(self.contacts[cid]) in ACTIVE_PERMISSIONS]

    # ----------------------------------------------------------------------------- lists

    def create_list(self, body: dict[str, Any], *, at: str | None = None) -> dict[str, Any]:
        at = at or now_timestamp()
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise validation_error("name is required, at most 255 characters")
        if any(lst["name"] == name and not lst.get("deleted_at") for lst in self.lists.values()):
            raise conflict(f"A list named {name!r} already exists")
        contact_list = {
            "list_id": new_id(),
            "name": name,
            "description": _list_description(body),
            "favorite": body.get("favorite") is True,
            "created_at": at,
            "updated_at": at,
        }
        self.lists[contact_list["list_id"]] = contact_list
        self.list_members[contact_list["list_id"]] = set()
        return contact_list

    def get_list(self, list_id: str) -> dict[str, Any]:
        contact_list = self.lists.get(list_id)
        if contact_list is None:
            raise not_found(f"List {list_id}")
        return contact_list

    def update_list(self, list_id: str, body: dict[str, Any]) -> dict[str, Any]:
        contact_list = self.get_list(list_id)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise validation_error("name is required, at most 255 characters")
        if any(
            lst["name"] == name and lid != list_id and not lst.get("deleted_at")
            for lid, lst in self.lists.items()
        ):
            raise conflict(f"A list named {name!r} already exists")
        contact_list.update(
            name=name,
            favorite=body.get("favorite") is True,
            description=_list_description(body),
            updated_at=now_timestamp(),
        )
        return contact_list

    def delete_list(self, list_id: str) -> None:
        contact_list = self.get_list(list_id)
        at = now_timestamp()
        contact_list["deleted_at"] = at
        contact_list["updated_at"] = at
        for cid in list(self.list_members.get(list_id, ())):
            contact = self.contacts[cid]
            self._set_memberships(contact, [lid for lid in contact["list_memberships"] if lid != list_id])

    def membership_count(self, list_id: str, which: str) -> int:
        members = self.list_members.get(list_id, set())
        if which == "all":
            return len(members)
        return sum(1 for cid in members if contact_status(self.contacts[cid]) in ACTIVE_PERMISSIONS)

    # ----------------------------------------------------------------------------- tags

    def create_tag(self, body: dict[str, Any], *, at: str | None = None) -> dict[str, Any]:
        at = at or now_timestamp()
        name = self._tag_name(body)
        if any(tag["name"] == name for tag in self.tags.values()):
            raise conflict(f"A tag named {name!r} already exists")
        tag = {"tag_id": new_id(), "name": name, "created_at": at, "updated_at": at}
        if isinstance(body.get("tag_source"), str) and body["tag_source"]:
            tag["tag_source"] = body["tag_source"]
        self.tags[tag["tag_id"]] = tag
        return tag

    def get_tag(self, tag_id: str) -> dict[str, Any]:
        tag = self.tags.get(tag_id)
        if tag is None:
            raise not_found(f"Tag {tag_id}")
        return tag

    def rename_tag(self, tag_id: str, body: dict[str, Any]) -> dict[str, Any]:
        tag = self.get_tag(tag_id)
        name = self._tag_name(body)
        if any(t["name"] == name and tid != tag_id for tid, t in self.tags.items()):
            raise conflict(f"A tag named {name!r} already exists")
        tag.update(name=name, updated_at=now_timestamp())
        return tag

    def delete_tag(self, tag_id: str) -> int:
        """Un-assign the tag from every contact and drop it; answers how many contacts had it."""
        self.get_tag(tag_id)
        untagged = self.remove_taggings(self.tagged_with([tag_id]), [tag_id])
        del self.tags[tag_id]
        return untagged

    def tag_count(self, tag_id: str) -> int:
        return sum(1 for contact in self.contacts.values() if tag_id in contact.get("taggings", ()))

    def tagged_with(self, tag_ids: Iterable[str]) -> list[str]:
        wanted = set(tag_ids)
        return [cid for cid in self.order if not wanted.isdisjoint(self.contacts[cid].get("taggings", ()))]

    # Tagging changes no permission and no personal field, so neither the contact's ``updated_at``
    # nor its consent moves: an unsubscribed contact is tagged like any other.
    def add_taggings(self, contact_ids: Iterable[str], tag_ids: list[str]) -> int:
        tagged = 0
        for cid in contact_ids:
            contact = self.contacts.get(cid)
            if contact is None:
                continue
            old = contact.get("taggings") or []
            new = list(dict.fromkeys([*old, *tag_ids]))[:MAX_TAGS_PER_CONTACT]
            if new != old:
                contact["taggings"] = new
                tagged += 1
        return tagged

    def remove_taggings(self, contact_ids: Iterable[str], tag_ids: list[str]) -> int:
        drop = set(tag_ids)
        untagged = 0
        for cid in contact_ids:
            contact = self.contacts.get(cid)
            if contact is None:
                continue
            old = contact.get("taggings") or []
            new = [tid for tid in old if tid not in drop]
            if len(new) != len(old):
                contact["taggings"] = new
                untagged += 1
        return untagged

    @staticmethod
    def _tag_name(body: dict[str, Any]) -> str:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_TAG_NAME:
            raise validation_error(f"name is required, 1 to {MAX_TAG_NAME} characters")
        return name

    # ----------------------------------------------------------------------------- custom fields

    def create_custom_field(self, body: dict[str, Any], *, limit: int) -> dict[str, Any]:
        label, kind = body.get("label"), body.get("type")
        if not isinstance(label, str) or not label.strip() or len(label) > 50:
            raise validation_error("label is required, at most 50 characters")
        if not isinstance(kind, str) or not kind or len(kind) > 20:
            raise validation_error("type is required, at most 20 characters (e.g. 'string', 'date')")
        if len(self.custom_fields) >= limit:
            raise ApiError(
                400, "contacts.api.limit.exceeded", f"An account can have at most {limit} custom fields"
            )
        name = re.sub(r"\s+", "_", label.strip())
        if self.custom_field_by_name(name) is not None:
            raise conflict(f"A custom field named {name!r} already exists")
        at = now_timestamp()
        custom_field = {
            "custom_field_id": new_id(),
            "label": label,
            "name": name,
            "type": kind,
            "version": body.get("version", 1) if isinstance(body.get("version"), int) else 1,
            "created_at": at,
            "updated_at": at,
        }
        self.custom_fields[custom_field["custom_field_id"]] = custom_field
        return custom_field

    def get_custom_field(self, custom_field_id: str) -> dict[str, Any]:
        custom_field = self.custom_fields.get(custom_field_id)
        if custom_field is None:
            raise not_found(f"Custom field {custom_field_id}")
        return custom_field

    def update_custom_field(self, custom_field_id: str, body: dict[str, Any]) -> dict[str, Any]:
        custom_field = self.get_custom_field(custom_field_id)
        label = body.get("label")
        if not isinstance(label, str) or not label.strip() or len(label) > 50:
            raise validation_error("label is required, at most 50 characters")
        custom_field.update(label=label, updated_at=now_timestamp())
        return custom_field

    def delete_custom_field(self, custom_field_id: str) -> None:
        self.get_custom_field(custom_field_id)
        del self.custom_fields[custom_field_id]
        for contact in self.contacts.values():
            if contact["custom_fields"]:
                contact["custom_fields"] = [
                    v for v in contact["custom_fields"] if v["custom_field_id"] != custom_field_id
                ]

    # ----------------------------------------------------------------------------- admin: subscriber acts

    def opt_out(
        self, contact_id: str, *, at: str | None = None, source: str = "Contact", reason: str = ""
    ) -> None:
        """The subscriber (or the account owner in the UI) unsubscribes the address."""
        contact = self.get_contact(contact_id)
        self.set_permission(
            contact,
            Permission.UNSUBSCRIBED.value,
            source=_check_source(source, "source"),
            at=at or now_timestamp(),
            reason=reason,
        )

    def edit_contact(
        self, contact_id: str, fields: dict[str, Any], *, at: str | None = None
    ) -> dict[str, Any]:
        """A partial edit as the CC UI or the contact's own profile form makes it (ContactResource shape)."""
        at = at or now_timestamp()
        contact = self.get_contact(contact_id)
        self._check_scalars(fields)
        subresources = self._validated_subresources(fields, at)
        email = _check_email_address(fields.get("email_address"), required=False)
        if email is not None:
            owner = self.contact_id_for_email(email["address"])
            if owner is not None and owner != contact_id:
                raise conflict("email_address.address is already used by another contact")
        changed = False
        for name in NULLABLE_FIELDS:
            if name in fields and contact.get(name) != fields[name]:
                changed = True
                if fields[name] is None:
                    contact.pop(name, None)
                else:
                    contact[name] = fields[name]
        for name, value in subresources.items():
            if name == "list_memberships":
                changed |= self._set_memberships(contact, value)
            else:
                contact[name] = value
                changed = True
        if email is not None:
            if self._set_email(contact, email["address"]):
                contact["email_address"]["updated_at"] = at
                changed = True
            if email.get("permission_to_send"):
                self.set_permission(
                    contact,
                    email["permission_to_send"],
                    source=Source.CONTACT.value,
                    at=at,
                    reason=email.get("opt_out_reason"),
                )
        if changed:
            contact["updated_at"] = at
            contact["update_source"] = Source.CONTACT.value
        return contact

    def seed(
        self,
        *,
        count: int | None = None,
        contacts: list[dict[str, Any]] | None = None,
        list_ids: list[str] | None = None,
        seed: int = 0,
    ) -> list[str]:
        """Add many contacts at once, without API calls: generated ones, given ones, or both."""
        list_ids = self._check_lists_exist(list_ids or [])
        created: list[str] = []
        for spec in contacts or []:
            created.append(self._seed_one(spec, list_ids))
        if count:
            rng = random.Random(seed)
            at = now_timestamp()
            for _ in range(count):
                self.seed_sequence += 1
                n = self.seed_sequence
                first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
                address = f"{first}.{last}.{n}@example.org".lower()
                while address.lower() in self.by_email:
                    self.seed_sequence += 1
                    address = f"{first}.{last}.{self.seed_sequence}@example.org".lower()
                contact = _blank_contact(address, at, Source.ACCOUNT.value)
                contact["email_address"].update(
                    permission_to_send=Permission.IMPLICIT.value,
                    opt_in_source=Source.ACCOUNT.value,
                    opt_in_date=at,
                )
                contact.update(first_name=first, last_name=last)
                contact["phone_numbers"] = [_phone(f"555-{rng.randrange(1000, 9999)}", "home", at)]
                contact["street_addresses"] = [
                    _address(
                        "home",
                        {
                            "street": f"{rng.randrange(1, 999)} Main St",
                            "city": "Springfield",
                            "country": "US",
                        },
                        at,
                    )
                ]
                contact["list_memberships"] = list(list_ids)
                self._index_new(contact)
                created.append(contact["contact_id"])
        return created

    def _seed_one(self, spec: dict[str, Any], list_ids: list[str]) -> str:
        spec = dict(spec)
        if isinstance(spec.get("email"), str):
            spec["email_address"] = {"address": spec.pop("email")}
        # Custom field values may be given as in an import, "cf:<name>": value.
        named = {k[3:]: spec.pop(k) for k in [k for k in spec if k.startswith("cf:")]}
        for name, value in named.items():
            custom_field = self.custom_field_by_name(name)
            if custom_field is None:
                raise validation_error(f"seed: no custom field named {name!r}")
            values = [
                v
                for v in spec.get("custom_fields") or []
                if v["custom_field_id"] != custom_field["custom_field_id"]
            ]
            spec["custom_fields"] = [
                *values,
                {"custom_field_id": custom_field["custom_field_id"], "value": value},
            ]
        email = _check_email_address(spec.get("email_address"), required=True)
        assert email is not None
        if self.contact_id_for_email(email["address"]) is not None:
            raise conflict("seed: email already exists")
        created_at = normalise_timestamp(spec.get("created_at"), name="created_at")
        # A deletion moves updated_at (as DELETE does), so a seeded deleted contact was updated then.
        updated_at = normalise_timestamp(
            spec.get("updated_at") or spec.get("deleted_at") or created_at, name="updated_at"
        )
        self._check_scalars(spec)
        subresources = self._validated_subresources(spec, created_at)
        contact = _blank_contact(
            email["address"], created_at, spec.get("create_source") or Source.ACCOUNT.value
        )
        contact["updated_at"] = updated_at
        for name in NULLABLE_FIELDS:
            if spec.get(name) is not None:
                contact[name] = spec[name]
        contact.update({k: v for k, v in subresources.items() if k != "list_memberships"})
        contact["list_memberships"] = list(
            dict.fromkeys([*subresources.get("list_memberships", []), *list_ids])
        )
        permission = email.get("permission_to_send") or Permission.IMPLICIT.value
        contact["email_address"]["permission_to_send"] = permission
        if permission == Permission.UNSUBSCRIBED.value:
            contact["email_address"].update(
                opt_out_source=email.get("opt_out_source") or Source.CONTACT.value,
                opt_out_date=normalise_timestamp(
                    email.get("opt_out_date") or updated_at, name="opt_out_date"
                ),
            )
            if email.get("opt_out_reason"):
                contact["email_address"]["opt_out_reason"] = email["opt_out_reason"]
            contact["list_memberships"] = []
        else:
            contact["email_address"].update(opt_in_source=contact["create_source"], opt_in_date=created_at)
        if spec.get("deleted_at"):
            contact["deleted_at"] = normalise_timestamp(spec["deleted_at"], name="deleted_at")[:10]
            contact["list_memberships"] = []
        self._index_new(contact)
        return contact["contact_id"]

    # ----------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        return {
            "contacts": [self.contacts[cid] for cid in self.order],
            "lists": list(self.lists.values()),
            "custom_fields": list(self.custom_fields.values()),
            "tags": list(self.tags.values()),
            "resubscribes": self.resubscribes,
            "seed_sequence": self.seed_sequence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountStore:
        store = cls()
        for contact_list in data.get("lists", []):
            store.lists[contact_list["list_id"]] = contact_list
            store.list_members[contact_list["list_id"]] = set()
        for custom_field in data.get("custom_fields", []):
            store.custom_fields[custom_field["custom_field_id"]] = custom_field
        for tag in data.get("tags", []):
            store.tags[tag["tag_id"]] = tag
        for contact in data.get("contacts", []):
            store._index_new(contact)
        store.resubscribes = int(data.get("resubscribes", 0))
        store.seed_sequence = int(data.get("seed_sequence", 0))
        return store


# --------------------------------------------------------------------------------------------------
# Contact construction and the JSON import row


def _blank_contact(address: str, at: str, create_source: str) -> dict[str, Any]:
    return {
        "contact_id": new_id(),
        "email_address": {"address": address, "created_at": at, "updated_at": at, "confirm_status": "off"},
        "create_source": create_source,
        "created_at": at,
        "updated_at": at,
        "custom_fields": [],
        "phone_numbers": [],
        "street_addresses": [],
        "list_memberships": [],
        "taggings": [],
        "notes": [],
    }


def _phone(number: str, kind: str, at: str) -> dict[str, Any]:
    return {
        "phone_number_id": new_id(),
        "phone_number": number,
        "kind": kind,
        "created_at": at,
        "updated_at": at,
    }


def _address(kind: str, parts: dict[str, Any], at: str) -> dict[str, Any]:
    return {"street_address_id": new_id(), "kind": kind, **parts, "created_at": at, "updated_at": at}


def _note(note: dict[str, Any], at: str) -> dict[str, Any]:
    """A note as stored: CC gives every note an id and a time, so one sent without them gets them."""
    content = note.get("content")
    if content is not None and (not isinstance(content, str) or len(content) > 2000):
        raise validation_error("notes.content must be a string of at most 2,000 characters")
    return {
        "note_id": note.get("note_id") or new_id(),
        "created_at": normalise_timestamp(note.get("created_at") or at, name="notes.created_at"),
        "content": content or "",
    }


def _list_description(body: dict[str, Any]) -> str:
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise validation_error("description must be a string")
    return description or ""


_GENERATED_KEYS = frozenset({"phone_number_id", "street_address_id", "note_id", "created_at", "updated_at"})


def _strip_ids(items: list[Any]) -> list[Any]:
    # Taggings are plain id strings; the other subresources are objects with generated keys.
    return [
        {k: v for k, v in item.items() if k not in _GENERATED_KEYS} if isinstance(item, dict) else item
        for item in items
    ]


@dataclass
class ImportChange:
    email: str
    scalars: dict[str, Any]
    phones: dict[str, str]
    addresses: dict[str, dict[str, str]]
    custom_fields: dict[str, str]


_IMPORT_TEXT = {"first_name": 50, "last_name": 50, "job_title": 50, "company_name": 50, "anniversary": 10}
# The JSON import's phone keys and the phone kind each one fills ("phone" is taken as the home phone).
_IMPORT_PHONES = {
    "phone": "home",
    "home_phone": "home",
    "work_phone": "work",
    "mobile_phone": "mobile",
    "other_phone": "other",
}
# Address keys: an unprefixed address is the home address; the spec spells one key "home country".
_IMPORT_ADDRESS_PREFIXES = {"": "home", "home_": "home", "work_": "work", "other_": "other"}
_IMPORT_ADDRESS_PARTS = {
    "street": "street",
    "street2": "street2",
    "city": "city",
    "state": "state",
    "zip": "postal_code",
    "country": "country",
}
_IMPORT_IGNORED = frozenset({"sms_number", "sms_consent_date"})


def _import_address_key(key: str) -> tuple[str, str] | None:
    key = key.replace("home country", "home_country")
    for prefix in ("home_", "work_", "other_", ""):
        if key.startswith(prefix) and key[len(prefix) :] in _IMPORT_ADDRESS_PARTS:
            return _IMPORT_ADDRESS_PREFIXES[prefix], _IMPORT_ADDRESS_PARTS[key[len(prefix) :]]
    return None


def parse_import_row(row: dict[str, Any], cf_names: dict[str, str]) -> ImportChange:
    """One ``JsonImportContact`` as the changes it asks for. Empty values count as not sent."""
    email = row.get("email")
    if not isinstance(email, str) or not email.strip():
        raise RowError("email is required", correctable=True)
    email = email.strip()
    if len(email) > MAX_IMPORT_EMAIL_LENGTH:
        raise RowError(f"email is longer than {MAX_IMPORT_EMAIL_LENGTH} characters")
    if not is_valid_email(email):
        raise RowError(f"invalid email address {redact_email(email)}", correctable=True)
    change = ImportChange(email=email, scalars={}, phones={}, addresses={}, custom_fields={})
    for key, value in row.items():
        if key == "email" or key in _IMPORT_IGNORED or value is None or value == "":
            continue
        if key in _IMPORT_TEXT:
            if not isinstance(value, str):
                raise RowError(f"{key} must be a string")
            if len(value) > _IMPORT_TEXT[key]:
                raise RowError(f"{key} is longer than {_IMPORT_TEXT[key]} characters")
            change.scalars[key] = value
        elif key in ("birthday_month", "birthday_day"):
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise RowError(f"{key} must be a number", correctable=True) from None
            upper = 12 if key == "birthday_month" else 31
            if not 1 <= number <= upper:
                raise RowError(f"{key} must be from 1 to {upper}", correctable=True)
            change.scalars[key] = number
        elif key in _IMPORT_PHONES:
            if not isinstance(value, str) or len(value) > 25:
                raise RowError(f"{key} must be a string of at most 25 characters")
            if key == "phone":
                change.phones.setdefault(_IMPORT_PHONES[key], value)  # an explicit home_phone wins
            else:
                change.phones[_IMPORT_PHONES[key]] = value
        elif key.startswith("cf:"):
            name = key[3:]
            if name not in cf_names:
                raise RowError(f"{key}: no custom field named {name!r} in the account")
            if not isinstance(value, str) or len(value) > MAX_CUSTOM_FIELD_VALUE:
                raise RowError(f"{key} must be a string of at most {MAX_CUSTOM_FIELD_VALUE} characters")
            change.custom_fields[cf_names[name]] = value
        else:
            address_key = _import_address_key(key)
            if address_key is None:
                raise RowError(f"unknown import property {key!r}")
            kind, part = address_key
            limit = 255 if part in ("street", "street2") else 50
            if not isinstance(value, str) or len(value) > limit:
                raise RowError(f"{key} must be a string of at most {limit} characters")
            change.addresses.setdefault(kind, {})[part] = value
    if len(change.custom_fields) > MAX_CUSTOM_FIELDS_PER_CONTACT:
        raise RowError(f"at most {MAX_CUSTOM_FIELDS_PER_CONTACT} custom fields per contact")
    for parts in change.addresses.values():
        if "street2" in parts:
            street2 = parts.pop("street2")
            parts["street"] = f"{parts.get('street', '')} {street2}".strip()
    return change


def _apply_import_change(contact: dict[str, Any], change: ImportChange, at: str) -> bool:
    """Apply the sent fields only; True when anything changed."""
    changed = False
    for name, value in change.scalars.items():
        if contact.get(name) != value:
            contact[name] = value
            changed = True
    for kind, number in change.phones.items():
        phone = next((p for p in contact["phone_numbers"] if p["kind"] == kind), None)
        if phone is None:
            if len(contact["phone_numbers"]) >= MAX_PHONES:
                continue
            contact["phone_numbers"] = [*contact["phone_numbers"], _phone(number, kind, at)]
            changed = True
        elif phone["phone_number"] != number:
            phone.update(phone_number=number, updated_at=at)
            changed = True
    for kind, parts in change.addresses.items():
        address = next((a for a in contact["street_addresses"] if a["kind"] == kind), None)
        if address is None:
            if len(contact["street_addresses"]) >= MAX_ADDRESSES:
                continue
            contact["street_addresses"] = [*contact["street_addresses"], _address(kind, parts, at)]
            changed = True
        elif any(address.get(k) != v for k, v in parts.items()):
            address.update(parts, updated_at=at)
            changed = True
    if change.custom_fields:
        values = {v["custom_field_id"]: v for v in contact["custom_fields"]}
        for field_id, value in change.custom_fields.items():
            if field_id in values:
                if values[field_id]["value"] != value:
                    values[field_id]["value"] = value
                    changed = True
            elif len(values) < MAX_CUSTOM_FIELDS_PER_CONTACT:
                values[field_id] = {"custom_field_id": field_id, "value": value}
                changed = True
        contact["custom_fields"] = list(values.values())
    return changed


_FIRST_NAMES = (
    "Anne", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kofi", "Lena",
    "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Victor", "Wen", "Yara",
)  # fmt: skip
_LAST_NAMES = (
    "Adams", "Baker", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Kumar",
    "Lopez", "Meyer", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka", "Weber", "Young",
)  # fmt: skip
