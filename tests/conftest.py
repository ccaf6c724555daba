"""Shared test set-up: Airflow configured before it is imported, and real databases per test.

Airflow reads its configuration at import, so the project's settings (include/airflow_env.py) are
applied here first, with a throw-away AIRFLOW_HOME so tests never touch the demo's metadata DB.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include import airflow_env

_TEST_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ccsync-airflow-"))
airflow_env.apply(airflow_home=_TEST_AIRFLOW_HOME)

import sqlalchemy as sa  # noqa: E402  (after the Airflow settings, on purpose)

POSTGRES_ADMIN_URL = os.environ.get(
    "CC_SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_ADMIN_URL = os.environ.get("CC_SYNC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

pytest_plugins = ["tests.fixtures_emulator"]


def _server_answers(url: str) -> str | None:
    """None when the server answers, else the reason it does not (for the skip message)."""
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any driver error means "not available here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) for dag.test(); created once per test session."""
    from airflow.utils.db import initdb

    initdb()
    return _TEST_AIRFLOW_HOME


@pytest.fixture(scope="session")
def dag_bag(airflow_db: Path) -> Any:
    """The project's dags/ folder, parsed once per test session (the DAG tests' worlds share it)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(airflow_env.PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


def _fresh_database(dialect: str, tmp_path: Path) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'members.db'}"
        return
    admin_url = POSTGRES_ADMIN_URL if dialect == "postgresql" else MARIADB_ADMIN_URL
    reason = _server_answers(admin_url)
    if reason:
        pytest.skip(f"{dialect} does not answer at {sa.make_url(admin_url).render_as_string()}: {reason}")
    name = f"ccsync_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if dialect == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, empty database on each dialect (dropped after the test)."""
    yield from _fresh_database(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'members.db'}"
