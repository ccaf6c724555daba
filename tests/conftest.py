"""Shared test set-up: Airflow configured before it is imported, and real databases per test.

Airflow reads its configuration at import, so the project's settings (include/airflow_env.py) are
applied here first, with a throw-away AIRFLOW_HOME so tests never touch the demo's metadata DB.

Which databases a test runs on (the one place this is decided)
---------------------------------------------------------------
``database_url`` is a fresh, empty database on SQLite, PostgreSQL and MariaDB, except in **DAG
scenarios** (any test that builds a world through a ``world_factory`` fixture: tests/dags,
tests/send_list, tests/activity), which run on **SQLite only** unless they opt in:

- ``@pytest.mark.all_dialects`` on a test (or ``pytestmark`` on a module): every dialect, always.
  Use it for scenarios whose writes differ by dialect (upserts, email changes, the optimistic
  check, list membership, send-list modes).
- ``CC_SYNC_TEST_ALL_DIALECTS=1`` (or ``pytest --all-dialects``): every test on every dialect.

Tests without a world (the member-database layer, the CC state store) always run on all three.
The README's test matrix lists which scenario runs where.

Honest CI
---------
With ``CI=true`` (``.ci/run`` sets it), a missing PostgreSQL, MariaDB or Constant Contact spec
fails the tests that need it instead of skipping them: :func:`tests.ci.skip_or_fail`.

Hypothesis profiles: ``ci`` (derandomised, 200 examples; the default under ``CI=true``), ``dev``
(random, 200 examples; the default) and ``quick`` (25 examples, ``make test-quick``); choose with
``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from include import airflow_env
from tests.ci import in_ci, skip_or_fail
from tests.fastapi_overrides import build_overridden_dependencies_once
from tests.scheduling import balanced_order
from tests.schema_checks import check_each_param_schema_once

_TEST_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ccsync-airflow-"))
# A pytest-xdist worker (or a pytest a test starts) inherits its parent's environment, Airflow's
# settings included, which apply() keeps: re-point every setting under the parent's AIRFLOW_HOME at
# this process's own, or the workers would share one metadata DB and race on initdb and dag.test().
_PARENT_AIRFLOW_HOME = os.environ.get("CC_SYNC_TEST_AIRFLOW_HOME")
if _PARENT_AIRFLOW_HOME:
    for _key, _value in list(os.environ.items()):
        if _PARENT_AIRFLOW_HOME in _value:
            os.environ[_key] = _value.replace(_PARENT_AIRFLOW_HOME, str(_TEST_AIRFLOW_HOME))
os.environ["CC_SYNC_TEST_AIRFLOW_HOME"] = str(_TEST_AIRFLOW_HOME)
airflow_env.apply(airflow_home=_TEST_AIRFLOW_HOME)

import sqlalchemy as sa  # noqa: E402  (after the Airflow settings, on purpose)

check_each_param_schema_once()
build_overridden_dependencies_once()

POSTGRES_ADMIN_URL = os.environ.get(
    "CC_SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Without ssl_disabled, PyMySQL (TLS "preferred") loads the system CA store for every connection,
# ~21 ms, though the local server offers no TLS: a third of the MariaDB member-layer tests' CPU.
MARIADB_ADMIN_URL = os.environ.get(
    "CC_SYNC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test?ssl_disabled=true"
)

pytest_plugins = ["tests.fixtures_emulator"]

DIALECTS = ("sqlite", "postgresql", "mariadb")
_DIALECT_MARKS = {"sqlite": (), "postgresql": (pytest.mark.postgres,), "mariadb": (pytest.mark.mariadb,)}
# A test using one of these builds a DAG world: SQLite only, unless marked all_dialects.
WORLD_FIXTURES = frozenset({"world_factory"})

settings.register_profile(
    "ci", max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "quick", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "dev"))


def all_dialects_everywhere(config: pytest.Config) -> bool:
    flag = os.environ.get("CC_SYNC_TEST_ALL_DIALECTS", "").strip().lower() in ("1", "true", "yes")
    return flag or bool(config.getoption("all_dialects"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all-dialects",
        action="store_true",
        default=False,
        help="run every DAG scenario on SQLite, PostgreSQL and MariaDB (as CC_SYNC_TEST_ALL_DIALECTS=1)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``database_url``'s dialects for this test (see the module docstring)."""
    if "database_url" not in metafunc.fixturenames:
        return
    builds_a_world = bool(WORLD_FIXTURES & set(metafunc.fixturenames))
    full = (
        not builds_a_world
        or metafunc.definition.get_closest_marker("all_dialects") is not None
        or all_dialects_everywhere(metafunc.config)
    )
    dialects = DIALECTS if full else ("sqlite",)
    metafunc.parametrize(
        "database_url",
        [pytest.param(d, marks=_DIALECT_MARKS[d], id=d) for d in dialects],
        indirect=True,
        scope="function",
    )


# Minutes the end-to-end files (or folders, ending in /) take (fresh-clone CI, 2 cores, `-n 2`):
# tests/scheduling.py spreads them, each whole, over the xdist workers' first blocks, longest
# first, so that they overlap each other and the rest.
LONG_TEST_FILES: dict[str, float] = {
    "tests/test_airflow_ui.py": 6.0,  # one standalone: the trigger-form checks, then SIGTERM
    "tests/test_airflow_celery.py": 4.0,  # one Celery stack: three syncs (two a backfill), a send, SIGTERM
    "tests/browser/": 11.0,  # one shared `airflow standalone` (tests/browser/conftest.py)
    "tests/contract/test_emulator_contract.py": 5.0,
    "tests/dags/test_cli.py": 3.0,
    "tests/test_demo.py": 3.0,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def long_file(item: pytest.Item) -> tuple[str, float] | None:
        path = item.nodeid.split("::", 1)[0]
        group = next((key for key in LONG_TEST_FILES if path == key or path.startswith(key)), None)
        return (group, LONG_TEST_FILES[group]) if group else None

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    items[:] = balanced_order(items, workers, long_file)


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
        skip_or_fail(f"{dialect} does not answer at {sa.make_url(admin_url).render_as_string()}: {reason}")
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


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, empty database (dropped after the test), parametrized over the
    dialects by :func:`pytest_generate_tests`."""
    yield from _fresh_database(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'members.db'}"


@pytest.fixture(scope="session")
def world_snapshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's :class:`tests.snapshots.WorldSnapshots` (dropped at the end of the session)."""
    from tests.snapshots import WorldSnapshots

    snapshots = WorldSnapshots(tmp_path_factory.mktemp("world-snapshots"))
    yield snapshots
    snapshots.drop_all()
