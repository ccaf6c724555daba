"""Requests checked against the official v3 spec: method, path, query parameters and JSON body.

The emulator's request log (``GET /_admin/request_log``) records every /v3 request with its body
(tokens redacted). :func:`request_problems` checks each one against the spec's operation: the path
and method exist, every query parameter is declared and has the declared type, enum and format, and
the body validates against the operation's body schema (Draft 4, ``#/definitions`` resolved, uuid
and date-time formats checked). tests/world.py runs it over every request of each DAG scenario (sync,
send-list, activity), so a client-side drift from the real API fails the build.

The spec is reference data kept outside the project (``../shared``); :func:`load_spec` answers None
when it is absent (the callers skip locally and fail under ``CI=true``: tests/ci.py).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml
from jsonschema import Draft4Validator, FormatChecker

SPEC_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "constant-contact" / "swagger.yaml"

# Query parameters real clients send that the spec does not list, and why.
UNDOCUMENTED_QUERY = {
    # CC pages with an opaque cursor in _links.next.href (e.g. the /v3/contact_tags description shows
    # "?limit=1&cursor=..."), without listing it as a parameter; the hook follows those links.
    "cursor",
}

_formats = FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    return bool(datetime.fromisoformat(value.upper().replace("Z", "+00:00")))


@_formats.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


def _without_zero_max_items(node: Any) -> Any:
    """``ListActivityRemoveContacts`` says ``maxItems: 0`` on arrays the endpoint needs filled (its
    description: "up to 500 contact_ids"); read 0 as "no stated limit" (the contract suite's
    allow-list explains the same quirk)."""
    if isinstance(node, dict):
        return {k: _without_zero_max_items(v) for k, v in node.items() if not (k == "maxItems" and v == 0)}
    if isinstance(node, list):
        return [_without_zero_max_items(v) for v in node]
    return node


@functools.cache
def load_spec() -> dict[str, Any] | None:
    if not SPEC_PATH.exists():
        return None
    with SPEC_PATH.open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    spec["definitions"] = _without_zero_max_items(spec["definitions"])
    return spec


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    spec = load_spec()
    assert spec is not None
    # Literal paths first, so /activities/list_delete is not taken for /activities/{activity_id}.
    paths = sorted(spec["paths"], key=lambda p: (p.count("{"), p))
    return [(re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", p) + "$"), p) for p in paths]


def spec_operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The spec's (template, operation) for a concrete /v3 path, or None when it has none."""
    spec = load_spec()
    assert spec is not None
    local = path.removeprefix(spec.get("basePath", "/v3"))
    for pattern, template in _templates():
        if pattern.match(local):
            operation = spec["paths"][template].get(method.lower())
            if operation is not None:
                return template, operation
    return None


@functools.cache
def _body_validator(method: str, template: str) -> Draft4Validator | None:
    spec = load_spec()
    assert spec is not None
    operation = spec["paths"][template][method.lower()]
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "body":
            schema = {**parameter["schema"], "definitions": spec["definitions"]}
            return Draft4Validator(schema, format_checker=_formats)
    return None


def _query_problem(parameter: dict[str, Any], value: str) -> str | None:
    name, kind = parameter["name"], parameter.get("type", "string")
    if kind == "boolean" and value not in ("true", "false"):
        return f"{name}={value!r} is not a boolean"
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", value):
            return f"{name}={value!r} is not an integer"
        number = int(value)
        if "minimum" in parameter and number < parameter["minimum"]:
            return f"{name}={value} is below {parameter['minimum']}"
        if "maximum" in parameter and number > parameter["maximum"]:
            return f"{name}={value} is above {parameter['maximum']}"
    enum = parameter.get("enum") or (parameter.get("items") or {}).get("enum")
    parts = value.split(",") if parameter.get("format") == "csv" else [value]
    for part in parts:
        if enum is not None and part not in enum:
            return f"{name}={part!r} is not one of {enum}"
        if parameter.get("format") == "date-time":
            try:
                _is_date_time(part)
            except ValueError:
                return f"{name}={part!r} is not a date-time"
    return None


def request_problems(entry: dict[str, Any]) -> list[str]:
    """What is wrong with one request-log entry, measured against the spec (empty: nothing)."""
    method, path = entry["method"], entry["path"]
    where = f"{method} {path}"
    found = spec_operation(method, path)
    if found is None:
        return [f"{where}: the spec has no such operation"]
    template, operation = found
    problems = []
    declared = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
    seen: dict[str, int] = {}
    for name, value in parse_qsl(entry.get("query") or "", keep_blank_values=True):
        seen[name] = seen.get(name, 0) + 1
        parameter = declared.get(name)
        if parameter is None:
            if name not in UNDOCUMENTED_QUERY:
                problems.append(f"{where}: query parameter {name!r} is not in the spec")
            continue
        problem = _query_problem(parameter, value)
        if problem:
            problems.append(f"{where}: {problem}")
    for name, count in seen.items():
        if count > 1 and declared.get(name, {}).get("collectionFormat") != "multi":
            problems.append(f"{where}: {name} given {count} times")
    validator = _body_validator(method, template)
    body = entry.get("body")
    if isinstance(body, dict) and "_not_recorded" in body:
        return problems  # too big to keep: the emulator's own validation still checked it
    if validator is None:
        if body is not None:
            problems.append(f"{where}: sends a body the operation does not take")
    elif body is None:
        problems.append(f"{where}: the operation needs a body")
    else:
        problems += [
            f"{where}: body {'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in validator.iter_errors(body)
        ]
    return problems


# Scenario logs repeat themselves (a restored world carries its first sync's requests): check each
# distinct request once per session.
_checked: dict[str, tuple[str, ...]] = {}


def log_problems(log: list[dict[str, Any]]) -> list[str]:
    """Every problem of every /v3 request in an emulator request log."""
    problems: list[str] = []
    for entry in log:
        key = json.dumps([entry["method"], entry["path"], entry.get("query"), entry.get("body")])
        if key not in _checked:
            _checked[key] = tuple(request_problems(entry))
        problems += _checked[key]
    return problems
