"""Airflow's provider metadata for this package (entry point ``apache_airflow_provider``).

Installed (``make`` does ``pip install -e .``), it registers two connection types with their forms:

- ``constant_contact``: API base URL, API key, client secret, refresh token, state database, rate,
  daily budget and reserve; its Test button (and ``airflow connections test``) calls
  :meth:`ConstantContactHook.test_connection`, which exchanges the refresh token and names the account;
- ``member_database``: the SQLAlchemy URL and the mapping file; its Test calls
  :meth:`MemberDatabaseHook.test_connection`, which checks the mapping against the database and
  counts the members in scope.

Airflow 3.2+ builds connection forms from this declaration (``hook-name``, ``conn-fields``,
``ui-field-behaviour``) without importing the hooks; a hook's ``get_ui_field_behaviour()`` is no
longer read. ``conn-fields`` values are stored in the connection's extra under their own names,
which is where the hooks read them. Without the package installed (only on the plugins path)
everything still runs: the hooks read their connection whatever its type.
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "cc-member-sync"
CONSTANT_CONTACT_CONN_TYPE = "constant_contact"
MEMBER_DB_CONN_TYPE = "member_database"
DEFAULT_BASE_URL = "https://api.cc.email"
DEFAULT_TOKEN_URL = "https://authz.constantcontact.com/oauth2/default/v1/token"

# Airflow 3.3.2's connection list sends port 0 for a connection without one; the API then refuses
# the Test ("differs from the stored connection"). The plugin's middleware fixes that (see
# plugins/cc_sync_console.py); the CLI test needs no fix.
_CLI_TEST_HINT = "`airflow connections test <conn id>` runs the same test from a shell."


def _text(label: str, description: str, *, sensitive: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if sensitive:
        schema["format"] = "password"  # masked in the form and in API answers
    return {"label": label, "description": description, "schema": schema}


def _number(label: str, description: str, kind: str, default: float | None) -> dict[str, Any]:
    schema = {"type": [kind, "null"], "default": default}
    return {"label": label, "description": description, "schema": schema}


CONSTANT_CONTACT_CONNECTION: dict[str, Any] = {
    "connection-type": CONSTANT_CONTACT_CONN_TYPE,
    "hook-class-name": "cc_sync.constant_contact.hook.ConstantContactHook",
    "hook-name": "Constant Contact",
    "ui-field-behaviour": {
        # The base URL carries scheme and port: a separate port or schema would only conflict.
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "API base URL", "login": "API key (client id)", "password": "Client secret"},
        "placeholders": {
            "host": DEFAULT_BASE_URL,
            "login": "the app's API key, from Constant Contact's developer portal",
            "password": "the app's client secret",
            "refresh_token": "from python -m cc_sync.constant_contact.authorize",
            "token_url": DEFAULT_TOKEN_URL,
            "state_db_uri": "postgresql+psycopg://airflow@db/airflow (default: sqlite in AIRFLOW_HOME)",
        },
    },
    "conn-fields": {
        "refresh_token": _text(
            "Refresh token",
            "From `python -m cc_sync.constant_contact.authorize`. It rotates on every use: the newest "
            "is kept (encrypted) in the state database, so a new one here starts over from it.",
            sensitive=True,
        ),
        "token_url": _text("Token URL", f"The OAuth2 token endpoint; empty for {DEFAULT_TOKEN_URL}."),
        "state_db_uri": _text(
            "State database",
            "SQLAlchemy URL of the state every worker shares: rate limiter, daily call count, tokens.",
        ),
        "requests_per_second": _number(
            "Requests per second", "Constant Contact allows 4; 0 turns the limiter off.", "number", 4
        ),
        "daily_budget": _number(
            "Daily budget",
            "Calls a day, all workers together (Constant Contact allows 10,000).",
            "integer",
            10_000,
        ),
        "budget_reserve": _number(
            "Reserve", "Calls of the daily budget kept in hand for manual runs and tests.", "integer", 200
        ),
    },
}

MEMBER_DATABASE_CONNECTION: dict[str, Any] = {
    "connection-type": MEMBER_DB_CONN_TYPE,
    "hook-class-name": "cc_sync.member_db.hook.MemberDatabaseHook",
    "hook-name": "Member database",
    "ui-field-behaviour": {
        # Everything is in the SQLAlchemy URL: the standard fields would be a second, conflicting place.
        "hidden-fields": ["host", "schema", "login", "password", "port"],
        "relabeling": {},
        "placeholders": {
            "sqlalchemy_url": "postgresql+psycopg://user:password@host:5432/members",
            "mapping_path": "include/config/member_mapping.yaml",
        },
    },
    "conn-fields": {
        "sqlalchemy_url": _text(
            "SQLAlchemy URL",
            "The member database: sqlite:////path/members.db, postgresql+psycopg://user:pw@host/db or "
            "mysql+pymysql://user:pw@host/db. Masked: it can hold a password.",
            sensitive=True,
        ),
        "mapping_path": _text(
            "Mapping file",
            "The member mapping (YAML) that Test checks against the database; empty for the "
            "project's include/config/member_mapping.yaml. " + _CLI_TEST_HINT,
        ),
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "Constant Contact member sync",
        "description": "Two-way sync between a SQL member database and Constant Contact (v3 API).",
        "connection-types": [CONSTANT_CONTACT_CONNECTION, MEMBER_DATABASE_CONNECTION],
    }
