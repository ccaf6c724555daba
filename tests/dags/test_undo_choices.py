"""The undo DAG's ``run_id`` param as the DAG processor builds it: the DAG file parsed by a real
DagBag against a real member database after real sync runs (dag.test(), the emulator over HTTP).

Recent runs that wrote something are offered (newest first, labelled), dry runs are not, a run id
not offered is still accepted, and a bookkeeping that cannot be read (no connection, the database
down, the tables not migrated) leaves a free-text field, never a parse error.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import sqlalchemy as sa

from cc_sync.undo import choices
from include.airflow_env import PROJECT_ROOT
from tests.dags.conftest import SyncWorld

pytestmark = pytest.mark.slow

UNDO_DAG_ID = "constant_contact_undo"
MEMBER_DB_ENV = "AIRFLOW_CONN_MEMBER_DB_DEFAULT"


def _parse_undo_dag() -> Any:
    """Parse dags/constant_contact_undo.py as the DAG processor would (a fresh DagBag)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "constant_contact_undo.py"))
    assert bag.import_errors == {}
    return bag.get_dag(UNDO_DAG_ID)


def _schema(dag: Any) -> dict[str, Any]:
    return dag.params.get_param("run_id").schema


def test_recent_runs_that_wrote_are_offered_newest_first_and_any_run_id_is_accepted(
    synced: SyncWorld, airflow_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = synced.runs[0]["run_id"]  # the initial sync: it linked and wrote
    synced.edit_member(synced.linked_member_ids()[0], first_name="Offered")
    dry = synced.sync(dry_run=True)
    assert dry["status"] == "dry_run"
    wrote = synced.sync()
    assert wrote["state"] == "success", wrote["tasks"]
    idle = synced.sync()  # nothing changed since: writes nothing, so nothing to undo
    assert synced.bookkeeping.get_changes(idle["run_id"]).empty

    schema = _schema(_parse_undo_dag())

    assert schema["type"] == "string"
    assert "enum" not in schema  # an enum would refuse a run id not in the list
    assert schema["examples"] == [wrote["run_id"], first]
    labels = schema["values_display"]
    written = len(synced.bookkeeping.get_changes(wrote["run_id"]))
    assert labels[wrote["run_id"]].endswith(f": {written} change(s)")
    assert labels[wrote["run_id"]].startswith("incremental ")
    assert wrote["run_id"] in schema["description_md"]
    # The DAG processor serializes the DAG: the examples and labels must survive it.
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = json.dumps(DagSerialization.to_dict(_parse_undo_dag()))
    assert wrote["run_id"] in serialized

    # Offer only the newest: the older run is not in the list, and is still accepted and undone.
    monkeypatch.setattr(choices, "CHOICES", 1)
    dag = _parse_undo_dag()
    assert _schema(dag)["examples"] == [wrote["run_id"]]
    params = copy.deepcopy(dag.params)
    params["run_id"] = first  # validated against the schema as it is set: examples are no enum
    assert params.validate()["run_id"] == first
    run = dag.test(
        run_conf={
            "run_id": first,
            "dry_run": True,
            "fields": [],
            "people": [],
            "allow_mass_change": True,
            "max_change_share": 1.0,
        }
    )
    assert run.state == "success"
    assert len(synced.bookkeeping.get_planned_changes(run.run_id)) > 0


@pytest.mark.parametrize(
    "member_db",
    [
        pytest.param(None, id="no-connection"),
        # Nothing listens on port 1: the connect is refused at once.
        pytest.param("postgresql+psycopg://postgres@127.0.0.1:1/test", id="database-down"),
        pytest.param("not-migrated", id="tables-not-migrated"),
    ],
)
def test_an_unreadable_bookkeeping_leaves_a_free_text_field(
    member_db: str | None, airflow_db: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    if member_db is None:
        monkeypatch.delenv(MEMBER_DB_ENV, raising=False)
    else:
        if member_db == "not-migrated":
            member_db = f"sqlite:///{tmp_path / 'empty.db'}"
            engine = sa.create_engine(member_db)
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE members (member_id INTEGER PRIMARY KEY)"))
            engine.dispose()
        monkeypatch.setenv(
            MEMBER_DB_ENV, json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": member_db}})
        )

    param = _parse_undo_dag().params.get_param("run_id")

    assert param.schema["type"] == "string"
    assert "examples" not in param.schema
    assert "unavailable when this DAG was parsed" in param.description
    assert "127.0.0.1" not in param.description  # the reason names the error, never the URL
