"""bulk.py: import rows checked and split under CC's 40,000-contact and 4 MB request limits."""

from __future__ import annotations

import itertools
import json

import pytest

from cc_sync.constant_contact import bulk
from cc_sync.constant_contact.bulk import plan_import

LISTS = ["0b5b0d6c-0000-4000-8000-0000000000aa"]


def rows(n: int, pad: int = 0) -> list[dict]:
    return [{"email": f"person{i}@example.org", "first_name": "x" * min(pad, 50)} for i in range(n)]


def decoded(chunk) -> dict:
    return json.loads(chunk.body)


def test_40001_contacts_make_two_requests():
    chunks, errors = plan_import(rows(40_001), LISTS)
    assert errors == []
    assert [len(c.rows) for c in chunks] == [40_000, 1]
    assert all(len(c.body) < bulk.MAX_IMPORT_BYTES for c in chunks)
    last = decoded(chunks[1])
    assert last == {"list_ids": LISTS, "import_data": [rows(40_001)[40_000]]}


def test_exactly_40000_contacts_make_one_request():
    chunks, _ = plan_import(rows(40_000), LISTS)
    assert [len(c.rows) for c in chunks] == [40_000]


@pytest.mark.parametrize("max_bytes", [2_000, 5_000, 20_000])
def test_byte_limit_splits_and_every_body_is_the_rows_it_claims(max_bytes):
    data = rows(300, pad=40)
    chunks, errors = plan_import(data, LISTS, max_bytes=max_bytes)
    assert errors == []
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(chunk.body) <= max_bytes
        assert decoded(chunk)["import_data"] == [data[i] for i in chunk.rows]
    # Nothing lost, nothing twice, order kept.
    assert [i for c in chunks for i in c.rows] == list(range(300))
    # Chunks are packed: adding the next row to a chunk would have passed the limit.
    for chunk, following in itertools.pairwise(chunks):
        extra = len(json.dumps(data[following.rows[0]], separators=(",", ":")).encode()) + 1
        assert len(chunk.body) + extra > max_bytes


def test_count_limit_can_be_lowered():
    chunks, _ = plan_import(rows(25), LISTS, max_contacts=10)
    assert [len(c.rows) for c in chunks] == [10, 10, 5]


def test_non_ascii_is_measured_in_bytes():
    data = [{"email": f"p{i}@example.org", "first_name": "Zoë Ångström ü" * 3} for i in range(100)]
    chunks, _ = plan_import(data, LISTS, max_bytes=3_000)
    assert all(len(c.body) <= 3_000 for c in chunks)
    assert decoded(chunks[0])["import_data"][0]["first_name"].startswith("Zoë")


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ({"first_name": "No Email"}, "email", "no email"),
        ({"email": "not-an-email"}, "email", "invalid email"),
        ({"email": "a@example.org", "first_name": "x" * 51}, "first_name", "longer than 50"),
        ({"email": "a@example.org", "home_phone": "1" * 26}, "home_phone", "longer than 25"),
        ({"email": "a@example.org", "cf:notes": "y" * 256}, "cf:notes", "longer than 255"),
        ({"email": "a@example.org", "birthday_month": 13, "birthday_day": 1}, "birthday_month", "1 to 12"),
        ({"email": "a@example.org", "birthday_day": 5}, "birthday_month", "go together"),
        ({"email": "a@example.org", "permission_to_send": "explicit"}, "permission_to_send", "not a field"),
        ({"email": "a@example.org", **{f"cf:f{i}": "v" for i in range(26)}}, None, "at most 25"),
    ],
    ids=[
        "no-email",
        "bad-email",
        "long-name",
        "long-phone",
        "long-cf",
        "bad-month",
        "half-birthday",
        "permission",
        "too-many-cf",
    ],
)
def test_bad_rows_are_rejected_with_reason_and_the_rest_go_through(row, field, reason):
    good = rows(3)
    chunks, errors = plan_import([good[0], row, good[1], good[2]], LISTS)
    assert [i for c in chunks for i in c.rows] == [0, 2, 3]
    assert len(errors) == 1
    assert errors[0].row == 1
    assert errors[0].field == field
    assert reason in errors[0].reason


def test_duplicate_email_in_one_import_is_rejected_case_insensitively():
    data = [{"email": "Ann@Example.org"}, {"email": "bob@example.org"}, {"email": "ann@example.org"}]
    chunks, errors = plan_import(data, LISTS)
    assert [i for c in chunks for i in c.rows] == [0, 1]
    assert [(e.row, e.field) for e in errors] == [(2, "email")]
    assert "row 0" in errors[0].reason


def test_errors_do_not_quote_the_email():
    _, errors = plan_import([{"email": "secret.person@@example.org"}], LISTS)
    assert "secret.person" not in errors[0].reason


@pytest.mark.parametrize("list_ids", [[], [f"l{i}" for i in range(51)]])
def test_list_count_is_checked(list_ids):
    with pytest.raises(ValueError, match="list ids"):
        plan_import(rows(1), list_ids)


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("ann.lee+news@example.org", True),
        ("a@b.test", False),  # special-use domain: the fast path must not wave it through
        ("a..b@example.org", False),
        ("zoë@exämple.org", True),  # not plain ASCII: email-validator decides
        ("a@example", False),
    ],
)
def test_email_check_agrees_with_email_validator(email, valid):
    _, errors = plan_import([{"email": email}], LISTS)
    assert (errors == []) is valid
