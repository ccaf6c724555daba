"""The member mapping: how the organisation's member table maps onto the canonical contact fields.

The mapping is a YAML file (the demo's is include/config/member_mapping.yaml, documented there key
by key). It is validated twice:

- on load (:func:`load_mapping`): structure, known fields, policies, a field or column mapped twice,
  segments and scope conditions. Every error names the file and the line, because the YAML is
  loaded with a loader that keeps each node's position.
- against the live database (:meth:`MemberMapping.validate_against`): the table and every column
  exist and have a type the field can hold.

Filters (the scope and the segments) are declarative ``column``/``op``/``value`` conditions, never
raw SQL, so they can be checked here and rendered safely by SQLAlchemy in the hook.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import sqlalchemy as sa

from cc_sync.errors import NotRetryableError
from cc_sync.fields import CANONICAL_FIELDS, FieldKind, is_custom_field, is_known_field
from cc_sync.member_db.states import StateFormat
from cc_sync.policy import FieldDirection, FieldOwner, FieldPolicy, SyncDirection

__all__ = [
    "CcScope",
    "Condition",
    "ConditionOp",
    "FieldMapping",
    "LeavingScope",
    "MappingError",
    "MemberMapping",
    "NamePart",
    "OptOut",
    "SoftDelete",
    "TagDirection",
    "TagRule",
    "load_mapping",
]


class MappingError(NotRetryableError, ValueError):
    """A mapping that cannot be used; the message names the file and line of the offending entry."""


class ConditionOp(StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    IS_NULL = "is_null"
    NOT_NULL = "not_null"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"


_VALUELESS_OPS = {ConditionOp.IS_NULL, ConditionOp.NOT_NULL}
_LIST_OPS = {ConditionOp.IN, ConditionOp.NOT_IN}


class NamePart(StrEnum):
    """Which part of a source column a field takes (full-name split, birthday date)."""

    WHOLE = "whole"
    FIRST_NAME = "first_name"  # the first word of a full-name column
    LAST_NAME = "last_name"  # the rest of a full-name column
    MONTH = "month"  # the month of a date column
    DAY = "day"  # the day of a date column


@dataclass(frozen=True)
class Condition:
    column: str
    op: ConditionOp
    value: Any = None
    line: int = 0

    def to_sql(self, col: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        import sqlalchemy as sa  # here, not at the top: DAG files load mappings when parsed

        ops = {
            ConditionOp.EQ: lambda: col == self.value,
            ConditionOp.NE: lambda: sa.or_(col != self.value, col.is_(None)),
            ConditionOp.IN: lambda: col.in_(self.value),
            ConditionOp.NOT_IN: lambda: sa.or_(col.not_in(self.value), col.is_(None)),
            ConditionOp.IS_NULL: lambda: col.is_(None),
            ConditionOp.NOT_NULL: lambda: col.is_not(None),
            ConditionOp.GT: lambda: col > self.value,
            ConditionOp.GTE: lambda: col >= self.value,
            ConditionOp.LT: lambda: col < self.value,
            ConditionOp.LTE: lambda: col <= self.value,
        }
        return ops[self.op]()


@dataclass(frozen=True)
class FieldMapping:
    column: str
    policy: FieldPolicy = field(default_factory=FieldPolicy)
    part: NamePart = NamePart.WHOLE
    # For the state field: whether the column holds codes or names.
    holds: StateFormat | None = None
    line: int = 0


@dataclass(frozen=True)
class OptOut:
    column: str
    # Values of the column meaning "opted out"; the first is written when CC reports an opt-out.
    opted_out_values: tuple[Any, ...] = (True,)
    line: int = 0


class SoftDeleteWhen(StrEnum):
    NOT_NULL = "not_null"  # e.g. a deleted_at timestamp
    TRUE = "true"  # e.g. an is_deleted flag


@dataclass(frozen=True)
class SoftDelete:
    column: str
    deleted_when: SoftDeleteWhen = SoftDeleteWhen.NOT_NULL
    line: int = 0

    def active_condition(self, col: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        import sqlalchemy as sa

        if self.deleted_when == SoftDeleteWhen.NOT_NULL:
            return col.is_(None)
        return sa.or_(col.is_(None), col == sa.false())


class LeavingScope(StrEnum):
    """What happens in CC to a linked member who leaves the mapping's scope (lapsed, soft-deleted)."""

    KEEP = "keep"  # nothing: the contact stays as it is
    REMOVE_FROM_LIST = "remove_from_list"  # off the main list; still a contact, never unsubscribed


