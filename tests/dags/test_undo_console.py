"""The sync console's run page and its "Undo this run" button (issue 13), with Airflow's own auth
(SimpleAuthManager JWTs) on a world after real sync runs and a real dry-run undo (dag.test(), the
emulator over HTTP): the page shows what the run wrote and the plan of its dry-run undo (restored
where, left alone and why); the button is there only for a run that wrote something, needs the
right to trigger the undo DAG, and plans the undo as a dry run whose Airflow page it opens.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cc_sync.console.app import create_app
from tests.dags.conftest import SyncWorld
from tests.dags.test_console_app import _token
from tests.dags.test_undo_dag import _bad_run, _subscribed, undo

pytestmark = pytest.mark.slow

UNDO_DAG_ID = "constant_contact_undo"


@pytest.fixture
def client(airflow_db: Any) -> Iterator[TestClient]:
    from airflow.api_fastapi.app import init_auth_manager

    init_auth_manager()
    outer = FastAPI()
    outer.mount("/cc-sync", create_app())
    with TestClient(outer, base_url="http://testserver") as test_client:
        yield test_client


def _page(client: TestClient, run_id: str) -> str:
    answer = client.get(f"/cc-sync/runs/{quote(run_id, safe='')}", headers=_token("viewer", "vera"))
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_run_page_shows_the_dry_run_plan_and_the_undo_button_plans_it_in_airflow(
    world: SyncWorld, dag_bag: Any, client: TestClient
) -> None:
    undo_dag = dag_bag.get_dag(UNDO_DAG_ID)
    world.sync()
    people = _subscribed(world, 2)
    _, run_id = _bad_run(world, people)
    # CC's first name of the first person changes after the run wrote it: the plan leaves it alone.
    world.emulator.admin.edit_contact(world.contact_of(people[0])["contact_id"], {"first_name": "Since"})
    dry = undo(world, undo_dag, run_id, dry_run=True)
    assert dry["state"] == "success", dry["tasks"]
    idle = world.sync(dry_run=True)

    html = _page(client, run_id)

    assert 'id="undo-this-run"' in html
    assert dry["run_id"] in html  # its undos, newest first, and the plan of the latest dry run
    summary = html.split('id="plan-summary"')[1].split("</table>")[0]
    assert f"undo:{run_id}" in summary
    assert "skip:edited_since" in summary
    planned = world.bookkeeping.get_planned_changes(dry["run_id"])
    assert html.split('id="plan-rows"')[1].count("<tr>") == len(planned) + 1  # + the header
    # Nothing to undo: no button, and why.
    for other in (dry["run_id"], idle["run_id"]):
        page = _page(client, other)
        assert 'id="undo-this-run"' not in page
        assert 'id="no-undo"' in page
    assert client.get("/cc-sync/runs/nope", headers=_token("viewer", "vera")).status_code == 404

    # The button: a viewer may not trigger; a user plans the undo as a dry run and lands on its page.
    path = f"/cc-sync/runs/{quote(run_id, safe='')}/undo"
    assert client.post(path, headers=_token("viewer", "vera")).status_code == 403
    assert (
        client.post(path, headers={**_token("user", "uma"), "Origin": "https://evil.example"}).status_code
        == 403
    )
    idle_path = f"/cc-sync/runs/{quote(idle['run_id'], safe='')}/undo"
    assert client.post(idle_path, headers=_token("user", "uma")).status_code == 422
    answer = client.post(path, headers=_token("user", "uma"), follow_redirects=False)

    assert answer.status_code == 303
    prefix = f"/dags/{UNDO_DAG_ID}/runs/"
    assert answer.headers["location"].startswith(prefix)
    planned_run = unquote(answer.headers["location"].removeprefix(prefix))
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        created = session.query(DagRun).filter_by(dag_id=UNDO_DAG_ID, run_id=planned_run).one()
        assert created.conf == {"run_id": run_id, "dry_run": True}
        assert created.triggering_user_name == "uma"
