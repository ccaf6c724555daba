"""Send a member segment to a new Constant Contact list (issue 5's benchmark): dag.test() on SQLite
and the emulator (rate limit off, activities processed at once), timed once.

The figure to beat is the API-call minimum: the import requests (ceil(N / 40,000), or more when
the rows weigh over 4 MB a request: about 320 bytes a member here, so 12,000 a request), their
polls, and a constant few (find the list, create it and the custom field). The job adds, on purpose, one read
of the new list afterwards (500 contacts a call) to learn the contact ids it links: CC's import
answers no ids. Run alone: ``python -m bench.bench_send_list [--quick]``.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]

IMPORT_MAX = 40_000
PAGE = 500
SEGMENT = [{"field": "email", "op": "not_null"}]


def _setup_airflow() -> None:
    import logging

    from include import airflow_env

    home = Path(tempfile.mkdtemp(prefix="ccsync-bench-airflow-"))
    os.environ["CC_SYNC_TASK_RETRIES"] = "0"
    airflow_env.apply(airflow_home=home)
    from airflow.utils.db import initdb

    initdb()
    logging.getLogger("airflow").setLevel(logging.WARNING)


def minimum_import_requests(db_url: str) -> dict[str, int]:
    """The fewest import requests the segment can take: ceil(N / 40,000), or more when the rows
    weigh over 4 MB a request (the hook packs requests to 95% of 4 MiB). Read from the members,
    without any API call."""
    from cc_sync import send_list
    from cc_sync.constant_contact import bulk
    from cc_sync.constant_contact.convert import frame_to_import_rows
    from cc_sync.member_db.hook import MemberDatabaseHook
    from cc_sync.member_db.mapping import load_mapping
    from cc_sync.sync.resources import DEFAULT_MAPPING_PATH

    mapping = load_mapping(DEFAULT_MAPPING_PATH)
    selected = send_list.selection_mapping(mapping, None, send_list.filter_conditions(SEGMENT, mapping))
    hook = MemberDatabaseHook.from_url(db_url, selected)
    try:
        members = send_list.read_segment(hook)
    finally:
        hook.dispose()
    send, _ = send_list.split_members(members, mapping, set())
    fields = [c for c in send.columns if c not in ("member_id", send_list.EMAIL_KEY)]
    chunks, _ = bulk.plan_import(frame_to_import_rows(send[fields]), ["list-id-placeholder-0000000000000000"])
    body_bytes = sum(len(c.body) for c in chunks)
    return {
        "rows": len(send),
        "import_body_bytes": body_bytes,
        "by_count": math.ceil(len(send) / IMPORT_MAX),
        "by_size": math.ceil(body_bytes / bulk.MAX_IMPORT_BYTES),
        "as_packed": len(chunks),
    }


def send_scenario(members: int, dag: Any, work: Path) -> dict[str, Any]:
    """Members in SQLite, an empty CC account, one create_new run of the whole scope with an email."""
    import sqlalchemy as sa

    from cc_sync.member_db.bookkeeping import Bookkeeping
    from include import sync_world
    from include.cc_emulator.testing import run_emulator

    work.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{work / f'members-{members}.db'}"
    sync_world.create_members(db_url, members)
    unlimited = {"rate_limit_per_second": None, "daily_quota": None, "activity_processing_seconds": 0.0}
    with run_emulator(**unlimited) as emulator:
        state = f"sqlite:///{work / 'cc-state.db'}"
        for key, value in sync_world.connection_env(emulator, db_url, state).items():
            os.environ[key] = value
        started = time.perf_counter()
        run = dag.test(
            run_conf={"segment": None, "filter": SEGMENT, "list": "Benchmark", "mode": "create_new",
                      "dry_run": False}
        )  # fmt: skip
        seconds = time.perf_counter() - started
        counters = emulator.admin.counters()
        engine = sa.create_engine(db_url)
        record = Bookkeeping(engine).get_run(run.run_id) or {}
        engine.dispose()
    if run.state != "success":
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        raise RuntimeError(f"send-list run ended {run.state}: {states}")
    counts = record.get("counts", {})
    sent = counts.get("sent", 0)
    endpoints = counters["endpoints"]
    imports = endpoints.get("POST /v3/activities/contacts_json_import", 0)
    polls = endpoints.get("GET /v3/activities/{activity_id}", 0)
    list_reads = endpoints.get("GET /v3/contacts", 0)
    minimum = minimum_import_requests(db_url)
    return {
        "minimum": minimum,
        "members": members,
        "segment_members": counts.get("segment_members", counts.get("sent", 0) + counts.get("skipped", 0)),
        "sent": sent,
        "linked": counts.get("linked", 0),
        "skipped": counts.get("skipped", 0),
        "seconds": round(seconds, 1),
        "api_calls": counters["api_calls"],
        "import_requests": imports,
        "polls": polls,
        "contact_reads": list_reads,
        "minimum_imports": max(minimum["by_count"], minimum["by_size"]),
        "link_read_pages": math.ceil(sent / PAGE),
        "other_calls": counters["api_calls"] - imports - polls - list_reads,
        "endpoints": endpoints,
    }


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    _setup_airflow()
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).get_dag("constant_contact_send_list")
    # The sample data keeps about 80% of its members active with an email (the segment): size the table so
    # the segment holds about N people.
    target = 10_000 if quick else 100_000
    scenario = send_scenario(int(target / 0.8), dag, Path(tempfile.mkdtemp(prefix="ccsync-bench-send-")))
    n = scenario["sent"]
    results[f"send_list_{target}_sent"] = n
    results[f"send_list_{target}_seconds"] = scenario["seconds"]
    results[f"send_list_{target}_api_calls"] = scenario["api_calls"]
    results[f"send_list_{target}_import_requests"] = scenario["import_requests"]
    results[f"send_list_{target}_polls"] = scenario["polls"]
    results[f"send_list_{target}_contact_read_calls"] = scenario["contact_reads"]
    results[f"send_list_{target}_other_calls"] = scenario["other_calls"]
    results[f"send_list_{target}_minimum_imports"] = scenario["minimum_imports"]
    results[f"send_list_{target}_import_body_bytes"] = scenario["minimum"]["import_body_bytes"]
    results[f"send_list_{target}_link_read_pages"] = scenario["link_read_pages"]
    results[f"send_list_{target}_segment_members"] = scenario["segment_members"]
    results[f"send_list_{target}_linked"] = scenario["linked"]
    results[f"send_list_{target}_skipped"] = scenario["skipped"]
    results["send_list_endpoints"] = scenario["endpoints"]


if __name__ == "__main__":
    import json

    out: dict[str, Any] = {}
    run(out, quick="--quick" in sys.argv)
    print(json.dumps(out, indent=2))
