"""The member database connection: its settings, its Test, and every configuration error, which
names the connection (or the mapping file) and the fix and fails a task at once (not retried)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from cc_sync.errors import NotRetryableError
from cc_sync.member_db.connection import (
    MemberDatabaseConfigError,
    MemberDbSettings,
    create_member_engine,
)
from cc_sync.member_db.hook import MemberDatabaseHook
from cc_sync.member_db.mapping import MappingError, MemberMapping
from cc_sync.member_db.migrate import downgrade, upgrade
from cc_sync.member_db.preflight import SchemaNotCurrent, check_member_database
from include.cc_emulator.testing import free_port
from tests.conftest import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL
from tests.member_db.conftest import DEMO_MAPPING, SAMPLE_SIZE

CONN_ID = "member_db_default"


def _set_connection(
    monkeypatch: pytest.MonkeyPatch, conn_type: str = "member_database", **extra: str
) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": conn_type, "extra": extra})
    )


@pytest.fixture
def migrated_members_url(members_url: str) -> str:
    engine = create_member_engine(members_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return members_url


def _in_scope(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT count(*) FROM members WHERE membership_status = 'active' AND deleted_at IS NULL"
                )
            ).scalar_one()
    finally:
        engine.dispose()


def test_test_connection_checks_the_mapping_and_counts_the_members_in_scope(
    monkeypatch: pytest.MonkeyPatch, migrated_members_url: str
) -> None:
    _set_connection(monkeypatch, sqlalchemy_url=migrated_members_url, mapping_path=str(DEMO_MAPPING))

    ok, message = MemberDatabaseHook(CONN_ID).test_connection()

    assert ok, message
    expected = _in_scope(migrated_members_url)
    assert 0 < expected < SAMPLE_SIZE  # the scope filters: the count is the scope's, not the table's
    assert f"{expected} member(s) in scope" in message
    assert "table 'members' matches the mapping" in message
    password = sa.make_url(migrated_members_url).password
    assert not password or password not in message


def test_a_runs_preflight_does_not_scan_the_member_table(
    migrated_members_url: str, demo_mapping: MemberMapping
) -> None:
    """The lease sensor repeats the run's preflight on every poke: it checks, it does not count."""
    settings = MemberDbSettings.from_url(migrated_members_url)
    assert check_member_database(settings, demo_mapping).members_in_scope is None
    counted = check_member_database(settings, demo_mapping, count_members=True).members_in_scope
    assert counted == _in_scope(migrated_members_url)


def test_airflow_tests_a_member_database_connection_with_this_hook(
    monkeypatch: pytest.MonkeyPatch, migrated_members_url: str
) -> None:
    """Airflow's own connection test (the UI's Test button, `airflow connections test`) reaches
    MemberDatabaseHook.test_connection through the provider's member_database type."""
    from airflow.models.connection import Connection

    _set_connection(monkeypatch, sqlalchemy_url=migrated_members_url)
    connection = Connection.get_connection_from_secrets(CONN_ID)

    ok, message = connection.test_connection()

    assert ok, message
    assert f"{_in_scope(migrated_members_url)} member(s) in scope" in message


def test_a_generic_connection_still_works(monkeypatch: pytest.MonkeyPatch, migrated_members_url: str) -> None:
    """Existing deployments keep their `generic` connection with extra.sqlalchemy_url."""
    _set_connection(monkeypatch, conn_type="generic", sqlalchemy_url=migrated_members_url)
    assert MemberDatabaseHook(CONN_ID).test_connection()[0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url at all :// secret", "is not a valid URL"),
        ("oracle://scott:tiger@db/orcl", "unsupported member database 'oracle'"),
    ],
)
def test_a_wrong_url_names_the_connection(monkeypatch: pytest.MonkeyPatch, url: str, expected: str) -> None:
    _set_connection(monkeypatch, sqlalchemy_url=url)

    ok, message = MemberDatabaseHook(CONN_ID).test_connection()

    assert not ok
    assert expected in message
    assert repr(CONN_ID) in message
    assert "secret" not in message
    assert "tiger" not in message


