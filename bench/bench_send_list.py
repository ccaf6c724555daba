"""Send a member segment to a new Constant Contact list (issue 5's benchmark): dag.test() on SQLite
and the emulator (rate limit off, activities processed at once), timed once.

The figure to beat is the API-call minimum: the import requests (ceil(N / 40,000), or more when
the rows weigh over 4 MB a request: about 320 bytes a member here, so 12,000 a request), their
polls, and a constant few (find the list, create it and the custom field).

Two measurements of the same segment sent to a new list:

- **unknown**: an empty CC account and directory. CC's import answers no contact ids, so the job
  reads the new list afterwards to learn the ids it links: by one contact export (its POST, its
  polls, one file read: issue 18, part 4), and, measured beside it as ``..._page_by_page``, page by
  page (500 contacts a call, ``CC_SYNC_LIST_EXPORT_MIN_PAGES=off``) as before.
- **known**: the same account already holds a contact for every member, recorded in the sync's
  directory as a scheduled sync leaves it (contacts seeded through the emulator's admin, dated the
  day before, then read with the hook and recorded with ``upsert_directory``, all outside the
  measured section). The job reads what changed in CC since the directory was recorded (one call)
  and, every id being known and the import clean, reads nothing back.

Run alone: ``python -m bench.bench_send_list [--quick]``.
"""

from __future__ import annotations

import math
import os
import shutil
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
# members -> a fresh member database of that size, copied for each scenario.
_TEMPLATES: dict[int, Path] = {}


def minimum_import_requests(db_url: str) -> dict[str, int]:
    """The fewest import requests the segment can take: ceil(N / 40,000), or more when the rows
    weigh over 4 MB a request (the hook packs requests to 95% of 4 MiB). Read from the members,
    without any API call."""
    from cc_sync.constant_contact import bulk
    from cc_sync.constant_contact.convert import frame_to_import_rows
    from cc_sync.send_list import send as send_list

    send = _segment_to_send(db_url)
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


def _segment_to_send(db_url: str) -> Any:
    """The members the job sends (the segment less those it skips), read without any API call."""
    from cc_sync.member_db.hook import MemberDatabaseHook
    from cc_sync.member_db.mapping import load_mapping
    from cc_sync.send_list import send as send_list
    from cc_sync.sync.resources import DEFAULT_MAPPING_PATH

    mapping = load_mapping(DEFAULT_MAPPING_PATH)
    selected = send_list.selection_mapping(mapping, None, send_list.filter_conditions(SEGMENT, mapping))
    hook = MemberDatabaseHook.from_url(db_url, selected)
    try:
        members = send_list.read_segment(hook)
        opted_out = hook.opted_out_emails()
    finally:
        hook.dispose()
    send, _ = send_list.split_members(members, mapping, set(), opted_out)
    return send


def seed_known_contacts(emulator: Any, db_url: str) -> dict[str, Any]:
    """A contact for every member the job will send, recorded in the directory as a scheduled sync
    leaves it: seeded through the emulator's admin (no API call), dated the day before, then read
    with the hook (as the sync reads, ``status=all``, 500 a call) and recorded. Not measured."""
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from cc_sync.constant_contact.hook import ConstantContactHook
    from cc_sync.member_db.bookkeeping import Bookkeeping
    from cc_sync.send_list import send as send_list

    send = _segment_to_send(db_url)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds").replace("+00:00", "Z")
    contacts = [
        {
            "email_address": {"address": email, "permission_to_send": "implicit"},
            "first_name": first,
            "last_name": last,
            "created_at": yesterday,
            "updated_at": yesterday,
        }
        for email, first, last in zip(
            send["email"].str.strip(),
            send["first_name"].astype(object),
            send["last_name"].astype(object),
            strict=True,
        )
    ]
    contacts = [{k: v for k, v in c.items() if isinstance(v, str | dict)} for c in contacts]
    for start in range(0, len(contacts), 20_000):
        emulator.admin.seed_contacts(contacts=contacts[start : start + 20_000])
    hook = ConstantContactHook()
    read = send_list.contacts_frame(hook.iter_contacts(status="all", include=None))
    engine = sa.create_engine(db_url)
    try:
        recorded = Bookkeeping(engine).upsert_directory(read)
    finally:
        engine.dispose()
    return {"seeded": len(contacts), "directory": recorded, "read_calls": hook.api_calls}


