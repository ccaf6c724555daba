"""The sync console's pages at scale: status page and review queue < 300 ms with 1,000,000 members,
100,000 change-log rows and 10,000 open review items (issue 12).

The member database is SQLite (var/bench/console-members.db, kept between runs); the bookkeeping is
filled in bulk here (a benchmark's fixture, not the console's code), with 30 days of runs of the
three DAGs. Each page is requested through the console's FastAPI app with a real Airflow JWT, so
the figures include Airflow's authorization, the template and the plots.
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from bench.bench_member_db import BENCH_DIR, _ensure_members, _paths

REQUESTS = 10
CHANGES = 100_000
OPEN_REVIEWS = 10_000
RUN_DAYS = 30
RUNS_PER_DAY = 24  # an hourly sync; plus the send-list and activity DAGs' runs
KINDS = ("near_match", "shared_email", "email_collision", "rejected_no_email", "write_failed_cc")
DIRECTIONS = ("to_cc", "to_member_db", "link")


def _seed_bookkeeping(url: str, members: int) -> dict[str, Any]:
    """Runs, change log and open reviews, unless a previous run of this benchmark left them."""
    from cc_sync.member_db.bookkeeping import Bookkeeping, natural_key

    engine = sa.create_engine(url)
    books = Bookkeeping(engine)
    with engine.connect() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(books.changes)).scalar_one()
    if have >= CHANGES:
        engine.dispose()
        return {"seeded": "kept from the last run"}
    started = time.perf_counter()
    now = datetime.now(UTC)
    runs = []
    for day in range(RUN_DAYS):
        for hour in range(RUNS_PER_DAY):
            at = now - timedelta(days=day, hours=hour)
            for dag_id in (
                "constant_contact_sync",
                "constant_contact_send_list",
                "constant_contact_activity",
            ):
                if dag_id != "constant_contact_sync" and hour % 12:
                    continue
                counts = {"cc_updates": 40, "member_updates": 30, "reviews": 3, "cc_creates": 2}
                runs.append(
                    {
                        "run_id": f"{dag_id}__{at.isoformat()}",
                        "dag_id": dag_id,
                        "kind": "incremental",
                        "status": "success",
                        "started_at": at,
                        "finished_at": at + timedelta(seconds=42),
                        "counts": json.dumps(counts),
                        "api_calls": 9,
                    }
                )
    sync_runs = [r["run_id"] for r in runs if r["dag_id"] == "constant_contact_sync"]
    changes = [
        {
            "run_id": sync_runs[i % len(sync_runs)],
            "direction": DIRECTIONS[i % 3],
            "member_id": str(1 + (i * 7919) % members),
            "contact_id": f"c-{i}",
            "field": "city",
            "old_value": "Lyon",
            "new_value": "Nantes",
            "reason": "member_changed",
            "changed_at": now,
        }
        for i in range(CHANGES)
    ]
    reviews = [
        {
            "open_key": natural_key("bench-review", i),
            "kind": KINDS[i % len(KINDS)],
            "status": "open",
            "member_id": str(1 + (i * 104729) % members),
            "contact_id": f"c-{i}",
            "email_hint": "a***@example.org",
            "detail": "member 'Anne X' vs contact 'Annabelle X'",
            "run_id": sync_runs[i % len(sync_runs)],
            "created_at": now - timedelta(hours=i % (24 * RUN_DAYS)),
        }
        for i in range(OPEN_REVIEWS)
    ]
    with engine.begin() as conn:
        conn.execute(books.runs.insert(), runs)
        for start in range(0, len(changes), 20_000):
            conn.execute(books.changes.insert(), changes[start : start + 20_000])
        conn.execute(books.reviews.insert(), reviews)
        conn.execute(
            books.watermarks.insert(),
            [{"stream": s, "watermark": now, "updated_at": now} for s in ("members", "cc_contacts")],
        )
    engine.dispose()
    return {"seeded_seconds": round(time.perf_counter() - started, 1), "runs": len(runs)}


def _time_page(client: Any, path: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = client.get(path, headers=headers)  # warm: the first request builds caches
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    _paths()
    import os

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from include import local_setup, sync_world

    members = 100_000 if quick else 1_000_000
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{BENCH_DIR / f'console-members-{members}.db'}"
    results["members"] = members
    results["generate_members_seconds"] = _ensure_members(url, members)
    sync_world.migrate_bookkeeping(url)
    results.update(_seed_bookkeeping(url, members))
    results["changes"], results["open_reviews"] = CHANGES, OPEN_REVIEWS

    # The connections as the API server would read them; no API call is made (quota comes from
    # the hook's shared state), so the Constant Contact host is never contacted.
    fake = SimpleNamespace(
        token_url="http://127.0.0.1:9/token",
        base_url="http://127.0.0.1:9",
        client_id="bench",
        client_secret="x",
    )
    state = f"sqlite:///{BENCH_DIR / 'console-cc-state.db'}"
    os.environ.update(sync_world.connection_env(fake, url, state))  # type: ignore[arg-type]
    local_setup.migrate_airflow_db()

    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from cc_sync.console.app import create_app

    manager = init_auth_manager()
    headers = {
        "Authorization": f"Bearer {manager.generate_jwt(SimpleAuthManagerUser(username='b', role='viewer'))}"
    }
    outer = FastAPI()
    outer.mount("/cc-sync", create_app())
    with TestClient(outer) as client:
        pages = {
            "status": "/cc-sync/",
            "review_queue": "/cc-sync/reviews",
            "review_queue_kind_and_age": "/cc-sync/reviews?kind=near_match&min_age_days=3",
            "review_queue_page_100": "/cc-sync/reviews?page=100",
            "review_item": "/cc-sync/reviews/5000",
            "person": f"/cc-sync/person?q={members // 2}",
        }
        for name, path in pages.items():
            for key, value in _time_page(client, path, headers).items():
                results[f"{name}_{key}"] = value
    results["target_ms"] = 300
