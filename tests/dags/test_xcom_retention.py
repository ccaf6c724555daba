"""Personal data at rest (cc_sync.xcom_retention): once a sync has finished and its record is
closed, no XCom object of the run holds an email address; ``CC_SYNC_XCOM_RETENTION=keep`` keeps
them. Nor do the rendered template fields Airflow keeps for ever (cc_sync.withheld). Real
dag.test() runs, the object-storage XCom backend on this session's local folder."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import DAG_ID, SyncWorld

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
# The start of an address, or an id (the sample members' and the contacts' ids are UUIDs).
PERSONAL = re.compile(r"[\w.+-]+@[\w-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-")


def run_xcom_files(run_id: str) -> list[Path]:
    """The run's files under the object-storage XCom path (the backend's base/dag_id/run_id/...)."""
    base = Path(os.environ["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH"].removeprefix("file://"))
    return [path for path in (base / DAG_ID / run_id).rglob("*") if path.is_file()]


def emails_in(path: Path) -> set[str]:
    """The email addresses in one XCom file, read as the backend reads it (DataFrames are parquet
    inside the JSON, so the raw bytes show no address)."""
    import pandas as pd
    from airflow.utils.json import XComDecoder

    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as f:
        value = json.load(f, cls=XComDecoder)
    found: set[str] = set()

    def scan(item: Any) -> None:
        if isinstance(item, pd.DataFrame):
            for column in item.columns:
                found.update(EMAIL.findall(" ".join(map(str, item[column].dropna()))))
        elif isinstance(item, dict):
            for nested in item.values():
                scan(nested)
        elif isinstance(item, (list, tuple)):
            for nested in item:
                scan(nested)
        elif isinstance(item, str):
            found.update(EMAIL.findall(item))

    scan(value)
    return found


def test_a_finished_sync_leaves_no_xcom_object_with_an_email(world: SyncWorld) -> None:
    run = world.sync()

    assert run["state"] == "success", run["tasks"]
    # What the console and the undo read is in the bookkeeping: the run record, its change log.
    assert run["status"] == "success"
    assert len(world.bookkeeping.get_changes(run["run_id"])) > 0
    leftovers = {str(path): emails_in(path) for path in run_xcom_files(run["run_id"])}
    assert not {path: found for path, found in leftovers.items() if found}
    assert not leftovers


def test_a_cleared_task_of_a_finished_run_is_told_to_clear_the_whole_run(world: SyncWorld) -> None:
    from cc_sync.errors import NotRetryableError
    from cc_sync.sync.xcom import plan_from_xcom
    from tests.dags.test_sync_dag import _xcom

    run = world.sync()

    with pytest.raises(NotRetryableError, match="Clear the whole run"):
        plan_from_xcom(_xcom(run["run_id"], "resolve"))


def test_keep_keeps_the_runs_xcom_objects(world: SyncWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC_SYNC_XCOM_RETENTION", "keep")

    run = world.sync()

    assert run["state"] == "success", run["tasks"]
    files = run_xcom_files(run["run_id"])
    # The extracts and the plan: member and contact rows with their full addresses.
    assert any(emails_in(path) for path in files), files
    # Written as they are (include/airflow_env.py turns compression off: gzip cost seconds of CPU).
    assert not [path for path in files if path.suffix in {".gz", ".zst", ".bz2"}], files
    assert all(path.read_bytes()[:2] != b"\x1f\x8b" for path in files)


def test_a_dry_run_is_cleaned_too(world: SyncWorld) -> None:
    run = world.sync(dry_run=True)

    assert run["status"] == "dry_run", run
    assert run_xcom_files(run["run_id"]) == []


def test_an_unknown_retention_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    from cc_sync import settings

    monkeypatch.setenv("CC_SYNC_XCOM_RETENTION", "forever")
    with pytest.raises(ValueError, match="'forever' is not one of: delete, keep"):
        settings.xcom_retention()


def rendered_fields(run_id: str) -> dict[str, dict[str, Any]]:
    """What Airflow stored of each task's rendered template fields (the UI's "Rendered Template")."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(Rendered.task_id, Rendered.rendered_fields).where(
                Rendered.dag_id == DAG_ID, Rendered.run_id == run_id
            )
        )
        return {task_id: fields for task_id, fields in rows}


def test_airflow_keeps_no_email_in_the_rendered_template_fields(world: SyncWorld) -> None:
    run = world.sync()

    assert run["state"] == "success", run["tasks"]
    stored = rendered_fields(run["run_id"])
    # The steps that receive the run's frames, and the loads that receive the plan.
    for task_id in ("compare", "link", "resolve", "guard", "load.constant_contact", "load.member_database"):
        assert task_id in stored, sorted(stored)
    # Neither a member's or contact's id nor even a cut address ("anne.smith@exampl...": a frame's
    # text is cut to fit) is kept.
    found = {task: PERSONAL.findall(json.dumps(fields)) for task, fields in stored.items()}
    assert not {task: values for task, values in found.items() if values}
    # What the UI shows instead: each frame's shape.
    assert re.search(r"<DataFrame: [\d,]+ rows × \d+ columns>", str(stored["compare"]["op_args"])), stored
    assert "<DataFrame" in str(stored["load.constant_contact"]["plan"]), stored
