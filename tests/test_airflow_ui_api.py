"""The ``--check`` client of Airflow's REST API on what standalone's SQLite metadata database does
to it: a write refused while the scheduler holds the database, and a backfill creation that
committed the backfill before failing (stop 26's CI: the retry met it as "already running").

The server is a stand-in answering as Airflow 3.3's ``/api/v2/backfills`` did in that run; the
real API is exercised end to end by ``test_airflow_ui.py`` and ``test_airflow_celery.py``, where
this race is too rare to reproduce on demand."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from include import airflow_ui
from include.airflow_ui import AirflowApi, AirflowUiError, create_backfill

BODY = {"dag_id": "constant_contact_activity", "from_date": "2026-12-04T20:00:00+00:00"}
DATABASE_ERROR = (500, {"detail": "Database error"})
DATABASE_LOCKED = (503, {"detail": "Database is locked. Backfill creation is not supported on SQLite"})
ALREADY_RUNNING = (409, {"detail": "There is already a running backfill for dag constant_contact_activity"})


class BackfillsStandIn:
    """``POST /api/v2/backfills`` answers the scripted statuses in turn, having created the backfill
    whenever ``creates`` says so; ``GET /api/v2/backfills?dag_id=`` lists what was created."""

    def __init__(self, posts: list[tuple[tuple[int, dict], bool]]) -> None:
        self.posts = list(posts)
        self.created: list[dict[str, Any]] = []
        self.requests: list[str] = []

    def answer(self, method: str, path: str) -> tuple[int, dict]:
        self.requests.append(f"{method} {path}")
        if method == "POST":
            (status, body), creates = self.posts.pop(0)
            if creates:
                self.created.append(
                    {"id": len(self.created) + 1, "dag_id": BODY["dag_id"], "completed_at": None}
                )
            return (status, body) if status != 200 else (200, self.created[-1])
        newest_first = sorted(self.created, key=lambda backfill: -backfill["id"])
        return 200, {"backfills": newest_first[:1], "total_entries": len(self.created)}


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(airflow_ui, "DATABASE_BUSY_PAUSE_SECONDS", 0.0)
    servers: list[ThreadingHTTPServer] = []

    def start(stand_in: BackfillsStandIn) -> AirflowApi:
        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, body = stand_in.answer(self.command, self.path)
                payload = json.dumps(body).encode()
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


@pytest.mark.parametrize(
    "posts",
    [
        pytest.param([(DATABASE_ERROR, True), (ALREADY_RUNNING, False)], id="committed-then-failed"),
        pytest.param(
            [(DATABASE_LOCKED, False), (DATABASE_ERROR, True), (ALREADY_RUNNING, False)],
            id="locked-then-committed-then-failed",
        ),
    ],
)
def test_a_backfill_created_by_a_failed_attempt_is_the_one_returned(serve: Any, posts: list) -> None:
    stand_in = BackfillsStandIn(posts)

    backfill = create_backfill(serve(stand_in), "token", BODY)

    assert backfill == stand_in.created[0]
    assert len(stand_in.created) == 1
    assert stand_in.requests[-1].startswith("GET /api/v2/backfills?dag_id=constant_contact_activity")


def test_a_busy_database_is_retried_until_the_backfill_is_created(serve: Any) -> None:
    stand_in = BackfillsStandIn([(DATABASE_LOCKED, False), (DATABASE_LOCKED, False), ((200, {}), True)])

    backfill = create_backfill(serve(stand_in), "token", BODY)

    assert backfill["id"] == 1
    assert [request.split()[0] for request in stand_in.requests] == ["POST"] * 3


def test_a_conflict_at_the_first_attempt_is_somebody_elses_backfill(serve: Any) -> None:
    stand_in = BackfillsStandIn([(ALREADY_RUNNING, False)])
    stand_in.created.append({"id": 7, "dag_id": BODY["dag_id"], "completed_at": None})

    with pytest.raises(AirflowUiError, match="409") as raised:
        create_backfill(serve(stand_in), "token", BODY)

    assert raised.value.status_code == 409
    assert stand_in.requests == ["POST /api/v2/backfills"]
