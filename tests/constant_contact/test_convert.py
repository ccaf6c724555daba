"""convert.py: CC contacts → canonical frame, canonical frame → import rows, full PUT bodies."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from cc_sync.constant_contact.convert import contacts_to_frame, frame_to_import_rows, merge_contact_for_put
from cc_sync.fields import (
    CANONICAL_FIELDS,
    CONTACT_ID,
    DELETED,
    OPTED_OUT,
    OPTED_OUT_AT,
    TAG_IDS,
    UPDATED_AT,
)

CF_ID = "9a1c3e1e-0000-4000-8000-000000000001"
LIST_ID = "0b5b0d6c-0000-4000-8000-0000000000aa"


def contact(**overrides):
    base = {
        "contact_id": "c-1",
        "email_address": {
            "address": "ann@example.org",
            "permission_to_send": "implicit",
            "updated_at": "2026-01-01T10:00:00Z",
        },
        "first_name": "Ann",
        "last_name": "Lee",
        "company_name": "Acme",
        "job_title": "Clerk",
        "birthday_month": 3,
        "birthday_day": 14,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2026-01-02T10:00:00Z",
        "phone_numbers": [
            {"phone_number_id": "p1", "phone_number": "555-0100", "kind": "home"},
            {"phone_number_id": "p2", "phone_number": "555-0101", "kind": "mobile"},
        ],
        "street_addresses": [
            {"street_address_id": "a0", "kind": "work", "street": "1 Work Rd", "city": "Worktown"},
            {
                "street_address_id": "a1",
                "kind": "home",
                "street": "2 Home St",
                "city": "Hometown",
                "state": "ON",
                "postal_code": "K1A",
                "country": "CA",
            },
        ],
        "custom_fields": [{"custom_field_id": CF_ID, "value": "blue"}],
        "list_memberships": [LIST_ID],
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("taggings", "expected"), [(None, ""), ([], ""), (["t2", "t1"], "t1,t2"), (["t1"], "t1")]
)
def test_tag_ids_are_the_contacts_taggings_sorted_and_comma_separated(taggings, expected):
    item = contact()
    if taggings is not None:
        item["taggings"] = taggings
    assert contacts_to_frame([item], {})[TAG_IDS].tolist() == [expected]


def test_frame_has_every_canonical_column_typed():
    frame = contacts_to_frame([contact()], {CF_ID: "colour"})
    expected = [
        CONTACT_ID, *CANONICAL_FIELDS, "cf:colour", UPDATED_AT, OPTED_OUT, OPTED_OUT_AT, DELETED, TAG_IDS
    ]  # fmt: skip
    assert list(frame.columns) == expected
    assert frame["email"].dtype == "string"
    assert frame["birthday_month"].dtype == "Int64"
    assert str(frame[UPDATED_AT].dtype).endswith("UTC]")
    row = frame.iloc[0]
    assert (row["email"], row["first_name"], row["cf:colour"]) == ("ann@example.org", "Ann", "blue")
    assert (row["phone_home"], row["phone_mobile"]) == ("555-0100", "555-0101")
    assert pd.isna(row["phone_work"])
    # The canonical address is the home one even when another kind comes first.
    assert (row["street"], row["city"], row["state"], row["postal_code"]) == (
        "2 Home St",
        "Hometown",
        "ON",
        "K1A",
    )
    assert row["birthday_month"] == 3
    assert row["birthday_day"] == 14
    assert not row[OPTED_OUT]
    assert not row[DELETED]


@pytest.mark.parametrize(
    ("contact_updated", "email_updated", "expected"),
    [
        ("2026-01-02T10:00:00Z", "2026-01-01T10:00:00Z", datetime(2026, 1, 2, 10, tzinfo=UTC)),
        # An opt-out only moves the email address's updated_at: it must still count as a change.
        (
            "2026-01-02T10:00:00Z",
            "2026-02-01T08:30:00.250Z",
            datetime(2026, 2, 1, 8, 30, 0, 250000, tzinfo=UTC),
        ),
        ("2026-01-02T10:00:00+02:00", None, datetime(2026, 1, 2, 8, tzinfo=UTC)),
    ],
    ids=["contact-later", "email-later", "offset-no-email-time"],
)
def test_updated_at_is_the_later_of_contact_and_email(contact_updated, email_updated, expected):
    c = contact(updated_at=contact_updated)
    c["email_address"]["updated_at"] = email_updated
    frame = contacts_to_frame([c], {})
    assert frame[UPDATED_AT].iloc[0] == pd.Timestamp(expected)


@pytest.mark.parametrize(
    ("permission", "deleted_at", "opted_out", "deleted"),
    [
        ("unsubscribed", None, True, False),
        ("explicit", None, False, False),
        ("implicit", "2026-01-05", False, True),
        ("unsubscribed", "2026-01-05", True, True),
    ],
)
def test_status_columns(permission, deleted_at, opted_out, deleted):
    c = contact(deleted_at=deleted_at)
    c["email_address"].update(permission_to_send=permission, opt_out_date="2026-01-03T00:00:00Z")
    frame = contacts_to_frame([c], {})
    assert frame[OPTED_OUT].iloc[0] == opted_out
    assert frame[DELETED].iloc[0] == deleted
    if opted_out:
        assert frame[OPTED_OUT_AT].iloc[0] == pd.Timestamp("2026-01-03", tz="UTC")
    else:
        assert pd.isna(frame[OPTED_OUT_AT].iloc[0])


def test_sparse_contact_gives_missing_values_not_errors():
    sparse = {
        "contact_id": "c-2",
        "email_address": {"address": "x@example.org"},
        "updated_at": "2026-01-01T00:00:00Z",
    }
    frame = contacts_to_frame([sparse], {CF_ID: "colour"})
    assert frame["first_name"].isna().all()
    assert frame["cf:colour"].isna().all()
    assert frame["birthday_day"].isna().all()


def test_empty_input_gives_empty_frame_with_columns():
    frame = contacts_to_frame([], {CF_ID: "colour"})
    assert len(frame) == 0
    assert "email" in frame.columns
    assert UPDATED_AT in frame.columns


def test_import_rows_use_import_keys_and_omit_missing():
    frame = contacts_to_frame(
        [contact(), {"contact_id": "c-2", "email_address": {"address": "b@example.org"}}], {CF_ID: "colour"}
    )
    frame.loc[0, "last_name"] = ""  # a blank must not blank CC's value either
    rows = frame_to_import_rows(frame)
    assert rows[0] == {
        "email": "ann@example.org",
        "first_name": "Ann",
        "company_name": "Acme",
        "job_title": "Clerk",
        "home_phone": "555-0100",
        "mobile_phone": "555-0101",
        "street": "2 Home St",
        "city": "Hometown",
        "state": "ON",
        "zip": "K1A",
        "country": "CA",
        "birthday_month": 3,
        "birthday_day": 14,
        "cf:colour": "blue",
    }
    assert type(rows[0]["birthday_month"]) is int
    assert rows[1] == {"email": "b@example.org"}
    assert all("permission_to_send" not in r for r in rows)


def test_round_trip_of_many_contacts_is_fast_enough_to_build():
    contacts = [contact(contact_id=f"c-{i}") for i in range(20_000)]
    for i, c in enumerate(contacts):
        c["email_address"] = dict(c["email_address"], address=f"p{i}@example.org")
    frame = contacts_to_frame(contacts, {CF_ID: "colour"})
    assert len(frame) == 20_000
    assert frame["email"].is_unique
    rows = frame_to_import_rows(frame)
    assert rows[19_999]["email"] == "p19999@example.org"


# -- merge_contact_for_put ---------------------------------------------------------------------


def test_put_body_keeps_everything_not_changed():
    existing = contact()
    body = merge_contact_for_put(existing, {"first_name": "Annabelle"}, "Account")
    assert body["first_name"] == "Annabelle"
    assert body["update_source"] == "Account"
    for name in ("last_name", "company_name", "job_title", "birthday_month", "birthday_day"):
        assert body[name] == existing[name]
    assert body["email_address"] == {"address": "ann@example.org", "permission_to_send": "implicit"}
    assert body["list_memberships"] == [LIST_ID]
    assert {"phone_number": "555-0100", "kind": "home"} in body["phone_numbers"]
    assert body["custom_fields"] == [{"custom_field_id": CF_ID, "value": "blue"}]
    assert len(body["street_addresses"]) == 2


def test_put_body_applies_subresource_changes():
    body = merge_contact_for_put(
        contact(),
        {
            "phone_work": "555-0199",
            "phone_home": None,
            "city": "Newtown",
            "cf:colour": "red",
            "email": "new@example.org",
        },
        "Contact",
        custom_field_ids={"colour": CF_ID},
    )
    phones = {p["kind"]: p["phone_number"] for p in body["phone_numbers"]}
    assert phones == {"mobile": "555-0101", "work": "555-0199"}
    home = next(a for a in body["street_addresses"] if a["kind"] == "home")
    assert home["city"] == "Newtown"
    assert home["street"] == "2 Home St"
    assert body["custom_fields"] == [{"custom_field_id": CF_ID, "value": "red"}]
    assert body["email_address"]["address"] == "new@example.org"
    assert body["update_source"] == "Contact"


def test_unsubscribe_sets_only_unsubscribed_with_reason():
    body = merge_contact_for_put(
        contact(), {"opted_out": True}, "Contact", opt_out_reason="asked at the desk"
    )
    assert body["email_address"]["permission_to_send"] == "unsubscribed"
    assert body["email_address"]["opt_out_reason"] == "asked at the desk"


@pytest.mark.parametrize("permission", ["unsubscribed", "implicit", "explicit", "pending_confirmation"])
def test_put_never_raises_permission(permission):
    existing = contact()
    existing["email_address"]["permission_to_send"] = permission
    body = merge_contact_for_put(
        existing,
        {"first_name": "X", "opted_out": False} if permission != "unsubscribed" else {"first_name": "X"},
        "Account",
    )
    assert body["email_address"]["permission_to_send"] == permission


def test_put_refuses_to_resubscribe():
    existing = contact()
    existing["email_address"]["permission_to_send"] = "unsubscribed"
    with pytest.raises(ValueError, match="re-subscribe"):
        merge_contact_for_put(existing, {"opted_out": False}, "Account")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nickname": "x"}, "not canonical"),
        ({"cf:colour": "red"}, "custom_field_id"),
        ({"email": None}, "email"),
    ],
)
def test_put_rejects_bad_changes(changes, message):
    with pytest.raises(ValueError, match=message):
        merge_contact_for_put(contact(), changes, "Account")


def test_put_rejects_unknown_update_source():
    with pytest.raises(ValueError, match="Robot"):
        merge_contact_for_put(contact(), {}, "Robot")