def test_a_connection_without_a_url_says_which_field_to_fill(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_connection(monkeypatch)
    with pytest.raises(MemberDatabaseConfigError, match="'SQLAlchemy URL' field"):
        MemberDatabaseHook(CONN_ID, DEMO_MAPPING).connection_settings  # noqa: B018


def test_an_unreachable_server_says_check_host_and_port(demo_mapping: MemberMapping) -> None:
    settings = MemberDbSettings.from_url(f"postgresql+psycopg://sync:s3cret@127.0.0.1:{free_port()}/members")

    with pytest.raises(MemberDatabaseConfigError) as caught:
        check_member_database(settings, demo_mapping)

    message = str(caught.value)
    assert "cannot be reached" in message
    assert "host and port" in message
    assert "s3cret" not in message
    assert "***" in message
    assert isinstance(caught.value, NotRetryableError)  # fails the task at once


@pytest.mark.mariadb
def test_a_refused_login_says_check_user_and_password(demo_mapping: MemberMapping) -> None:
    url = sa.make_url(MARIADB_ADMIN_URL).set(username="nobody_here", password="wrong-pw")
    settings = MemberDbSettings("members_prod", url)

    with pytest.raises(MemberDatabaseConfigError) as caught:
        check_member_database(settings, demo_mapping)

    message = str(caught.value)
    assert "refused the login" in message
    assert "'members_prod'" in message
    assert "wrong-pw" not in message


@pytest.mark.postgres
def test_a_missing_database_says_fix_the_database_name(demo_mapping: MemberMapping) -> None:
    settings = MemberDbSettings(
        "member_db_default", sa.make_url(POSTGRES_ADMIN_URL).set(database="no_such_db")
    )

    with pytest.raises(MemberDatabaseConfigError, match="has no database 'no_such_db'"):
        check_member_database(settings, demo_mapping)


def test_a_missing_column_names_the_mapping_line_and_the_connection(
    migrated_members_url: str, demo_mapping: MemberMapping
) -> None:
    engine = sa.create_engine(migrated_members_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE members DROP COLUMN job_title"))
    engine.dispose()
    settings = MemberDbSettings("member_db_default", sa.make_url(migrated_members_url))

    with pytest.raises(MappingError) as caught:
        check_member_database(settings, demo_mapping)

    message = str(caught.value)
    assert "column 'job_title' (field job_title) does not exist in table 'members'" in message
    assert f"{DEMO_MAPPING}, line " in message
    assert "'member_db_default'" in message


def test_a_missing_table_says_so(sqlite_url: str, demo_mapping: MemberMapping) -> None:
    with pytest.raises(MappingError, match="table 'members' does not exist"):
        check_member_database(MemberDbSettings.from_url(sqlite_url), demo_mapping)


def test_a_schema_behind_the_code_says_make_migrate(
    migrated_members_url: str, demo_mapping: MemberMapping
) -> None:
    engine = create_member_engine(migrated_members_url)
    downgrade(engine, "-1")
    engine.dispose()

    with pytest.raises(SchemaNotCurrent, match="run `make migrate`"):
        check_member_database(MemberDbSettings.from_url(migrated_members_url), demo_mapping)


def test_an_invalid_mapping_file_fails_the_test_with_its_line(
    monkeypatch: pytest.MonkeyPatch, migrated_members_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "mapping.yaml"
    broken.write_text(DEMO_MAPPING.read_text().replace("member_id: member_id", "member_id: [oops"))
    _set_connection(monkeypatch, sqlalchemy_url=migrated_members_url, mapping_path=str(broken))

    ok, message = MemberDatabaseHook(CONN_ID).test_connection()

    assert not ok
    assert f"{broken}, line" in message
