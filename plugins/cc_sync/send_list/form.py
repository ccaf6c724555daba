"""The send-list trigger form's choices, read when the DAG file is parsed: the modes, and the
mapping's segment and field names for the dropdowns (a local YAML read, no database, no pandas)."""

from __future__ import annotations

from enum import StrEnum

from cc_sync.member_db.mapping import MappingError, MemberMapping, NamePart, load_mapping


class SendMode(StrEnum):
    CREATE_NEW = "create_new"  # a new list; fail if one has that name
    REPLACE = "replace"  # add the segment, then take off the list whoever is no longer in it
    UPDATE = "update"  # add and update only


def filterable_fields(mapping: MemberMapping) -> list[str]:
    """Canonical fields a filter may name: those mapped to a whole column (not a birthday part)."""
    return [name for name, fm in mapping.fields.items() if fm.part == NamePart.WHOLE]


def form_choices(mapping_path: str) -> tuple[list[str] | None, list[str] | None, str | None]:
    """The mapping's segment and field names for the dropdowns, or why the mapping cannot be read
    (the form then shows that instead of silently turning the dropdowns into free text)."""
    try:
        mapping = load_mapping(mapping_path)
    except (OSError, MappingError) as exc:
        return None, None, f"The member mapping cannot be read, so no segment can be offered: {exc}"
    return sorted(mapping.segments), filterable_fields(mapping), None
