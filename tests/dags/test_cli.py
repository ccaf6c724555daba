"""The send-list and activity DAGs run by Airflow's own CLI, ``airflow dags test``, as a user runs
them by hand: in a separate process that parses the dags/ folder, with the connections from the
environment, against the emulator and a member database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from include.airflow_env import PROJECT_ROOT

pytestmark = pytest.mark.slow

SEND_CONF: dict[str, Any] = {
    "segment": "everyone_with_a_company",
    "filter": [{"field": "email", "op": "not_null"}],
    "list": "Sent from the CLI",
    "mode": "create_new",
    "dry_run": False,
}
WINDOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # the activity DAG's hour [10:00, 11:00)


def airflow_dags_test(dag_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run(
        [airflow, "dags", "test", dag_id, *args],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"airflow dags test {dag_id} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def runs_of(world: Any, kind: str) -> pd.DataFrame:
    with world.engine.connect() as conn:
        runs = pd.read_sql(sa.select(world.bookkeeping.runs), conn)
    return runs.loc[runs["kind"] == kind]


@pytest.mark.timeout(1200)
def test_send_list_then_activity_from_airflow_dags_test(world_factory: Any, tmp_path: Path) -> None:
    world = world_factory(f"sqlite:///{tmp_path / 'members.db'}")
    admin = world.emulator.admin

    airflow_dags_test("constant_contact_send_list", "--conf", json.dumps(SEND_CONF))

    (sent_list,) = [item for item in admin.all_lists() if item["name"] == SEND_CONF["list"]]
    on_list = set(sent_list["member_ids"])
    links = world.links()
    send_links = links.loc[links["rule"] == "send_list"]
    assert on_list
    assert set(send_links["contact_id"]) == on_list
    (send_run,) = runs_of(world, "send_list").to_dict("records")
    assert send_run["status"] == "success"
    assert json.loads(send_run["counts"])["linked"] == len(on_list)
    assert admin.counters()["resubscribes"] == 0

    campaign = admin.send_campaign(
        "CLI newsletter", list_ids=[sent_list["list_id"]], at=WINDOW + timedelta(minutes=5)
    )
    readers = campaign["sent_to"][:4]
    admin.track(
        campaign["campaign_activity_id"],
        [{"type": "open", "contact_id": c, "at": WINDOW + timedelta(minutes=10)} for c in readers],
    )
    made = len(campaign["sent_to"]) + len(readers)

    # The hour [10:00, 11:00) is the run "at" 11:00; the same hour twice is a backfill done again.
    for _ in range(2):
        airflow_dags_test("constant_contact_activity", (WINDOW + timedelta(hours=1)).isoformat())
        events = world.bookkeeping.get_activity()
        mine = events.loc[events["campaign_activity_id"] == campaign["campaign_activity_id"]]
        assert len(mine) == made
        assert set(mine["member_id"].dropna().astype(str)) == set(
            send_links.loc[send_links["contact_id"].isin(campaign["sent_to"]), "member_id"].astype(str)
        )
    assert list(runs_of(world, "activity")["status"]) == ["success", "success"]
