"""The member database's connection settings, its one engine factory, and its configuration errors.

Split from the hook (issue 11): the hook reads and writes members; this module turns an Airflow
connection into a SQLAlchemy URL and a mapping path, makes the engines on member and bookkeeping
databases (:func:`create_member_engine`, through the one factory in :mod:`cc_sync.databases`),
and says, for each way a connection can be wrong, which connection it is and what to change
(:class:`MemberDatabaseConfigError`).

The connection (``member_db_default``; conn_type ``member_database``, registered by this
package's provider entry point so the UI shows these fields and its Test button checks the mapping;
``generic``, ``postgres``, ``mysql`` and ``sqlite`` connections keep working):

- ``extra.sqlalchemy_url``: the member database's SQLAlchemy URL (``sqlite:///…``,
  ``postgresql+psycopg://…``, ``mysql+pymysql://…``); without it, a postgres/mysql/sqlite
  connection's own host, login, password, port and schema;
- ``extra.mapping_path``: the member mapping YAML the connection's Test checks (the DAGs take
  theirs from ``CC_SYNC_MAPPING``, else include/config/member_mapping.yaml).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from cc_sync.databases import create_engine
from cc_sync.errors import NotRetryableError

MEMBER_DB_CONN_TYPE = "member_database"
DEFAULT_MEMBER_DB_CONN_ID = "member_db_default"
SUPPORTED_BACKENDS = ("sqlite", "postgresql", "mysql", "mariadb")
# Airflow's own connection types whose fields (host, login, ...) make a URL without extra.sqlalchemy_url.
_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}


class MemberDatabaseConfigError(NotRetryableError, ValueError):
    """The member database connection or its mapping is wrong: a person must change it first.

    The message names the connection (and the URL without its password) and says what to fix.
    """


@dataclass(frozen=True)
class MemberDbSettings:
    """What the member database connection says: its URL (password kept out of repr) and mapping."""

    conn_id: str
    url: sa.URL = field(repr=False)
    mapping_path: str | None = None

    @property
    def shown_url(self) -> str:
        """The URL for logs and messages: the password replaced by ***."""
        return self.url.render_as_string(hide_password=True)

    @classmethod
    def from_url(cls, url: str | sa.URL, conn_id: str = "(a URL given directly)") -> MemberDbSettings:
        return cls(conn_id, parse_url(url, conn_id))

    @classmethod
    def from_connection(cls, conn: Any) -> MemberDbSettings:
        """Read an Airflow connection of type member_database, generic, postgres, mysql or sqlite."""
        extra = conn.extra_dejson or {}
        mapping_path = extra.get("mapping_path") or None
        if extra.get("sqlalchemy_url"):
            return cls(conn.conn_id, parse_url(str(extra["sqlalchemy_url"]), conn.conn_id), mapping_path)
        conn_type = (conn.conn_type or "").lower()
        if conn_type == "sqlite" and (conn.host or conn.schema):
            return cls(conn.conn_id, parse_url(f"sqlite:///{conn.host or conn.schema}", conn.conn_id))
        if conn_type in _DRIVERS and conn.host:
            url = sa.URL.create(
                _DRIVERS[conn_type],
                username=conn.login or None,
                password=conn.password or None,
                host=conn.host or None,
                port=conn.port or None,
                database=conn.schema or None,
            )
            return cls(conn.conn_id, url, mapping_path)
        raise MemberDatabaseConfigError(
            f"connection {conn.conn_id!r} (type {conn_type or 'none'}) has no member database URL: set "
            "its 'SQLAlchemy URL' field (extra.sqlalchemy_url), e.g. sqlite:////path/members.db or "
            "postgresql+psycopg://user@host/db"
        )


def parse_url(url: str | sa.URL, conn_id: str) -> sa.URL:
    """A SQLAlchemy URL of a supported member database, or an error naming the connection."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        # The text may hold a password: it is not repeated.
        raise MemberDatabaseConfigError(
            f"connection {conn_id!r}: its SQLAlchemy URL is not a valid URL; write it as "
            "dialect+driver://user:password@host:port/database (e.g. postgresql+psycopg://…)"
        ) from None
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise MemberDatabaseConfigError(
            f"connection {conn_id!r}: unsupported member database {parsed.get_backend_name()!r} in "
            f"{parsed.render_as_string(hide_password=True)}; use sqlite, postgresql+psycopg or mysql+pymysql"
        )
    return parsed


def create_member_engine(url: str | sa.URL, **kwargs: Any) -> sa.Engine:
    """An engine on a member or bookkeeping database: SQLite, PostgreSQL (psycopg) or MariaDB/MySQL
    (pymysql), from the project's one factory (:func:`cc_sync.databases.create_engine`)."""
    url = sa.make_url(url)
    if url.get_backend_name() not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"unsupported member database {url.get_backend_name()!r}: use sqlite, postgresql or mysql/mariadb"
        )
    return create_engine(url, **kwargs)


# Driver messages that say why a connection attempt failed, by what the user must change.
_AUTH_REFUSED = re.compile(
    r"password authentication failed|access denied|authentication failed|role .* does not exist|"
    r"no password supplied|\(1045\b|\(1698\b",
    re.IGNORECASE,
)
_NO_DATABASE = re.compile(r'database ".*" does not exist|unknown database|\(1049\b', re.IGNORECASE)
_SQLITE_CANNOT_OPEN = re.compile(r"unable to open database file", re.IGNORECASE)


def explain_connect_error(exc: BaseException, settings: MemberDbSettings) -> MemberDatabaseConfigError:
    """Why connecting failed, for a person: authentication, a missing database, or no server."""
    text = str(getattr(exc, "orig", None) or exc)
    where = f"connection {settings.conn_id!r} ({settings.shown_url})"
    if _AUTH_REFUSED.search(text):
        return MemberDatabaseConfigError(
            f"{where}: the member database refused the login: check the user and password in the "
            "connection's SQLAlchemy URL"
        )
    if _NO_DATABASE.search(text):
        return MemberDatabaseConfigError(
            f"{where}: the server has no database {settings.url.database!r}: fix the database name "
            "at the end of the connection's SQLAlchemy URL"
        )
    if _SQLITE_CANNOT_OPEN.search(text):
        return MemberDatabaseConfigError(
            f"{where}: SQLite cannot open {settings.url.database!r} (its folder does not exist or is "
            "not writable): fix the path in the connection's SQLAlchemy URL"
        )
    return MemberDatabaseConfigError(
        f"{where}: the member database cannot be reached ({type(exc.__cause__ or exc).__name__}: "
        f"{_first_line(text)}): check the host and port in the connection's SQLAlchemy URL and that "
        "the server is running"
    )


def check_connects(engine: sa.Engine, settings: MemberDbSettings) -> None:
    """One round trip; a refused or unreachable database raises :class:`MemberDatabaseConfigError`."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise explain_connect_error(exc, settings) from None


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]