@dataclass(frozen=True)
class CcScope:
    """Which Constant Contact contacts the sync covers: one main list (by exact name) or all."""

    main_list: str | None = None
    leaving_scope: LeavingScope = LeavingScope.REMOVE_FROM_LIST

    @property
    def all_contacts(self) -> bool:
        return self.main_list is None


@dataclass(frozen=True)
class BookkeepingSettings:
    table_prefix: str = "ccsync_"
    # Another database for the bookkeeping tables; None keeps them beside the member table.
    database_url: str | None = None


# What an attendance column may hold: a value of the registration (cc_sync.events writes them).
ATTENDANCE_VALUES = frozenset(
    {
        "event_id",
        "event_name",
        "registration_status",
        "payment_status",
        "checkin_status",
        "tickets",
        "checked_in_tickets",
        "total",
        "registered_at",
    }
)


@dataclass(frozen=True)
class EventAttendance:
    """A member-side table the events job writes a row per member registration into (optional)."""

    table: str
    registration_id_column: str  # holds CC's registration id: the row's key
    member_id_column: str
    columns: dict[str, str]  # table column -> one of ATTENDANCE_VALUES
    line: int = 0


class TagDirection(StrEnum):
    """Which way a tag rule syncs: member column -> CC tags only, or CC tag changes written back too."""

    TO_CC = "to_cc"
    TWO_WAY = "two_way"


MAX_TAG_NAME = 255  # CC's limit on a tag's name (TagPost.name)


@dataclass(frozen=True)
class TagRule:
    """A member column kept as Constant Contact tags: the value ``v`` is the tag ``prefix + v``."""

    column: str
    prefix: str
    direction: TagDirection = TagDirection.TO_CC
    line: int = 0

    def tag_name(self, value: str) -> str:
        return f"{self.prefix}{value}"

    def value_of(self, tag_name: str) -> str | None:
        """The column value a tag stands for, or None when the tag is not this rule's."""
        if tag_name.startswith(self.prefix) and len(tag_name) > len(self.prefix):
            return tag_name[len(self.prefix) :]
        return None


@dataclass(frozen=True)
class ListRule:
    """A named segment the scheduled sync keeps a Constant Contact list equal to (``list_rules``)."""

    segment: str
    list_ref: str  # the list's id or exact name (``list:`` in the YAML)
    line: int = 0


