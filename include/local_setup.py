"""Local set-up shared by `make demo` and `make airflow`: sample data, the emulator, connections.

Everything here is for the embedded default (a SQLite member database and the Constant Contact
emulator on 127.0.0.1). A production deployment sets its connections in its own secrets backend
and never runs this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from include.airflow_env import PROJECT_ROOT, VAR_DIR

SETTINGS_FILE = PROJECT_ROOT / "airflow_settings.yaml"
DEMO_MEMBER_DB = VAR_DIR / "members.db"
EMULATOR_STATE_FILE = VAR_DIR / "emulator-state.json"
DEFAULT_EMULATOR_PORT = int(os.environ.get("CC_SYNC_EMULATOR_PORT", "8765"))


def render_settings(emulator_url: str) -> dict[str, Any]:
    """airflow_settings.yaml with {PROJECT}, {VAR_DIR} and {EMULATOR_URL} filled in."""
    text = SETTINGS_FILE.read_text()
    filled = {"{PROJECT}": PROJECT_ROOT, "{VAR_DIR}": VAR_DIR, "{EMULATOR_URL}": emulator_url}
    for placeholder, value in filled.items():
        text = text.replace(placeholder, str(value))
    return yaml.safe_load(text)["airflow"]


def connections_as_json(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Astro-style connection entries -> Airflow's JSON connection form (conn_id -> fields)."""
    result: dict[str, dict[str, Any]] = {}
    for entry in settings.get("connections") or []:
        conn: dict[str, Any] = {"conn_type": entry["conn_type"]}
        for key in ("host", "login", "password", "schema", "port"):
            if entry.get(f"conn_{key}") not in (None, ""):
                conn[key] = entry[f"conn_{key}"]
        if entry.get("conn_extra"):
            conn["extra"] = entry["conn_extra"]
        result[entry["conn_id"]] = conn
    return result


def import_settings_into_airflow(emulator_url: str) -> None:
    """Load connections and pools into the Airflow metadata DB (what `astro dev start` does)."""
    settings = render_settings(emulator_url)
    with tempfile.TemporaryDirectory() as tmp:
        conn_file = Path(tmp) / "connections.json"
        conn_file.write_text(json.dumps(connections_as_json(settings)))
        _airflow("connections", "import", str(conn_file), "--overwrite")
        pools = {
            p["pool_name"]: {"slots": p["pool_slot"], "description": p.get("pool_description", "")}
            for p in settings.get("pools") or []
        }
        if pools:
            pool_file = Path(tmp) / "pools.json"
            pool_file.write_text(json.dumps(pools))
            _airflow("pools", "import", str(pool_file))


def migrate_airflow_db() -> None:
    _airflow("db", "migrate")


def ensure_sample_members(members: int = 1000) -> Path:
    """Create the demo member database once; later runs keep the members' edits."""
    if not DEMO_MEMBER_DB.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "include.sample_data",
                "--members",
                str(members),
                "--db-url",
                f"sqlite:///{DEMO_MEMBER_DB}",
            ],
            check=True,
            cwd=PROJECT_ROOT,
        )
    return DEMO_MEMBER_DB


def _airflow(*args: str) -> None:
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        check=True,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
    )


def connection_env_in(emulator_url: str, var_dir: Path = VAR_DIR) -> dict[str, str]:
    """AIRFLOW_CONN_* variables of the local connections, with their var/ files under ``var_dir``
    (the demo's test builds its world in a temporary folder)."""
    env: dict[str, str] = {}
    for conn_id, conn in connections_as_json(render_settings(emulator_url)).items():
        text = json.dumps(conn)
        if var_dir != VAR_DIR:
            text = text.replace(json.dumps(str(VAR_DIR))[1:-1], json.dumps(str(var_dir))[1:-1])
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = text
    return env
