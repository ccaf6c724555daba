"""validate_outgoing: bad rows are reported with a reason and everything else still goes through."""

from __future__ import annotations

import pandas as pd
import pytest

from cc_sync.engine.normalise import normalise_email, normalise_name
from cc_sync.member_db.mapping import parse_mapping
from cc_sync.member_db.validate import mask_email, mask_name_placeholder, validate_outgoing
from tests.member_db.conftest import DEMO_MAPPING


@pytest.fixture
def mapping():
    return parse_mapping(DEMO_MAPPING.read_text(encoding="utf-8"), source="demo.yaml")


def rows(**columns) -> pd.DataFrame:
    return pd.DataFrame({"member_id": [str(i) for i in range(len(next(iter(columns.values()))))], **columns})


@pytest.mark.parametrize(
    ("email", "first", "last", "field", "reason"),
    [
        ("not-an-email", "Ann", "Lee", "email", "invalid email"),
        ("two@@example.org", "Ann", "Lee", "email", "invalid email"),
        (None, "Ann", "Lee", "email", "missing email"),
        ("   ", "Ann", "Lee", "email", "missing email"),
        ("ann@example.org", "A" * 51, "Lee", "first_name", "longer than 50 characters"),
        ("ann@example.org", "Ann", None, "last_name", "required field last_name is blank"),
        ("x" * 45 + "@example.org", "Ann", "Lee", "email", "longer than 50 characters"),
    ],
)
def test_bad_row_reported_with_reason(email, first, last, field, reason) -> None:
    mapping = parse_mapping(
        DEMO_MAPPING.read_text(encoding="utf-8").replace("name_placeholder: Unknown", ""), source="m.yaml"
    )
    frame = rows(email=[email, "good@example.org"], first_name=[first, "Bo"], last_name=[last, "Ek"])
    valid, rejected = validate_outgoing(frame, mapping)
    assert valid["member_id"].tolist() == ["1"]
    assert rejected["member_id"].tolist() == ["0"]
    assert rejected["field"].tolist() == [field]
    assert reason in rejected["reason"].iloc[0]
    if email and "@" in email:
        assert email.strip() not in rejected["reason"].iloc[0]  # no addresses in reports


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        ("Ann\x07", "Ann"),
        ("Ann\x00e", "Anne"),
        ("\x1bAnn", "Ann"),
        ("Anne\nMarie", "Anne Marie"),
        ("Anne\r\n\x0bMarie", "Anne Marie"),
        ("Anne\x85Marie", "Anne Marie"),
        ("Anne\u2028Marie", "Anne Marie"),
        ("Ann\x7f\x9f", "Ann"),
        ("Ann", "Ann"),
    ],
)
def test_control_characters_are_cleaned_never_sent(mapping, raw: str, sent: str) -> None:
    frame = rows(email=["ann@example.org"], first_name=[raw], last_name=["Lee"], street=[f"1 {raw} St"])
    valid, rejected = validate_outgoing(frame, mapping)
    assert rejected.empty
    assert valid["first_name"].tolist() == [sent]
    assert valid["street"].tolist() == [f"1 {sent} St"]


def test_partial_rows_check_only_what_they_write(mapping) -> None:
    frame = rows(email=[None, "bad"], last_name=[None, "Lee"], city=["C" * 51, None])
    valid, rejected = validate_outgoing(frame, mapping, partial=True)
    assert valid.empty
    assert rejected[["member_id", "field", "code"]].values.tolist() == [
        ["1", "email", "invalid_email"],
        ["0", "city", "too_long"],
    ]


def test_placeholder_is_masked_on_the_way_back(mapping) -> None:
    contacts = pd.DataFrame({"first_name": ["Unknown", "Bo"], "last_name": [" Unknown", "Unknownson"]})
    masked = mask_name_placeholder(contacts, mapping)
    assert masked["first_name"].isna().tolist() == [True, False]
    assert masked["last_name"].tolist()[1] == "Unknownson"
    assert pd.isna(masked["last_name"].iloc[0])


def test_placeholder_fills_blank_names(mapping) -> None:
    frame = rows(email=[" Ann@Example.ORG ", "bo@example.org"], first_name=[None, "Bo"], last_name=["", "Ek"])
    valid, rejected = validate_outgoing(frame, mapping)
    assert rejected.empty
    assert valid["first_name"].tolist() == ["Unknown", "Bo"]
    assert valid["last_name"].tolist() == ["Unknown", "Ek"]
    assert valid["email"].tolist() == ["ann@example.org", "bo@example.org"]


def test_required_fields_without_placeholder(mapping) -> None:
    strict = parse_mapping(
        DEMO_MAPPING.read_text(encoding="utf-8")
        .replace("name_placeholder: Unknown", "")
        .replace("required_fields: [email, last_name]", "required_fields: [email, last_name, company_name]"),
        source="strict.yaml",
    )
    frame = rows(
        email=["a@example.org", "b@example.org"], last_name=["Lee", "Ek"], company_name=["Acme", None]
    )
    valid, rejected = validate_outgoing(frame, strict)
    assert valid["member_id"].tolist() == ["0"]
    assert rejected[["member_id", "field"]].values.tolist() == [["1", "company_name"]]


def test_many_problems_on_one_row_are_all_reported(mapping) -> None:
    frame = rows(email=["bad"], first_name=["\x00" + "x" * 60], last_name=["Lee"], city=["C" * 51])
    valid, rejected = validate_outgoing(frame, mapping)
    assert valid.empty
    assert sorted(rejected["field"]) == ["city", "email", "first_name"]
    assert set(rejected["code"]) == {"invalid_email", "too_long"}


def test_sample_members_validate(hook) -> None:
    frame = pd.concat(hook.extract_members(), ignore_index=True)
    valid, rejected = validate_outgoing(frame, hook.mapping)
    assert len(valid) + rejected["member_id"].nunique() == len(frame)
    reasons = set(rejected["reason"].str.split(":").str[0])
    assert "missing email" in reasons
    assert reasons <= {"missing email", "invalid email", "longer than 50 characters"}


def test_normalisers() -> None:
    assert normalise_email(pd.Series([" A@B.org ", "", None])).tolist()[:1] == ["a@b.org"]
    assert normalise_email(pd.Series(["", None])).isna().all()
    assert normalise_name(pd.Series(["  ÉLISE  Dupré ", "élise dupré"])).nunique() == 1
    assert mask_email("anne.smith@example.org") == "a***@example.org"
    assert mask_email(None) is None