@dataclass(frozen=True)
class MemberMapping:
    source: str
    table: str
    member_id_column: str
    fields: dict[str, FieldMapping]
    opt_out: OptOut | None = None
    last_modified_column: str | None = None
    soft_delete: SoftDelete | None = None
    scope: tuple[Condition, ...] = ()
    segments: dict[str, tuple[Condition, ...]] = field(default_factory=dict)
    direction: SyncDirection = SyncDirection.TWO_WAY
    full_name_column: str | None = None
    name_placeholder: str | None = None
    required_fields: tuple[str, ...] = ("email",)
    state_format: StateFormat = StateFormat.CODE
    cc_scope: CcScope = CcScope()
    bookkeeping: BookkeepingSettings = BookkeepingSettings()
    schema: str | None = None
    event_attendance: EventAttendance | None = None
    list_rules: tuple[ListRule, ...] = ()
    tags: dict[str, TagRule] = field(default_factory=dict)  # member column -> its tag rule
    lines: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def soft_delete_column(self) -> str | None:
        return self.soft_delete.column if self.soft_delete else None

    @property
    def full_name(self) -> str | None:
        return self.full_name_column

    def policies(self) -> dict[str, FieldPolicy]:
        return {name: fm.policy for name, fm in self.fields.items()}

    def source_columns(self) -> list[str]:
        """Every table column the sync reads, each once, in mapping order."""
        cols = [self.member_id_column]
        cols += [fm.column for fm in self.fields.values()]
        for extra in (self.opt_out.column if self.opt_out else None, self.last_modified_column):
            if extra:
                cols.append(extra)
        return list(dict.fromkeys(cols))

    def where_in_scope(self, table: sa.Table) -> sa.ColumnElement[bool]:
        import sqlalchemy as sa

        clauses = [cond.to_sql(table.c[cond.column]) for cond in self.scope]
        if self.soft_delete:
            clauses.append(self.soft_delete.active_condition(table.c[self.soft_delete.column]))
        return sa.and_(sa.true(), *clauses)

    def where_segment(self, table: sa.Table, name: str) -> sa.ColumnElement[bool]:
        import sqlalchemy as sa

        if name not in self.segments:
            raise KeyError(f"unknown segment {name!r}; the mapping defines {sorted(self.segments)}")
        return sa.and_(sa.true(), *(cond.to_sql(table.c[cond.column]) for cond in self.segments[name]))

    # ---- validation against the live database -------------------------------------------------

    def validate_against(self, engine: sa.Engine) -> None:
        """Check that the table and columns exist and that each column's type suits its field."""
        import sqlalchemy as sa

        inspector = sa.inspect(engine)
        if not inspector.has_table(self.table, schema=self.schema):
            raise MappingError(
                self._at("table", f"table {self.table!r} does not exist in the member database")
            )
        columns = {c["name"]: c["type"] for c in inspector.get_columns(self.table, schema=self.schema)}

        def need(column: str, where: str, line: int | None = None) -> sa.types.TypeEngine[Any]:
            if column not in columns:
                msg = f"column {column!r} ({where}) does not exist in table {self.table!r}"
                raise MappingError(self._at_line(line if line is not None else self.lines.get(where, 0), msg))
            return columns[column]

        need(self.member_id_column, "member_id")
        for name, fm in self.fields.items():
            col_type = need(fm.column, f"field {name}", fm.line)
            problem = _type_problem(name, fm, col_type)
            if problem:
                raise MappingError(self._at_line(fm.line, problem))
        if self.opt_out:
            need(self.opt_out.column, "opt_out", self.opt_out.line)
        if self.last_modified_column:
            lm_type = need(self.last_modified_column, "last_modified")
            if not _is_temporal(lm_type):
                raise MappingError(
                    self._at(
                        "last_modified",
                        f"column {self.last_modified_column!r} is {lm_type}, not a date/time type",
                    )
                )
        if self.soft_delete:
            need(self.soft_delete.column, "soft_delete", self.soft_delete.line)
        for cond in self.scope:
            need(cond.column, "scope", cond.line)
        for seg_name, conds in self.segments.items():
            for cond in conds:
                need(cond.column, f"segment {seg_name}", cond.line)
        for rule in self.tags.values():
            need(rule.column, f"tags.{rule.column}", rule.line)

    def _at(self, key: str, message: str) -> str:
        return self._at_line(self.lines.get(key, 0), message)

    def _at_line(self, line: int, message: str) -> str:
        return f"{self.source}, line {line}: {message}"


def _is_temporal(col_type: sa.types.TypeEngine[Any]) -> bool:
    import sqlalchemy as sa

    return isinstance(col_type, sa.Date | sa.DateTime)  # DateTime covers TIMESTAMP and DATETIME


def _type_problem(name: str, fm: FieldMapping, col_type: sa.types.TypeEngine[Any]) -> str | None:
    import sqlalchemy as sa

    kind = FieldKind.TEXT if is_custom_field(name) else CANONICAL_FIELDS[name].kind
    if fm.part in (NamePart.MONTH, NamePart.DAY):
        if not _is_temporal(col_type):
            return f"field {name}: column {fm.column!r} is {col_type}, a birthday needs a DATE column"
        return None
    if kind == FieldKind.INTEGER:
        if not isinstance(col_type, sa.Integer | sa.Numeric):
            return f"field {name}: column {fm.column!r} is {col_type}, an integer field needs a number column"
        return None
    if isinstance(col_type, sa.LargeBinary | sa.Boolean | sa.JSON) or _is_temporal(col_type):
        return f"field {name}: column {fm.column!r} is {col_type}, incompatible with a text field"
    flows_in = fm.policy.direction != FieldDirection.TO_CC
    if flows_in and not isinstance(col_type, sa.String | sa.Text | sa.Enum):
        # Numbers read fine as text, but text from CC cannot be written back into them.
        return (
            f"field {name}: column {fm.column!r} is {col_type}; text from Constant Contact cannot be "
            "written into it (use direction: to_cc, or a text column)"
        )
    return None