def send_scenario(
    members: int, dag: Any, work: Path, *, known: bool = False, page_by_page: bool = False
) -> dict[str, Any]:
    """Members in SQLite, a CC account (empty, or holding every member when ``known``), one
    create_new run of the whole scope with an email (the list read after the import page by page
    when ``page_by_page``, else as the job chooses)."""
    import sqlalchemy as sa

    from cc_sync.member_db.bookkeeping import Bookkeeping
    from include import sync_world
    from include.cc_emulator.testing import run_emulator

    work.mkdir(parents=True, exist_ok=True)
    db_path = work / f"members-{members}.db"
    db_url = f"sqlite:///{db_path}"
    # Each scenario starts from the same fresh member table: made once, copied (outside the measure).
    template = _TEMPLATES.get(members)
    if template is None:
        sync_world.create_members(db_url, members)
        template = _TEMPLATES[members] = Path(tempfile.mkdtemp(prefix="ccsync-bench-send-members-")) / "m.db"
        shutil.copyfile(db_path, template)
    else:
        shutil.copyfile(template, db_path)
    unlimited = {"rate_limit_per_second": None, "daily_quota": None, "activity_processing_seconds": 0.0}
    with run_emulator(**unlimited) as emulator:
        state = f"sqlite:///{work / 'cc-state.db'}"
        for key, value in sync_world.connection_env(emulator, db_url, state).items():
            os.environ[key] = value
        seeding = seed_known_contacts(emulator, db_url) if known else {}
        counters_before = emulator.admin.counters()
        if page_by_page:
            os.environ["CC_SYNC_LIST_EXPORT_MIN_PAGES"] = "off"
        started = time.perf_counter()
        try:
            run = dag.test(
                run_conf={"segment": None, "filter": SEGMENT, "list": "Benchmark", "mode": "create_new",
                          "dry_run": False}
            )  # fmt: skip
        finally:
            os.environ.pop("CC_SYNC_LIST_EXPORT_MIN_PAGES", None)
        seconds = time.perf_counter() - started
        counters = emulator.admin.counters()
        engine = sa.create_engine(db_url)
        record = Bookkeeping(engine).get_run(run.run_id) or {}
        engine.dispose()
    endpoints = {
        k: v - counters_before["endpoints"].get(k, 0)
        for k, v in counters["endpoints"].items()
        if v - counters_before["endpoints"].get(k, 0)
    }
    api_calls = counters["api_calls"] - counters_before["api_calls"]
    if run.state != "success":
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        raise RuntimeError(f"send-list run ended {run.state}: {states}")
    counts = record.get("counts", {})
    sent = counts.get("sent", 0)
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
        "api_calls": api_calls,
        "import_requests": imports,
        "polls": polls,
        "contact_reads": list_reads,
        "exports": endpoints.get("POST /v3/activities/contact_exports", 0),
        "export_files": endpoints.get("GET /v3/contact_exports/{file_export_id}", 0),
        "list_read_calls": counts.get("list_read_calls"),
        "minimum_imports": max(minimum["by_count"], minimum["by_size"]),
        "link_read_pages": math.ceil(sent / PAGE),
        "other_calls": api_calls
        - imports
        - polls
        - list_reads
        - endpoints.get("POST /v3/activities/contact_exports", 0)
        - endpoints.get("GET /v3/contact_exports/{file_export_id}", 0),
        "list_read_after_import": counts.get("list_read_after_import"),
        "ids_known_before_import": counts.get("ids_known_before_import"),
        "run_api_calls": counts.get("api_calls"),
        "seeding": seeding,
        "endpoints": endpoints,
    }


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    from bench.airflow_setup import project_dag

    dag = project_dag("constant_contact_send_list")
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
    results[f"send_list_{target}_export_requests"] = scenario["exports"]
    results[f"send_list_{target}_export_file_reads"] = scenario["export_files"]
    # The calls the read after the import took (the export's POST, polls and file read).
    results[f"send_list_{target}_list_read_calls"] = scenario["list_read_calls"]
    results["send_list_endpoints"] = scenario["endpoints"]

    # The same send with the list read page by page after the import, as before issue 18.
    paged = send_scenario(
        int(target / 0.8), dag, Path(tempfile.mkdtemp(prefix="ccsync-bench-send-paged-")), page_by_page=True
    )
    prefix = f"send_list_{target}_page_by_page"
    results[f"{prefix}_api_calls"] = paged["api_calls"]
    results[f"{prefix}_contact_read_calls"] = paged["contact_reads"]
    results[f"{prefix}_list_read_calls"] = paged["list_read_calls"]
    results[f"{prefix}_seconds"] = paged["seconds"]
    results[f"{prefix}_linked"] = paged["linked"]

    # The same segment when the directory already knows every contact (as after a scheduled sync).
    known = send_scenario(
        int(target / 0.8), dag, Path(tempfile.mkdtemp(prefix="ccsync-bench-send-known-")), known=True
    )
    prefix = f"send_list_{target}_known"
    results[f"{prefix}_sent"] = known["sent"]
    results[f"{prefix}_seconds"] = known["seconds"]
    results[f"{prefix}_api_calls"] = known["api_calls"]
    results[f"{prefix}_import_requests"] = known["import_requests"]
    results[f"{prefix}_polls"] = known["polls"]
    results[f"{prefix}_contact_read_calls"] = known["contact_reads"]
    results[f"{prefix}_other_calls"] = known["other_calls"]
    results[f"{prefix}_list_read_after_import"] = known["list_read_after_import"]
    results[f"{prefix}_ids_known_before_import"] = known["ids_known_before_import"]
    results[f"{prefix}_linked"] = known["linked"]
    # The minimum: the imports the rows need, their polls (one each here), and the same constant few
    # as the unknown case (find the list, create it, the custom field: read and create).
    minimum = known["minimum_imports"] + known["polls"] + scenario["other_calls"]
    results[f"{prefix}_minimum_calls"] = minimum
    results[f"{prefix}_calls_over_minimum"] = known["api_calls"] - minimum
    results[f"{prefix}_seeding_outside_measure"] = known["seeding"]
    results["send_list_known_endpoints"] = known["endpoints"]


if __name__ == "__main__":
    import json

    out: dict[str, Any] = {}
    run(out, quick="--quick" in sys.argv)
    print(json.dumps(out, indent=2))
