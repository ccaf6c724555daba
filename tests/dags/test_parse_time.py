"""Parse-time hygiene: a DAG file imports only what declaring its DAG needs.

The scheduler's DAG processor parses every file again every few seconds; pandas, pyarrow and
requests (and the hooks built on them) load only when a task runs. Each file is imported in a
fresh interpreter after Airflow's SDK (which brings SQLAlchemy itself), and the modules it adds
are checked. No timing here: the parse times are in the README's benchmark table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from include.airflow_env import PROJECT_ROOT

DAG_FILES = sorted((PROJECT_ROOT / "dags").glob("constant_contact_*.py"))
# Libraries a task needs and a DAG declaration does not.
HEAVY = ("pandas", "pyarrow", "numpy", "requests")
# The package's modules that pull those in (hooks, engine, bookkeeping, job logic).
HEAVY_OWN = (
    "cc_sync.constant_contact.hook",
    "cc_sync.member_db.hook",
    "cc_sync.member_db.bookkeeping",
    "cc_sync.engine",
    "cc_sync.sync.steps",
    "cc_sync.send_list.send",
    "cc_sync.activity.pull",
    "cc_sync.events.pull",
    "cc_sync.undo.steps",
)

PROBE = """
import importlib.util, json, sys
import airflow.sdk  # what every DAG file needs; it imports SQLAlchemy and pydantic itself
before = set(sys.modules)
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_every_dag_file_is_checked() -> None:
    assert {f.stem for f in DAG_FILES} == {
        "constant_contact_sync",
        "constant_contact_send_list",
        "constant_contact_activity",
        "constant_contact_undo",
        "constant_contact_events",
    }


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.stem)
def test_a_dag_file_imports_no_heavy_library(dag_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "include.airflow_env", sys.executable, "-c", PROBE, str(dag_file)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    added = json.loads(result.stdout.strip().splitlines()[-1])
    assert any(m.startswith("cc_sync") for m in added), "the probe saw the DAG file's own imports"
    heavy = [m for m in added if m.split(".")[0] in HEAVY]
    assert not heavy, f"{dag_file.name} imports {sorted({m.split('.')[0] for m in heavy})} when parsed"
    own = [m for m in added if m.startswith(HEAVY_OWN)]
    assert not own, f"{dag_file.name} imports {own} when parsed: import them inside the tasks"