# ---- loading -----------------------------------------------------------------------------------


class _LineDict(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers its own line and each key's line (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class _LineList(list):  # type: ignore[type-arg]
    line: int = 0
    item_lines: list[int]


# libyaml's parser when PyYAML was built with it: the send-list DAG reads the mapping for its
# form each time its file is parsed, and the C parser takes a fraction of the pure-Python one's time.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that keeps node positions and refuses duplicate keys (a field mapped twice)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            raise MappingError(
                f"{loader.name}, line {line}: {key!r} is given twice (first on line {result.key_lines[key]})"
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _LineList:
    result = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)

_TOP_LEVEL_KEYS = {
    "table",
    "schema",
    "member_id",
    "direction",
    "fields",
    "defaults",
    "full_name",
    "name_placeholder",
    "required_fields",
    "state_format",
    "opt_out",
    "last_modified",
    "soft_delete",
    "scope",
    "segments",
    "cc_scope",
    "bookkeeping",
    "event_attendance",
    "list_rules",
    "tags",
}
_FIELD_KEYS = {"column", "direction", "owner", "blank_overwrites", "holds"}


class _Reader:
    """Turns the located YAML into a :class:`MemberMapping`, raising errors that name the line."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, line: int, message: str) -> MappingError:
        return MappingError(f"{self.source}, line {line}: {message}")

    def mapping_at(self, value: Any, line: int, what: str) -> _LineDict:
        if not isinstance(value, _LineDict):
            raise self.fail(line, f"{what} must be a mapping, got {type(value).__name__}")
        return value

    def text_at(self, value: Any, line: int, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(line, f"{what} must be a non-empty string, got {value!r}")
        return value

    def enum_at(self, enum: type[StrEnum], value: Any, line: int, what: str) -> Any:
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(m.value for m in enum)  # type: ignore[attr-defined]
            raise self.fail(line, f"{what} must be one of {allowed}; got {value!r}") from None

    def check_keys(self, node: _LineDict, allowed: set[str], what: str) -> None:
        for key in node:
            if key not in allowed:
                raise self.fail(
                    node.key_lines[key], f"unknown key {key!r} in {what}; allowed: {sorted(allowed)}"
                )

    def conditions(self, value: Any, line: int, what: str) -> tuple[Condition, ...]:
        if value is None:
            return ()
        if not isinstance(value, _LineList):
            raise self.fail(line, f"{what} must be a list of conditions (column, op, value)")
        if not value:
            raise self.fail(line, f"{what} has no conditions")
        return tuple(
            self.condition(item, item_line, what)
            for item, item_line in zip(value, value.item_lines, strict=True)
        )

    def condition(self, item: Any, line: int, what: str) -> Condition:
        node = self.mapping_at(item, line, f"a condition of {what}")
        self.check_keys(node, {"column", "field", "op", "value"}, f"a condition of {what}")
        key = "column" if "column" in node else "field"
        if key not in node or ("column" in node and "field" in node):
            raise self.fail(node.line, f"a condition of {what} needs exactly one of column or field")
        column = self.text_at(node[key], node.key_lines[key], key)
        op = self.enum_at(ConditionOp, node.get("op", "eq"), node.key_lines.get("op", node.line), "op")
        value = node.get("value")
        if op in _VALUELESS_OPS:
            if "value" in node:
                raise self.fail(node.key_lines["value"], f"op {op.value} takes no value")
        elif "value" not in node:
            raise self.fail(node.line, f"op {op.value} on column {column!r} needs a value")
        elif op in _LIST_OPS:
            if not isinstance(value, list) or not value:
                raise self.fail(node.key_lines["value"], f"op {op.value} needs a non-empty list of values")
            value = tuple(value)
        elif isinstance(value, list | dict):
            raise self.fail(node.key_lines["value"], f"op {op.value} needs a single value, not a list")
        return Condition(column=column, op=op, value=value, line=node.line)

    def policy(self, node: _LineDict, defaults: FieldPolicy) -> FieldPolicy:
        direction = defaults.direction
        owner = defaults.owner
        blank = defaults.blank_overwrites
        if "direction" in node:
            direction = self.enum_at(
                FieldDirection, node["direction"], node.key_lines["direction"], "direction"
            )
        if "owner" in node:
            owner = self.enum_at(FieldOwner, node["owner"], node.key_lines["owner"], "owner")
        if "blank_overwrites" in node:
            blank = node["blank_overwrites"]
            if not isinstance(blank, bool):
                raise self.fail(node.key_lines["blank_overwrites"], "blank_overwrites must be true or false")
        return FieldPolicy(direction=direction, owner=owner, blank_overwrites=blank)

    def field_entries(
        self, name: str, value: Any, line: int, defaults: FieldPolicy
    ) -> Iterable[tuple[str, FieldMapping]]:
        if isinstance(value, str):
            node = _LineDict(column=value)
            node.line, node.key_lines = line, {"column": line}
        else:
            node = self.mapping_at(value, line, f"field {name!r}")
        self.check_keys(node, _FIELD_KEYS, f"field {name!r}")
        if "column" not in node:
            raise self.fail(node.line, f"field {name!r} has no column")
        column = self.text_at(node["column"], node.key_lines["column"], f"field {name!r} column")
        policy = self.policy(node, defaults)
        if name == "birthday":
            # A date column feeds CC's month + day; a date without its year cannot come back.
            if policy.direction != FieldDirection.TO_CC and "direction" in node:
                raise self.fail(
                    node.key_lines["direction"],
                    "birthday from a date column can only go to_cc (CC has no year)",
                )
            policy = FieldPolicy(FieldDirection.TO_CC, policy.owner, policy.blank_overwrites)
            yield "birthday_month", FieldMapping(column, policy, NamePart.MONTH, line=line)
            yield "birthday_day", FieldMapping(column, policy, NamePart.DAY, line=line)
            return
        if not is_known_field(name):
            raise self.fail(
                line,
                f"unknown field {name!r}; use a canonical field ({', '.join(CANONICAL_FIELDS)}, birthday) "
                "or a custom field as 'cf:<name>'",
            )
        holds = None
        if "holds" in node:
            if name != "state":
                raise self.fail(node.key_lines["holds"], "holds is only for the state field")
            holds = self.enum_at(StateFormat, node["holds"], node.key_lines["holds"], "holds")
        elif name == "state":
            holds = StateFormat.CODE
        yield name, FieldMapping(column, policy, holds=holds, line=line)

    def read(self, doc: Any) -> MemberMapping:
        root = self.mapping_at(doc, 1, "the mapping file")
        self.check_keys(root, _TOP_LEVEL_KEYS, "the mapping")
        lines = dict(root.key_lines)
        for key in ("table", "member_id", "fields"):
            if key not in root:
                raise self.fail(root.line, f"the mapping has no {key!r}")
        table = self.text_at(root["table"], lines["table"], "table")
        member_id = self.text_at(root["member_id"], lines["member_id"], "member_id")
        direction = self.enum_at(
            SyncDirection, root.get("direction", "two_way"), lines.get("direction", 0), "direction"
        )

        defaults = FieldPolicy()
        if "defaults" in root:
            node = self.mapping_at(root["defaults"], lines["defaults"], "defaults")
            self.check_keys(node, {"direction", "owner", "blank_overwrites"}, "defaults")
            defaults = self.policy(node, defaults)

        fields_node = self.mapping_at(root["fields"], lines["fields"], "fields")
        fields: dict[str, FieldMapping] = {}
        column_users: dict[str, str] = {}
        for name, value in fields_node.items():
            line = fields_node.key_lines[name]
            for canonical, fm in self.field_entries(str(name), value, line, defaults):
                if canonical in fields:
                    raise self.fail(
                        line, f"field {canonical!r} is mapped twice (also on line {fields[canonical].line})"
                    )
                other = column_users.get(fm.column)
                if other and fm.part == NamePart.WHOLE:
                    raise self.fail(
                        line, f"column {fm.column!r} is mapped twice: to {other!r} and to {canonical!r}"
                    )
                column_users.setdefault(fm.column, canonical)
                fields[canonical] = fm

        full_name_column = None
        if root.get("full_name") is not None:
            fline = lines["full_name"]
            node = root["full_name"]
            fn_node = (
                _LineDict(column=node) if isinstance(node, str) else self.mapping_at(node, fline, "full_name")
            )
            fn_node.key_lines = getattr(fn_node, "key_lines", {"column": fline})
            self.check_keys(fn_node, {"column", "direction", "owner", "blank_overwrites"}, "full_name")
            full_name_column = self.text_at(fn_node.get("column"), fline, "full_name column")
            for part in ("first_name", "last_name"):
                if part in fields:
                    raise self.fail(
                        fields[part].line,
                        f"{part} is mapped both to its own column and to full_name (line {fline})",
                    )
            if full_name_column in column_users:
                raise self.fail(fline, f"column {full_name_column!r} is mapped twice")
            policy = self.policy(fn_node, defaults) if isinstance(node, _LineDict) else defaults
            fields["first_name"] = FieldMapping(full_name_column, policy, NamePart.FIRST_NAME, line=fline)
            fields["last_name"] = FieldMapping(full_name_column, policy, NamePart.LAST_NAME, line=fline)

        if "email" not in fields:
            raise self.fail(lines["fields"], "the mapping must map the email field")
        if fields["email"].column == member_id or any(
            fm.column == member_id for fm in fields.values() if fm.part == NamePart.WHOLE
        ):
            raise self.fail(lines["member_id"], f"column {member_id!r} is both the member id and a field")

        opt_out = None
        if root.get("opt_out") is not None:
            node = self.mapping_at(root["opt_out"], lines["opt_out"], "opt_out")
            self.check_keys(node, {"column", "opted_out_values"}, "opt_out")
            column = self.text_at(node.get("column"), node.line, "opt_out column")
            if column in column_users:
                raise self.fail(node.line, f"column {column!r} is mapped twice: as opt_out and as a field")
            values = node.get("opted_out_values", [True])
            if not isinstance(values, list) or not values:
                raise self.fail(
                    node.key_lines.get("opted_out_values", node.line),
                    "opted_out_values must be a non-empty list",
                )
            opt_out = OptOut(column=column, opted_out_values=tuple(values), line=node.line)

        last_modified = None
        if root.get("last_modified") is not None:
            last_modified = self.text_at(root["last_modified"], lines["last_modified"], "last_modified")

        soft_delete = None
        if root.get("soft_delete") is not None:
            sline = lines["soft_delete"]
            value = root["soft_delete"]
            if isinstance(value, str):
                soft_delete = SoftDelete(column=value, line=sline)
            else:
                node = self.mapping_at(value, sline, "soft_delete")
                self.check_keys(node, {"column", "deleted_when"}, "soft_delete")
                when = self.enum_at(
                    SoftDeleteWhen,
                    node.get("deleted_when", "not_null"),
                    node.line,
                    "soft_delete.deleted_when",
                )
                column = self.text_at(node.get("column"), sline, "soft_delete column")
                soft_delete = SoftDelete(column=column, deleted_when=when, line=sline)

        whole_columns = {name: fm.column for name, fm in fields.items() if fm.part == NamePart.WHOLE}
        scope = tuple(
            Condition(whole_columns.get(c.column, c.column), c.op, c.value, c.line)
            for c in self.conditions(root.get("scope"), lines.get("scope", 0), "scope")
        )

        segments: dict[str, tuple[Condition, ...]] = {}
        if root.get("segments") is not None:
            node = self.mapping_at(root["segments"], lines["segments"], "segments")
            field_columns = {name: fm.column for name, fm in fields.items() if fm.part == NamePart.WHOLE}
            mapped_columns = set(field_columns.values()) | {c for c in (member_id, last_modified) if c}
            if opt_out:
                mapped_columns.add(opt_out.column)
            for seg_name, seg in node.items():
                conds = self.conditions(seg, node.key_lines[seg_name], f"segment {seg_name!r}")
                resolved = []
                for cond in conds:
                    # A segment may name a canonical field instead of its column.
                    column = field_columns.get(cond.column, cond.column)
                    if column not in mapped_columns:
                        raise self.fail(
                            cond.line,
                            f"segment {seg_name!r} filters on {cond.column!r}, which is not a mapped column "
                            f"or field (mapped: {sorted(mapped_columns)})",
                        )
                    resolved.append(Condition(column, cond.op, cond.value, cond.line))
                segments[str(seg_name)] = tuple(resolved)

        placeholder = root.get("name_placeholder")
        if placeholder is not None:
            placeholder = self.text_at(placeholder, lines["name_placeholder"], "name_placeholder")

        required: tuple[str, ...] = ("email",)
        if root.get("required_fields") is not None:
            rline = lines["required_fields"]
            values = root["required_fields"]
            if not isinstance(values, list):
                raise self.fail(rline, "required_fields must be a list of field names")
            for name in values:
                if name not in fields:
                    raise self.fail(rline, f"required field {name!r} is not mapped")
            required = tuple(dict.fromkeys(["email", *values]))

        state_format = self.enum_at(
            StateFormat, root.get("state_format", "code"), lines.get("state_format", 0), "state_format"
        )

        cc_scope = CcScope()
        if root.get("cc_scope") is not None:
            cline = lines["cc_scope"]
            value = root["cc_scope"]
            if value == "all_contacts":
                cc_scope = CcScope()
            else:
                node = self.mapping_at(value, cline, "cc_scope (a mapping with main_list, or all_contacts)")
                self.check_keys(node, {"main_list", "leaving_scope"}, "cc_scope")
                leaving = self.enum_at(
                    LeavingScope,
                    node.get("leaving_scope", LeavingScope.REMOVE_FROM_LIST.value),
                    node.key_lines.get("leaving_scope", cline),
                    "cc_scope.leaving_scope",
                )
                cc_scope = CcScope(
                    main_list=self.text_at(node.get("main_list"), cline, "cc_scope.main_list"),
                    leaving_scope=leaving,
                )

        bookkeeping = BookkeepingSettings()
        if root.get("bookkeeping") is not None:
            node = self.mapping_at(root["bookkeeping"], lines["bookkeeping"], "bookkeeping")
            self.check_keys(node, {"table_prefix", "database_url"}, "bookkeeping")
            prefix = node.get("table_prefix", "ccsync_")
            if not isinstance(prefix, str) or not prefix.replace("_", "").isalnum() or len(prefix) > 20:
                raise self.fail(
                    node.key_lines.get("table_prefix", node.line),
                    f"table_prefix must be letters, digits and underscores (at most 20), got {prefix!r}",
                )
            url = node.get("database_url")
            bookkeeping = BookkeepingSettings(table_prefix=prefix, database_url=url)

        event_attendance = None
        if root.get("event_attendance") is not None:
            event_attendance = self.event_attendance(root["event_attendance"], lines["event_attendance"])

        list_rules = self.list_rules(
            root.get("list_rules"), lines.get("list_rules", 0), segments, main_list=cc_scope.main_list
        )
        tags: dict[str, TagRule] = {}
        if root.get("tags") is not None:
            tags = self.tags(root["tags"], lines["tags"], member_id, fields)

        schema = root.get("schema")
        return MemberMapping(
            source=self.source,
            table=table,
            member_id_column=member_id,
            fields=fields,
            opt_out=opt_out,
            last_modified_column=last_modified,
            soft_delete=soft_delete,
            scope=scope,
            segments=segments,
            direction=direction,
            full_name_column=full_name_column,
            name_placeholder=placeholder,
            required_fields=required,
            state_format=state_format,
            cc_scope=cc_scope,
            bookkeeping=bookkeeping,
            schema=schema,
            event_attendance=event_attendance,
            list_rules=list_rules,
            tags=tags,
            lines=lines,
        )

    def list_rules(
        self,
        value: Any,
        line: int,
        segments: Mapping[str, tuple[Condition, ...]],
        *,
        main_list: str | None = None,
    ) -> tuple[ListRule, ...]:
        if value is None:
            return ()
        if not isinstance(value, _LineList):
            raise self.fail(line, "list_rules must be a list of rules (segment, list)")
        rules: list[ListRule] = []
        for item, item_line in zip(value, value.item_lines, strict=True):
            node = self.mapping_at(item, item_line, "a list rule (a mapping with segment and list)")
            self.check_keys(node, {"segment", "list"}, "a list rule")
            segment = self.text_at(node.get("segment"), item_line, "a list rule's segment")
            if segment not in segments:
                raise self.fail(
                    item_line,
                    f"list rule names segment {segment!r}, which the mapping does not define "
                    f"(segments: {sorted(segments)})",
                )
            target = self.text_at(node.get("list"), item_line, "a list rule's list").strip()
            if main_list is not None and target == main_list:
                # The sync keeps the main list equal to its scope; a rule would take people off it.
                raise self.fail(
                    item_line, f"list {target!r} is the sync's main list (cc_scope); a rule needs its own"
                )
            if any(rule.list_ref == target for rule in rules):
                # Two rules on one list would take each other's members off it on every run.
                raise self.fail(item_line, f"list {target!r} has two list rules; a list takes one rule")
            rules.append(ListRule(segment=segment, list_ref=target, line=item_line))
        return tuple(rules)

    def tags(
        self, value: Any, line: int, member_id: str, fields: dict[str, FieldMapping]
    ) -> dict[str, TagRule]:
        """``tags: {column: {prefix, direction}}``: each member column named once, its prefix its own.

        A tag is read back into a value by its prefix, so no prefix may start another one; a
        two-way column may not also be a synced field (two writers of one column)."""
        node = self.mapping_at(value, line, "tags (a mapping of member column -> {prefix, direction})")
        field_columns = {fm.column for fm in fields.values()}
        rules: dict[str, TagRule] = {}
        for column, spec in node.items():
            where = node.key_lines.get(column, line)
            column = self.text_at(column, where, "a tags column")
            if column == member_id:
                raise self.fail(where, f"tags.{column}: the member id column cannot be a tag")
            if spec is None:  # `chapter:` alone: the defaults
                spec = _LineDict()
                spec.key_lines = {}
            spec = self.mapping_at(spec, where, f"tags.{column}")
            self.check_keys(spec, {"prefix", "direction"}, f"tags.{column}")
            prefix = spec.get("prefix", f"{column}: ")
            if not isinstance(prefix, str) or not prefix or len(prefix) >= MAX_TAG_NAME:
                raise self.fail(
                    spec.key_lines.get("prefix", where),
                    f"tags.{column}.prefix must be a non-empty string shorter than {MAX_TAG_NAME}, "
                    f"got {prefix!r}",
                )
            direction = self.enum_at(
                TagDirection,
                spec.get("direction", TagDirection.TO_CC.value),
                spec.key_lines.get("direction", where),
                f"tags.{column}.direction",
            )
            if direction is TagDirection.TWO_WAY and column in field_columns:
                raise self.fail(
                    where, f"tags.{column}: a two_way tag column cannot also be mapped under fields"
                )
            for other in rules.values():
                if prefix.startswith(other.prefix) or other.prefix.startswith(prefix):
                    raise self.fail(
                        where,
                        f"tags.{column}.prefix {prefix!r} overlaps tags.{other.column}.prefix "
                        f"{other.prefix!r}: a tag could not be read back to one column",
                    )
            rules[column] = TagRule(column=column, prefix=prefix, direction=direction, line=where)
        return rules

    def event_attendance(self, value: Any, line: int) -> EventAttendance:
        node = self.mapping_at(value, line, "event_attendance (a mapping with table, registration_id, ...)")
        self.check_keys(node, {"table", "registration_id", "member_id", "columns"}, "event_attendance")
        columns_node = self.mapping_at(
            node.get("columns") or {}, node.key_lines.get("columns", line), "event_attendance.columns"
        )
        columns: dict[str, str] = {}
        for column, source in columns_node.items():
            where = columns_node.key_lines.get(column, line)
            if source not in ATTENDANCE_VALUES:
                raise self.fail(
                    where,
                    f"event_attendance.columns.{column} must be one of {sorted(ATTENDANCE_VALUES)}, "
                    f"got {source!r}",
                )
            columns[self.text_at(column, where, "an event_attendance column")] = source
        return EventAttendance(
            table=self.text_at(node.get("table"), line, "event_attendance.table"),
            registration_id_column=self.text_at(
                node.get("registration_id"), line, "event_attendance.registration_id"
            ),
            member_id_column=self.text_at(node.get("member_id"), line, "event_attendance.member_id"),
            columns=columns,
            line=line,
        )


def parse_mapping(text: str, source: str = "<mapping>") -> MemberMapping:
    """Parse and validate a mapping given as YAML text (``source`` names it in errors)."""
    loader = _LineLoader(text)
    loader.name = source
    try:
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise MappingError(f"{source}, line {line}: not valid YAML: {exc.problem}") from None
    finally:
        loader.dispose()
    return _Reader(source).read(doc)


def load_mapping(path: str | Path) -> MemberMapping:
    """Load and validate the mapping file at ``path``; a :class:`MappingError` names the line at fault."""
    path = Path(path)
    return parse_mapping(path.read_text(encoding="utf-8"), source=str(path))
