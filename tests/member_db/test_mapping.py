"""The mapping: the demo file loads, and every kind of mistake is refused with the file and line named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from cc_sync.member_db.mapping import (
    ConditionOp,
    LeavingScope,
    MappingError,
    NamePart,
    TagDirection,
    load_mapping,
    parse_mapping,
)
from cc_sync.member_db.states import StateFormat
from cc_sync.policy import FieldDirection, FieldOwner, SyncDirection

BASE = textwrap.dedent(
    """\
    table: members
    member_id: member_id
    direction: two_way
    fields:
      email: email
      first_name: first_name
      last_name: {column: last_name, owner: cc}
      company_name: company
    """
)


def parse(text: str):
    return parse_mapping(textwrap.dedent(text), source="m.yaml")


def test_demo_mapping_loads_with_its_settings(demo_mapping) -> None:
    m = demo_mapping
    assert m.table == "members"
    assert m.member_id_column == "member_id"
    assert m.direction == SyncDirection.TWO_WAY
    assert m.fields["company_name"].policy.owner == FieldOwner.MEMBER_DB
    assert m.fields["cf:favourite_activity"].policy.direction == FieldDirection.TO_CC
    assert m.fields["birthday_month"].part == NamePart.MONTH
    assert m.fields["birthday_day"].column == "birth_date"
    assert m.opt_out is not None
    assert m.opt_out.column == "email_opt_out"
    assert m.last_modified_column == "updated_at"
    assert m.soft_delete_column == "deleted_at"
    assert m.scope[0].column == "membership_status"
    assert m.scope[0].op == ConditionOp.EQ
    assert set(m.segments) == {"runners", "new_york", "everyone_with_a_company"}
    # A segment naming a field is resolved to that field's column.
    assert m.segments["new_york"][0].column == "state_code"
    assert m.name_placeholder == "Unknown"
    assert m.required_fields == ("email", "last_name")
    assert m.state_format == StateFormat.CODE
    assert m.fields["state"].holds == StateFormat.CODE
    assert m.cc_scope.main_list == "Members"
    assert not m.cc_scope.all_contacts
    assert m.bookkeeping.table_prefix == "ccsync_"
    assert set(m.policies()) == set(m.fields)


def test_full_name_column_gives_first_and_last_name() -> None:
    m = parse(
        """\
        table: people
        member_id: id
        full_name: {column: display_name, owner: member_db}
        fields:
          email: mail
        """
    )
    assert m.fields["first_name"].column == "display_name"
    assert m.fields["first_name"].part == NamePart.FIRST_NAME
    assert m.fields["last_name"].part == NamePart.LAST_NAME
    assert m.fields["last_name"].policy.owner == FieldOwner.MEMBER_DB
    assert m.full_name == "display_name"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        pytest.param(BASE + "  phone_fax: fax\n", 9, "unknown field 'phone_fax'", id="unknown-field"),
        pytest.param(BASE + "  email: other_email\n", 9, "'email' is given twice", id="field-mapped-twice"),
        pytest.param(
            BASE + "  job_title: company\n", 9, "column 'company' is mapped twice", id="column-twice"
        ),
        pytest.param(
            BASE.replace("owner: cc", "owner: nobody"),
            7,
            "owner must be one of latest, member_db, cc",
            id="owner",
        ),
        pytest.param(BASE.replace("two_way", "sideways"), 3, "direction must be one of", id="sync-direction"),
        pytest.param(BASE + "colour: blue\n", 9, "unknown key 'colour'", id="unknown-key"),
        pytest.param(
            BASE + "segments:\n  s: [{column: secret_notes, op: eq, value: x}]\n",
            10,
            "not a mapped column",
            id="segment-unmapped-column",
        ),
        pytest.param(
            BASE + "segments:\n  s:\n    - {column: company, op: like, value: x}\n",
            11,
            "op must be one of",
            id="segment-bad-op",
        ),
        pytest.param(
            BASE + "segments:\n  s:\n    - {column: company, op: in, value: x}\n",
            11,
            "needs a non-empty list",
            id="segment-in-needs-list",
        ),
        pytest.param(
            BASE + "scope:\n  - {column: status, op: eq}\n",
            10,
            "op eq on column 'status' needs a value",
            id="scope",
        ),
        pytest.param(
            BASE + "scope:\n  - {column: status, op: is_null, value: 1}\n",
            10,
            "takes no value",
            id="scope-null",
        ),
        pytest.param(BASE + "required_fields: [job_title]\n", 9, "not mapped", id="required-unmapped"),
        pytest.param(BASE + "state_format: emoji\n", 9, "state_format must be one of code, name", id="state"),
        pytest.param(
            BASE + "full_name: full\n", 6, "both to its own column and to full_name", id="full-name"
        ),
        pytest.param(
            BASE + "  birthday: {column: born, direction: both}\n",
            9,
            "can only go to_cc",
            id="birthday-from-cc",
        ),
        pytest.param(BASE.replace("  email: email\n", ""), 4, "must map the email field", id="no-email"),
        pytest.param(BASE + "bookkeeping: {table_prefix: 'x; drop'}\n", 9, "table_prefix", id="prefix"),
        pytest.param(BASE + "fields: [\n", 10, "not valid YAML", id="bad-yaml"),
    ],
)
def test_bad_mapping_names_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "member_mapping.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert f"{path}, line {line}:" in str(err.value)
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("replace", "by", "words"),
    [
        pytest.param(
            "table: members", "table: memberz", "table 'memberz' does not exist", id="unknown-table"
        ),
        pytest.param("job_title: job_title", "job_title: job_name", "column 'job_name'", id="unknown-column"),
        pytest.param(
            "last_modified: updated_at", "last_modified: city", "not a date/time type", id="lm-type"
        ),
        pytest.param(
            "city: city", "city: updated_at", "incompatible with a text field", id="text-from-datetime"
        ),
        pytest.param("birthday: birth_date", "birthday: city", "needs a DATE column", id="birthday-type"),
        pytest.param(
            "column: membership_status", "column: status", "column 'status' (scope)", id="scope-column"
        ),
    ],
)
def test_validate_against_database(members_url: str, replace: str, by: str, words: str) -> None:
    from tests.member_db.conftest import DEMO_MAPPING

    text = DEMO_MAPPING.read_text(encoding="utf-8")
    assert replace in text
    mapping = parse_mapping(text.replace(replace, by, 1), source="demo.yaml")
    engine = sa.create_engine(members_url)
    try:
        with pytest.raises(MappingError) as err:
            mapping.validate_against(engine)
    finally:
        engine.dispose()
    assert "demo.yaml, line " in str(err.value)
    assert words in str(err.value)
    line = next(i for i, raw in enumerate(text.splitlines(), 1) if replace in raw)
    # The named line is the one with the offending entry (or its enclosing key for scope entries).
    assert f"line {line}:" in str(err.value)


def test_demo_mapping_fits_the_sample_table(members_url: str, demo_mapping) -> None:
    engine = sa.create_engine(members_url)
    try:
        demo_mapping.validate_against(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", LeavingScope.REMOVE_FROM_LIST),
        ("  leaving_scope: keep\n", LeavingScope.KEEP),
        ("  leaving_scope: remove_from_list\n", LeavingScope.REMOVE_FROM_LIST),
    ],
    ids=["default", "keep", "remove"],
)
def test_leaving_scope_setting(setting: str, expected: LeavingScope) -> None:
    m = parse_mapping(BASE + "cc_scope:\n  main_list: Members\n" + setting, source="m.yaml")
    assert m.cc_scope.leaving_scope == expected


def test_leaving_scope_refuses_a_delete_with_the_line() -> None:
    with pytest.raises(MappingError, match=r"m\.yaml, line 11: cc_scope\.leaving_scope must be one of"):
        parse_mapping(BASE + "cc_scope:\n  main_list: Members\n  leaving_scope: delete\n", source="m.yaml")


SEGMENTED = BASE + "segments:\n  with_company: [{field: company_name, op: not_null}]\n"


def test_list_rules_bind_a_segment_to_a_list() -> None:
    m = parse(
        SEGMENTED
        + "list_rules:\n"
        + "  - {segment: with_company, list: Companies}\n"
        + "  - {segment: with_company, list: 1f0e}\n"
    )
    assert [(r.segment, r.list_ref) for r in m.list_rules] == [
        ("with_company", "Companies"),
        ("with_company", "1f0e"),
    ]
    assert parse(BASE).list_rules == ()


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("list_rules: {segment: with_company}\n", "line 11: list_rules must be a list"),
        ("list_rules:\n  - {segment: nobody, list: X}\n", "line 12: list rule names segment 'nobody'"),
        (
            "list_rules:\n  - {segment: with_company}\n",
            "line 12: a list rule's list must be a non-empty string",
        ),
        (
            "list_rules:\n  - {segment: with_company, list: X, mode: add}\n",
            "unknown key 'mode' in a list rule",
        ),
        (
            "list_rules:\n  - {segment: with_company, list: X}\n  - {segment: with_company, list: X}\n",
            "line 13: list 'X' has two list rules",
        ),
        (
            "cc_scope: {main_list: Members}\nlist_rules:\n  - {segment: with_company, list: Members}\n",
            "line 13: list 'Members' is the sync's main list",
        ),
    ],
)
def test_a_bad_list_rule_names_its_line(rules: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse(SEGMENTED + rules)


def test_tags_give_each_column_its_prefix_and_direction() -> None:
    tags = 'tags:\n  membership_type: {prefix: "Member: ", direction: two_way}\n  chapter:\n'
    mapping = parse_mapping(BASE + tags, source="m.yaml")
    membership, chapter = mapping.tags["membership_type"], mapping.tags["chapter"]
    assert (membership.prefix, membership.direction) == ("Member: ", TagDirection.TWO_WAY)
    assert (chapter.prefix, chapter.direction) == ("chapter: ", TagDirection.TO_CC)
    assert membership.tag_name("Gold") == "Member: Gold"
    assert membership.value_of("Member: Gold") == "Gold"
    assert membership.value_of("chapter: North") is None
    assert membership.value_of("Member: ") is None


@pytest.mark.parametrize(
    ("tags", "line", "words"),
    [
        pytest.param("  a: {direction: sideways}\n", 10, "tags.a.direction must be one of", id="direction"),
        pytest.param(
            "  a: {prefix: ''}\n", 10, "tags.a.prefix must be a non-empty string", id="empty-prefix"
        ),
        pytest.param("  a: {colour: red}\n", 10, "unknown key 'colour' in tags.a", id="unknown-key"),
        pytest.param(
            "  a: {prefix: 'X'}\n  b: {prefix: 'X: '}\n",
            11,
            "overlaps tags.a.prefix",
            id="overlapping-prefix",
        ),
        pytest.param("  company: {direction: two_way}\n", 10, "cannot also be mapped", id="two-way-field"),
        pytest.param("  member_id: {}\n", 10, "member id column cannot be a tag", id="member-id"),
        pytest.param("  - membership_type\n", 9, "tags (a mapping", id="not-a-mapping"),
    ],
)
def test_bad_tags_name_the_line(tags: str, line: int, words: str) -> None:
    with pytest.raises(MappingError) as err:
        parse_mapping(BASE + "tags:\n" + tags, source="m.yaml")
    assert f"m.yaml, line {line}:" in str(err.value)
    assert words in str(err.value)


def test_a_tag_column_must_exist_in_the_table(members_url: str) -> None:
    from tests.member_db.conftest import DEMO_MAPPING

    text = DEMO_MAPPING.read_text(encoding="utf-8") + "tags:\n  chapter: {}\n"
    mapping = parse_mapping(text, source="demo.yaml")
    engine = sa.create_engine(members_url)
    try:
        with pytest.raises(MappingError, match=r"column 'chapter' \(tags.chapter\) does not exist"):
            mapping.validate_against(engine)
    finally:
        engine.dispose()
