"""The ``--check`` client of Airflow's REST API on what standalone's SQLite metadata database does
to it: a write refused while the scheduler holds the database, and a creation that committed
before failing (stop 26's CI: a backfill's retry met the backfill as "already running").

The server is a stand-in answering as Airflow 3.3's ``/api/v2/backfills`` and ``dagRuns`` did in
that run; the real API is exercised end to end by ``test_airflow_ui.py`` and
``test_airflow_celery.py``, where this race is too rare to reproduce on demand."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

from include import airflow_ui
from include.airflow_ui import AirflowApi, AirflowUiError, backfill_and_wait, create_backfill, trigger

DAG_ID = "constant_contact_activity"
BACKFILL = {"dag_id": DAG_ID, "from_date": "2026-12-04T20:00:00+00:00"}
DATABASE_ERROR = (500, {"detail": "Database error"})
DATABASE_LOCKED = (503, {"detail": "Database is locked. Backfill creation is not supported on SQLite"})
CONFLICT = (409, {"detail": "There is already a running backfill for dag constant_contact_activity"})
CREATED = (200, {})


class AirflowStandIn:
    """Each POST answers the next scripted status, having created its object when the script says
    so (a backfill, or a run under the body's ``dag_run_id``); GETs read what was created."""

    def __init__(
        self, posts: list[tuple[tuple[int, dict], bool]], removed_once_listed: int | None = None
    ) -> None:
        self.posts = list(posts)
        self.backfills: list[dict[str, Any]] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        # A backfill Airflow's cleanup removes right after a listing still showed it.
        self.removed_once_listed = removed_once_listed
        self.made_backfills = 0

    def answer(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict]:
        self.requests.append(f"{method} {path}")
        if method == "POST":
            (status, answer), creates = self.posts.pop(0)
            made = self._create(path, body) if creates else None
            return (200, made) if status == 200 and made else (status, answer)
        if path.startswith("/api/v2/backfills?"):
            newest_first = sorted(self.backfills, key=lambda backfill: -backfill["id"])
            listed = {"backfills": newest_first[:1], "total_entries": len(self.backfills)}
            self.backfills = [b for b in self.backfills if b["id"] != self.removed_once_listed]
            return 200, listed
        if path.startswith("/api/v2/backfills/"):
            backfill_id = int(path.rsplit("/", 1)[1])
            found = next((b for b in self.backfills if b["id"] == backfill_id), None)
            if found is None:
                return 404, {"detail": "Backfill not found"}
            found["completed_at"] = "2026-12-05T22:35:30Z"  # its runs are done by the first look
            return 200, found
        if path.endswith("/dagRuns?limit=100"):
            return 200, {
                "dag_runs": [{"dag_run_id": "backfill__1", "state": "success", "run_type": "backfill"}]
            }
        run_id = unquote(path.rsplit("/", 1)[1])
        return (200, self.runs[run_id]) if run_id in self.runs else (404, {"detail": "not found"})

    def _create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "/api/v2/backfills":
            self.made_backfills += 1
            self.backfills.append({"id": self.made_backfills, "dag_id": DAG_ID, "completed_at": None})
            return self.backfills[-1]
        run = {"dag_run_id": body["dag_run_id"], "state": "queued", "conf": body["conf"]}
        self.runs[run["dag_run_id"]] = run
        return run


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[AirflowStandIn], AirflowApi]]:
    monkeypatch.setattr(airflow_ui, "DATABASE_BUSY_PAUSE_SECONDS", 0.0)
    monkeypatch.setattr(airflow_ui, "BACKFILL_POLL_SECONDS", 0.0)
    servers: list[ThreadingHTTPServer] = []

    def start(stand_in: AirflowStandIn) -> AirflowApi:
        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                status, answer = stand_in.answer(self.command, self.path, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _reply

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return AirflowApi(f"http://127.0.0.1:{server.server_address[1]}")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


COMMITTED_THEN_FAILED = [
    pytest.param([(DATABASE_ERROR, True), (CONFLICT, False)], id="committed-then-failed"),
    pytest.param(
        [(DATABASE_LOCKED, False), (DATABASE_ERROR, True), (CONFLICT, False)],
        id="locked-then-committed-then-failed",
    ),
]


@pytest.mark.parametrize("posts", COMMITTED_THEN_FAILED)
def test_a_backfill_created_by_a_failed_attempt_is_the_one_returned(serve: Any, posts: list) -> None:
    stand_in = AirflowStandIn(posts)

    backfill = create_backfill(serve(stand_in), "token", BACKFILL)

    assert backfill == stand_in.backfills[0]
    assert len(stand_in.backfills) == 1
    assert stand_in.requests[-1].startswith(f"GET /api/v2/backfills?dag_id={DAG_ID}")


@pytest.mark.parametrize("posts", COMMITTED_THEN_FAILED)
def test_a_run_triggered_by_a_failed_attempt_is_the_one_returned(serve: Any, posts: list) -> None:
    stand_in = AirflowStandIn(posts)

    run = trigger(serve(stand_in), "token", DAG_ID, {"lookback_days": 1})

    assert list(stand_in.runs.values()) == [run]
    assert run["conf"] == {"lookback_days": 1}
    assert stand_in.requests[-1].startswith(f"GET /api/v2/dags/{DAG_ID}/dagRuns/manual__")


def test_a_busy_database_is_retried_until_the_backfill_is_created(serve: Any) -> None:
    stand_in = AirflowStandIn([(DATABASE_LOCKED, False), (DATABASE_LOCKED, False), (CREATED, True)])

    backfill = create_backfill(serve(stand_in), "token", BACKFILL)

    assert backfill["id"] == 1
    assert [request.split()[0] for request in stand_in.requests] == ["POST"] * 3


def test_a_conflict_at_the_first_attempt_is_somebody_elses_backfill(serve: Any) -> None:
    stand_in = AirflowStandIn([(CONFLICT, False)])
    stand_in.backfills.append({"id": 7, "dag_id": DAG_ID, "completed_at": None})

    with pytest.raises(AirflowUiError, match="409") as raised:
        create_backfill(serve(stand_in), "token", BACKFILL)

    assert raised.value.status_code == 409
    assert stand_in.requests == ["POST /api/v2/backfills"]


def test_a_backfill_airflow_removed_after_its_failed_attempt_is_created_again(serve: Any) -> None:
    # As in CI on 5 December: the backfill committed, its runs refused on the locked database (503,
    # and Airflow's cleanup removes the backfill), the retry still met it (409) and read it back,
    # then it was gone (404).
    stand_in = AirflowStandIn(
        [(DATABASE_LOCKED, True), (CONFLICT, False), (CREATED, True)], removed_once_listed=1
    )

    runs = backfill_and_wait(
        serve(stand_in),
        "token",
        DAG_ID,
        datetime(2026, 12, 4, 20, tzinfo=UTC),
        datetime(2026, 12, 5, tzinfo=UTC),
    )

    assert runs == {"backfill__1": "success"}
    assert [b["id"] for b in stand_in.backfills] == [2]
    assert stand_in.requests[2:5] == [
        f"GET /api/v2/backfills?dag_id={DAG_ID}&order_by=-id&limit=1",
        "GET /api/v2/backfills/1",
        "POST /api/v2/backfills",
    ]
