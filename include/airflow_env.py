"""The one place that configures Airflow for this project (no airflow.cfg edited by hand).

`make` targets run commands through ``python -m include.airflow_env CMD ...``, and
``tests/conftest.py`` calls :func:`airflow_env` before importing Airflow, so the demo, the UI and
the tests all see the same settings: AIRFLOW_HOME ($AIRFLOW_HOME, else the project's .airflow),
examples off, the project's dags/ and plugins/, and the common-io object-storage XCom backend.
A deployment overrides any of these by setting the variable itself (``setdefault`` semantics).

What several machines must share (README "Run on several workers") is taken from the deployment
when it sets it, in the environment (``AIRFLOW__SECTION__KEY``, or its ``_CMD``/``_SECRET`` forms)
or in ``$AIRFLOW_HOME/airflow.cfg``: the XCom object-storage path, the Fernet key and the API's JWT
secret. Only when it does not do the project's one-machine defaults apply, kept under AIRFLOW_HOME:
an environment variable would override airflow.cfg, so a value the deployment wrote there must not
be shadowed by ours.
"""

from __future__ import annotations

import configparser
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where local runs keep their world (demo member DB, emulator account, logs); a test of `make
# airflow` points it at a temporary folder.
VAR_DIR = Path(os.environ.get("CC_SYNC_VAR_DIR") or PROJECT_ROOT / "var")


def airflow_env(project_root: Path = PROJECT_ROOT, airflow_home: Path | None = None) -> dict[str, str]:
    """Return the Airflow settings for this project as environment variables (without those the
    deployment sets itself: :data:`SHARED_SETTINGS`)."""
    home = airflow_home or default_airflow_home(project_root)
    api_port = os.environ.get("CC_SYNC_AIRFLOW_PORT", "8080")
    # The scheduler's and the triggerer's log servers (8793/8794 by default). Airflow 3.3.2 binds
    # them to every interface and has no setting for the address (utils/serve_logs/core.py runs
    # uvicorn with host=""): only their ports can move, or `--skip-serve-logs` can drop them.
    log_port = int(os.environ.get("CC_SYNC_LOG_SERVER_PORT", "8793"))
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project_root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project_root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Diffs between tasks travel through object storage, never the metadata DB; a deployment
        # with several machines points this at s3://conn_id@bucket/path or gs://... instead.
        "AIRFLOW__CORE__XCOM_BACKEND": "airflow.providers.common.io.xcom.backend.XComObjectStorageBackend",
        "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_THRESHOLD": "4096",
        # No compression: a DataFrame's XCom is parquet (already compressed) written as hex, and
        # gzip at its default level 9 spent ~28 s of CPU of a 100,000-member first install (issue
        # 15) to get back the hex's doubling; the files live only until the run finishes.
        "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_COMPRESSION": "",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # The connection form's Test button (off by default): ours names the Constant Contact account.
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": api_port,
        # Workers reach the execution API through base_url; it must follow the port (notes/airflow3.md).
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(log_port + 1),
        # Task slots sized to the machine, not Airflow's 32: LocalExecutor starts `parallelism`
        # worker processes at once and keeps them idle (129 MB resident each, measured), and the
        # sync's tasks are I/O- and API-bound anyway.
        "AIRFLOW__CORE__PARALLELISM": str(local_parallelism()),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(project_root), str(project_root / "plugins"), os.environ.get("PYTHONPATH")) if p
        ),
    } | local_shared_settings(home)


# What every machine of a deployment must agree on: (section, key) -> the one-machine default,
# made from AIRFLOW_HOME. The XCom path: a worker reads the diffs another wrote. The Fernet key:
# connection passwords, variables and the hook's stored OAuth tokens, encrypted at rest. The JWT
# secret: the API server signs the tokens the workers' task runners present to the execution API.
SHARED_SETTINGS: dict[tuple[str, str], Callable[[Path], str]] = {
    ("common.io", "xcom_objectstorage_path"): lambda home: f"file://{home / 'xcom'}",
    ("core", "fernet_key"): lambda home: fernet_key(home),
    ("api_auth", "jwt_secret"): lambda home: jwt_secret(home),
}


def default_airflow_home(project_root: Path = PROJECT_ROOT) -> Path:
    """$AIRFLOW_HOME when the deployment sets it, else the project's own ``.airflow`` folder."""
    configured = os.environ.get("AIRFLOW_HOME")
    return Path(configured).expanduser() if configured else project_root / ".airflow"


def env_name(section: str, key: str) -> str:
    """Airflow's environment variable for ``[section] key`` (``common.io`` -> ``COMMON_IO``)."""
    return f"AIRFLOW__{section.upper().replace('.', '_')}__{key.upper()}"


def deployment_sets(section: str, key: str, home: Path) -> bool:
    """True when the environment or ``home``'s airflow.cfg gives ``[section] key`` a value (plain,
    ``_cmd`` or ``_secret``); an empty value (as Airflow writes a fresh airflow.cfg) is no value."""
    forms = (key, f"{key}_cmd", f"{key}_secret")
    if any(os.environ.get(env_name(section, form)) for form in forms):
        return True
    config_file = Path(os.environ.get("AIRFLOW_CONFIG") or home / "airflow.cfg")
    if not config_file.is_file():
        return False
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(config_file)
    return any(parser.get(section, form, fallback="").strip() for form in forms)


def local_shared_settings(home: Path) -> dict[str, str]:
    """The one-machine defaults of :data:`SHARED_SETTINGS` the deployment does not set itself."""
    return {
        env_name(section, key): default(home)
        for (section, key), default in SHARED_SETTINGS.items()
        if not deployment_sets(section, key, home)
    }


def local_parallelism() -> int:
    """Task slots for a local Airflow: the machine's cores (at least 2, so the sync's two extracts
    run side by side), or $CC_SYNC_PARALLELISM."""
    configured = os.environ.get("CC_SYNC_PARALLELISM")
    return int(configured) if configured else max(2, os.cpu_count() or 2)


def fernet_key(home: Path) -> str:
    """This installation's Fernet key, made once and kept beside the metadata DB (never in git)."""

    def new_key() -> str:
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()

    return _kept_secret(home / "fernet.key", new_key)


def jwt_secret(home: Path) -> str:
    """This installation's JWT signing secret, made once and kept beside the metadata DB: every
    Airflow process started from it (API server, scheduler, workers) signs and checks with it."""
    return _kept_secret(home / "jwt_secret", lambda: secrets.token_urlsafe(32))


def _kept_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret in ``path`` (owner-only), made by ``make`` the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(make())
    return path.read_text().strip()


def apply(project_root: Path = PROJECT_ROOT, airflow_home: Path | None = None) -> None:
    """Set the project's Airflow settings in this process, keeping any the caller already set."""
    for key, value in airflow_env(project_root, airflow_home).items():
        os.environ.setdefault(key, value)
    for path in (str(project_root), str(project_root / "plugins")):
        if path not in sys.path:
            sys.path.insert(0, path)


def main(argv: list[str]) -> None:
    """``python -m include.airflow_env CMD ARGS...``: run CMD with the project's Airflow settings."""
    if not argv:
        for key, value in airflow_env().items():
            print(f"export {key}={value!r}")
        return
    apply()
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
