"""``make airflow``: the Airflow UI on this machine, with the project's DAGs, connections and emulator.

It starts the Constant Contact emulator (its account kept in var/emulator-state.json, with the
production limits: 4 requests a second, 10,000 a day), makes sure the demo member database exists
and is migrated (var/members.db; `make demo` leaves one behind), loads the connections and pools of
airflow_settings.yaml into the Airflow metadata DB, and runs ``airflow standalone`` (scheduler,
dag-processor, API server and triggerer, LocalExecutor) until Ctrl-C; then it stops the emulator.

``--check`` is the same start-up, then what a user does in the UI, through the same REST calls the
UI makes: test the Constant Contact connection (the answer must name the account); trigger the
sync; fill the send-list form (a named segment to a new list) and trigger it, after checking that a
value the form does not offer is refused; have the emulator send a campaign to that list and its
readers open and click; trigger the activity DAG, then backfill it over the last three hours (dates
done re-run); then check every run succeeded, every event landed in the activity table and the
backfill added none, and stop everything (exit status 0 when all held).

Must run with the project's Airflow settings: ``python -m include.airflow_env python -m include.airflow_ui``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import psutil
import requests

from include import airflow_env
from include.airflow_env import PROJECT_ROOT, VAR_DIR

SYNC_DAG_ID = "constant_contact_sync"
SEND_LIST_DAG_ID = "constant_contact_send_list"
ACTIVITY_DAG_ID = "constant_contact_activity"
CC_CONN_ID = "constant_contact_default"
ADMIN_USER = "admin"
STARTUP_TIMEOUT_SECONDS = 240.0
RUN_TIMEOUT_SECONDS = 600.0
STOP_TIMEOUT_SECONDS = 30.0
# Printed once the checks of ``--check --keep-running`` are done (tests wait for it).
CHECKS_DONE = "Checks done"
TEST_CONNECTION_TIMEOUT_SECONDS = 180.0
# Tries of an API call the metadata DB was too busy to take (standalone runs on SQLite), 3 s apart.
DATABASE_BUSY_TRIES = 10
DATABASE_BUSY_PAUSE_SECONDS = 3.0
# How often backfill_and_wait asks whether its backfill completed.
BACKFILL_POLL_SECONDS = 3.0
STANDALONE_LOG = VAR_DIR / "airflow-standalone.log"
EMULATOR_LOG = VAR_DIR / "emulator.log"
CC_STATE_DB = VAR_DIR / "cc_api_state.db"


class RunState(StrEnum):
    """Terminal states of a DAG run, as the REST API spells them."""

    SUCCESS = "success"
    FAILED = "failed"


class AirflowUiError(RuntimeError):
    """Airflow or the emulator did not come up, or the check run did not succeed."""

    def __init__(self, message: str, status_code: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts


@dataclass(frozen=True)
class AirflowApi:
    """The few REST API calls ``--check`` makes (Airflow 3 public API, SimpleAuthManager)."""

    base_url: str
    timeout: float = 30.0

    def healthy(self) -> bool:
        """True once the metadatabase, scheduler, dag-processor and triggerer all report healthy."""
        try:
            answer = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return False
        if not answer.ok:
            return False
        parts = answer.json()
        return all(
            (parts.get(name) or {}).get("status") == "healthy"
            for name in ("metadatabase", "scheduler", "dag_processor", "triggerer")
        )

    def token(self, password: str) -> str:
        answer = requests.post(
            f"{self.base_url}/auth/token",
            json={"username": ADMIN_USER, "password": password},
            timeout=self.timeout,
        )
        answer.raise_for_status()
        return answer.json()["access_token"]

    def call(self, token: str, method: str, path: str, body: dict | None = None) -> dict:
        for attempts in range(1, DATABASE_BUSY_TRIES + 1):
            answer = requests.request(
                method,
                f"{self.base_url}/api/v2{path}",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
            )
            # On standalone's SQLite metadata DB the API refuses a write while the scheduler holds
            # the database ("Database is locked" 503, or a 500 "Database error"); it passes a moment
            # later. A write that committed part of its work before failing: see create().
            busy = answer.status_code in (500, 503) and "database" in answer.text.lower()
            if not busy or attempts == DATABASE_BUSY_TRIES:
                break
            time.sleep(DATABASE_BUSY_PAUSE_SECONDS)
        if not answer.ok:
            raise AirflowUiError(
                f"{method} /api/v2{path} -> {answer.status_code}: {answer.text[:500]}",
                status_code=answer.status_code,
                attempts=attempts,
            )
        return answer.json()

    def create(
        self, token: str, path: str, body: dict[str, Any], find_own: Callable[[], dict[str, Any] | None]
    ) -> dict[str, Any]:
        """POST ``body`` to ``path``, which creates something; returns it. An attempt refused as
        busy may have committed what it created before failing (Airflow 3.3 commits a backfill,
        then makes its runs), so a retry can meet it as a conflict (409): ``find_own`` reads that
        one back. A conflict at the first attempt is somebody else's, and fails."""
        try:
            return self.call(token, "POST", path, body)
        except AirflowUiError as error:
            found = find_own() if error.status_code == 409 and error.attempts > 1 else None
            if found is None:
                raise
            return found


def api_url() -> str:
    return os.environ.get("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080")


def password_file() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"


def admin_password() -> str:
    return json.loads(password_file().read_text())[ADMIN_USER]


# ---- the emulator and the member database ---------------------------------------------------------


@contextlib.contextmanager
def emulator_running(port: int) -> Iterator[str]:
    """The emulator on ``port`` with its account in var/emulator-state.json; yields its base URL.

    A fresh account (no state file yet) cannot know a refresh token rotated by an earlier account,
    so the hook's token state from that one is dropped.
    """
    from include import local_setup

    base_url = f"http://127.0.0.1:{port}"
    if _answers(f"{base_url}/_admin/health"):
        raise AirflowUiError(f"something already answers on {base_url}: stop it (make emulator?) first")
    if not local_setup.EMULATOR_STATE_FILE.exists():
        CC_STATE_DB.unlink(missing_ok=True)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "include.cc_emulator", "--host", "127.0.0.1", "--port", str(port),
               "--state-file", str(local_setup.EMULATOR_STATE_FILE)]  # fmt: skip
    with EMULATOR_LOG.open("ab") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{base_url}/_admin/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AirflowUiError(f"the emulator did not start; see {EMULATOR_LOG}")
            time.sleep(0.1)
        yield base_url
    finally:
        _stop(process)


def prepare_member_database(emulator_url: str) -> str:
    """var/members.db, migrated; a new one gets overlapping contacts in an empty emulator account."""
    from include import local_setup, sync_world
    from include.cc_emulator.testing import EmulatorAdmin, EmulatorHandle

    is_new = not local_setup.DEMO_MEMBER_DB.exists()
    db_path = local_setup.ensure_sample_members()
    db_url = f"sqlite:///{db_path}"
    sync_world.migrate_bookkeeping(db_url)
    handle = EmulatorHandle(base_url=emulator_url, admin=EmulatorAdmin(emulator_url))
    if is_new and not handle.admin.all_contacts():
        seeded = sync_world.seed_contacts_from_members(handle, db_url)
        handle.admin.save_state()
        return f"new, seeded {seeded.same_person + seeded.renamed} overlapping contacts in the emulator"
    return "kept from the last run"


# ---- airflow standalone ---------------------------------------------------------------------------


def start_standalone(log_path: Path | None) -> subprocess.Popen[bytes]:
    """``airflow standalone`` in its own session: the terminal's Ctrl-C reaches this process only,
    which then stops standalone in order (:func:`stop_standalone`)."""
    airflow = str(Path(sys.executable).parent / "airflow")
    output = log_path.open("ab") if log_path else None
    try:
        return subprocess.Popen(
            [airflow, "standalone"],
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            start_new_session=True,
        )
    finally:
        if output:
            output.close()


def wait_until_healthy(api: AirflowApi, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not (api.healthy() and password_file().exists()):
        if process.poll() is not None:
            raise AirflowUiError(f"airflow standalone exited with {process.returncode}; see {STANDALONE_LOG}")
        if time.monotonic() > deadline:
            raise AirflowUiError(f"Airflow was not healthy after {STARTUP_TIMEOUT_SECONDS:.0f} s")
        time.sleep(2)


@dataclass(frozen=True)
class CheckedRun:
    """One DAG run of ``--check``: its state, each task's state, and the summary task's return value."""

    dag_id: str
    run_id: str
    conf: dict[str, Any]
    state: str
    tasks: dict[str, str]
    summary: Any
    tries: dict[str, int]

    @property
    def succeeded(self) -> bool:
        return self.state == RunState.SUCCESS


def unpause(api: AirflowApi, token: str, dag_id: str, timeout: float = 120) -> None:
    """Unpause ``dag_id``, waiting for the dag-processor to have parsed it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.call(token, "PATCH", f"/dags/{dag_id}", {"is_paused": False})
            return
        except AirflowUiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def trigger_and_wait(
    api: AirflowApi, token: str, dag_id: str, conf: dict[str, Any], summary_task: str
) -> CheckedRun:
    """Trigger ``dag_id`` with ``conf`` as the UI's trigger form does (the same REST call), wait for
    the run, and read ``summary_task``'s return value."""
    run = trigger(api, token, dag_id, conf)
    run_path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    state = run["state"]
    while state not in (RunState.SUCCESS, RunState.FAILED) and time.monotonic() < deadline:
        time.sleep(3)
        state = api.call(token, "GET", run_path)["state"]
    tasks = api.call(token, "GET", f"{run_path}/taskInstances")["task_instances"]
    try:
        summary = api.call(token, "GET", f"{run_path}/taskInstances/{summary_task}/xcomEntries/return_value")
    except AirflowUiError:
        summary = None
    return CheckedRun(
        dag_id,
        run["dag_run_id"],
        conf,
        state,
        {t["task_id"]: t["state"] for t in tasks},
        (summary or {}).get("value"),
        {t["task_id"]: t["try_number"] for t in tasks},
    )


def form_params(api: AirflowApi, token: str, dag_id: str) -> set[str]:
    """The fields of ``dag_id``'s trigger form (its params, as the UI reads them)."""
    return set(api.call(token, "GET", f"/dags/{dag_id}/details").get("params") or {})


def refusal(api: AirflowApi, token: str, dag_id: str, conf: dict[str, Any]) -> str | None:
    """The API's answer to a trigger with ``conf`` the form would refuse, or None if a run was made."""
    try:
        run = trigger(api, token, dag_id, conf)
    except AirflowUiError as error:
        return str(error)
    api.call(token, "PATCH", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", {"state": "failed"})
    return None


def send_list_conf(segment: str | None) -> dict[str, Any]:
    """Every field of the send-list form, filled as a user would: a named segment to a new list."""
    return {
        "segment": segment,
        "filter": [],
        "list": f"Airflow UI check {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "mode": "create_new",
        "dry_run": False,
    }


def send_a_campaign(emulator_url: str, list_name: str, sent_at: datetime) -> tuple[str, int]:
    """Have the emulator "send" a campaign to the list and its recipients open and click: the events
    the activity DAG then brings back. Returns the campaign activity's id and the events made."""
    from include.cc_emulator.testing import EmulatorAdmin

    admin = EmulatorAdmin(emulator_url)
    (target,) = [item for item in admin.all_lists() if item["name"] == list_name]
    campaign = admin.send_campaign(f"{list_name} newsletter", list_ids=[target["list_id"]], at=sent_at)
    readers = campaign["sent_to"][:10]
    read_at = sent_at + timedelta(minutes=10)
    events = [{"type": "open", "contact_id": contact_id, "at": read_at} for contact_id in readers]
    events += [
        {"type": "click", "contact_id": contact_id, "at": read_at, "link_url": "https://example.org/news"}
        for contact_id in readers[:3]
    ]
    admin.track(campaign["campaign_activity_id"], events)
    admin.save_state()
    return campaign["campaign_activity_id"], len(campaign["sent_to"]) + len(events)


def stored_events(campaign_activity_id: str) -> int:
    """Tracking events of one campaign activity in the demo member database's activity table."""

    from cc_sync.member_db.bookkeeping import Bookkeeping
    from cc_sync.member_db.connection import create_member_engine
    from cc_sync.member_db.mapping import load_mapping
    from cc_sync.sync.resources import DEFAULT_MAPPING_PATH
    from include import local_setup

    engine = create_member_engine(f"sqlite:///{local_setup.DEMO_MEMBER_DB}")
    try:
        bookkeeping = Bookkeeping(engine, prefix=load_mapping(DEFAULT_MAPPING_PATH).bookkeeping.table_prefix)
        events = bookkeeping.get_activity()
    finally:
        engine.dispose()
    return int((events["campaign_activity_id"] == campaign_activity_id).sum())


def create_backfill(api: AirflowApi, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a backfill; returns it (after a busy retry met it as "already running", the DAG's
    newest backfill, if still running: a DAG has one running backfill at most)."""

    def running_backfill() -> dict[str, Any] | None:
        listed = api.call(token, "GET", f"/backfills?dag_id={body['dag_id']}&order_by=-id&limit=1")
        return next((backfill for backfill in listed["backfills"] if not backfill.get("completed_at")), None)

    return api.create(token, "/backfills", body, running_backfill)


def trigger(api: AirflowApi, token: str, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """Trigger a run of ``dag_id`` as the UI's trigger form does, under a run id of our own, so
    that a busy retry that meets the run an earlier attempt committed reads it back."""
    run_id = f"manual__{datetime.now(UTC).isoformat()}"
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
    run_path = f"/dags/{dag_id}/dagRuns"
    return api.create(token, run_path, body, lambda: api.call(token, "GET", f"{run_path}/{run_id}"))


def backfill_and_wait(
    api: AirflowApi, token: str, dag_id: str, start: datetime, end: datetime
) -> dict[str, str]:
    """Backfill ``dag_id`` over [start, end), re-running dates already done (the UI's "All Runs");
    returns the state of each of the backfill's runs by run id once it completed."""
    body = {
        "dag_id": dag_id,
        "from_date": start.isoformat(),
        "to_date": end.isoformat(),
        "reprocess_behavior": "completed",
        "max_active_runs": 1,
        "dag_run_conf": {},
    }
    backfill = create_backfill(api, token, body)
    created = 1
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while not backfill.get("completed_at") and time.monotonic() < deadline:
        time.sleep(BACKFILL_POLL_SECONDS)
        try:
            backfill = api.call(token, "GET", f"/backfills/{backfill['id']}")
        except AirflowUiError as error:
            # Airflow 3.3 deletes a backfill whose runs a locked database kept it from making
            # (models/backfill.py, _cleanup_partial_backfill: "so the user can retry") and answers
            # 503, yet the retry can still meet it as "already running" (CI, 5 December): gone, it is
            # created again.
            if error.status_code != 404 or created == DATABASE_BUSY_TRIES:
                raise
            created += 1
            backfill = create_backfill(api, token, body)
    runs = api.call(token, "GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
    # A re-run date keeps its run id (scheduled__..., manual__...) but becomes the backfill's.
    return {run["dag_run_id"]: run["state"] for run in runs if run["run_type"] == "backfill"}


def failed_task_log(api: AirflowApi, token: str, dag_id: str, run_id: str, max_lines: int = 12) -> str:
    """Why a run failed, as its task's log page in the UI says: for each failed task, the last
    warnings and errors of its last attempt (with the exception), so a failure in CI explains itself."""
    run_path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    lines: list[str] = []
    try:
        tasks = api.call(token, "GET", run_path)["task_instances"]
    except AirflowUiError as error:  # the report of the failure must not be lost to this
        return f"  (its task instances could not be read: {error})"
    for task in tasks:
        if task["state"] != RunState.FAILED:
            continue
        lines.append(f"  {task['task_id']} (attempt {task['try_number']}) failed:")
        try:
            answer = api.call(
                token, "GET", f"{run_path}/{task['task_id']}/logs/{task['try_number']}?full_content=true"
            )
        except AirflowUiError as error:
            lines.append(f"    (its log could not be read: {error})")
            continue
        notable = [
            _log_line(entry)
            for entry in answer.get("content") or []
            if isinstance(entry, dict)
            and entry.get("logger") != "py.warnings"  # Airflow's own deprecation notices
            and (entry.get("level") in ("warning", "error", "critical") or entry.get("error_detail"))
        ]
        lines += [f"    {line}" for line in notable[-max_lines:]] or ["    (no warning or error in its log)"]
    return "\n".join(lines)


def _log_line(entry: dict[str, Any]) -> str:
    """One structured task-log entry on a line: level, message, and the exception if any."""
    text = f"{entry.get('level', '')}: {entry.get('event', '')}"
    for detail in entry.get("error_detail") or []:
        if isinstance(detail, dict):
            text += f" | {detail.get('exc_type')}: {detail.get('exc_value')}"
    return text[:1000]


def test_cc_connection(api: AirflowApi, token: str, emulator_url: str) -> dict[str, Any]:
    """The connection form's Test button for ``constant_contact_default``, filled as
    airflow_settings.yaml fills it: Airflow's answer (``status``, ``message``)."""
    from include import local_setup

    fields = local_setup.connections_as_json(local_setup.render_settings(emulator_url))[CC_CONN_ID]
    body = {"connection_id": CC_CONN_ID, **fields, "extra": json.dumps(fields.get("extra") or {})}
    # The API server answers a Test only when it is done: the first one loads the providers' hooks,
    # then the Test exchanges a token and reads the account. On a busy machine that exceeds 30 s.
    return AirflowApi(api.base_url, timeout=TEST_CONNECTION_TIMEOUT_SECONDS).call(
        token, "POST", "/connections/test", body
    )


def check_segment() -> str | None:
    """The named segment the check sends: ``runners`` (a small one in the sample) or the first."""
    from cc_sync.member_db.mapping import load_mapping
    from cc_sync.sync.resources import DEFAULT_MAPPING_PATH

    segments = sorted(load_mapping(DEFAULT_MAPPING_PATH).segments)
    return "runners" if "runners" in segments else next(iter(segments), None)


def run_checks(api: AirflowApi, emulator_url: str, segment: str | None) -> tuple[list[CheckedRun], list[str]]:
    """The three DAGs through the REST API, in the order a user meets them: the sync, a send of a
    segment to a new list (from its form's fields; a value the form refuses is refused), then the
    activity of a campaign sent to that list. Returns the runs and what went wrong."""
    token = api.token(admin_password())
    problems: list[str] = []
    runs: list[CheckedRun] = []
    for dag_id in (SYNC_DAG_ID, SEND_LIST_DAG_ID, ACTIVITY_DAG_ID):
        unpause(api, token, dag_id)

    tested = test_cc_connection(api, token, emulator_url)
    print(f"Test of the connection {CC_CONN_ID}: {tested}")
    if not tested.get("status") or "Constant Contact account" not in str(tested.get("message")):
        problems.append(f"testing {CC_CONN_ID} from the connection form did not name the account: {tested}")

    runs.append(trigger_and_wait(api, token, SYNC_DAG_ID, {}, "finish"))

    conf = send_list_conf(segment)
    missing = set(conf) - form_params(api, token, SEND_LIST_DAG_ID)
    if missing:
        problems.append(f"{SEND_LIST_DAG_ID}'s trigger form lacks {sorted(missing)}")
    if refusal(api, token, SEND_LIST_DAG_ID, conf | {"mode": "overwrite_everything"}) is None:
        problems.append(f"{SEND_LIST_DAG_ID} accepted a mode its form does not offer")
    sent = trigger_and_wait(api, token, SEND_LIST_DAG_ID, conf, "finish")
    runs.append(sent)
    if sent.succeeded and not (sent.summary or {}).get("linked"):
        problems.append(f"{SEND_LIST_DAG_ID} linked nobody: {sent.summary}")

    if sent.succeeded:
        # Sent in the hour before last: the manual run (the last hour, looking back a day) and the
        # backfill of the last three hours both read it.
        this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        campaign_activity_id, made = send_a_campaign(
            emulator_url, conf["list"], this_hour - timedelta(minutes=90)
        )
        pulled = trigger_and_wait(api, token, ACTIVITY_DAG_ID, {"lookback_days": 1}, "pull_activity")
        runs.append(pulled)
        # Unpausing also schedules the latest hourly run, which may have stored them first.
        stored = stored_events(campaign_activity_id)
        if pulled.succeeded and stored != made:
            problems.append(f"{ACTIVITY_DAG_ID} stored {stored} events of the {made} made")
        states = backfill_and_wait(api, token, ACTIVITY_DAG_ID, this_hour - timedelta(hours=3), this_hour)
        print(f"Backfill of {ACTIVITY_DAG_ID} over the last 3 hours: {states}")
        again = stored_events(campaign_activity_id)
        if not states:
            problems.append(f"{ACTIVITY_DAG_ID}'s backfill made no run")
        for run_id, state in states.items():
            if state != RunState.SUCCESS:
                why = failed_task_log(api, token, ACTIVITY_DAG_ID, run_id)
                problems.append(f"{ACTIVITY_DAG_ID}'s backfill run {run_id} {state}:\n{why}")
        if again != stored:
            problems.append(f"{ACTIVITY_DAG_ID}'s backfill changed {stored} stored events to {again}")
    problems += [
        f"{run.dag_id} run {run.state}: {run.tasks}\n{failed_task_log(api, token, run.dag_id, run.run_id)}"
        for run in runs
        if not run.succeeded
    ]
    return runs, problems


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Interrupt, then terminate, then kill ``process``."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


def stop_standalone(process: subprocess.Popen[bytes], grace: float = STOP_TIMEOUT_SECONDS) -> None:
    """Ctrl-C for ``airflow standalone``, which stops its four components itself; then whatever of
    its process tree is left (a scheduler's LocalExecutor workers), terminated, then killed."""
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    alive = _still_running(tree, grace)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    stubborn = _still_running(alive, grace / 3)
    for proc in stubborn:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _still_running(stubborn, grace / 3)
    process.wait()


def _still_running(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still running after up to ``timeout`` seconds of waiting for them."""
    deadline = time.monotonic() + timeout
    while True:
        running = [proc for proc in procs if _is_running(proc)]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.5)


def _is_running(proc: psutil.Process) -> bool:
    # A zombie has exited; only its parent's wait() (or init) clears it.
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _login_help(url: str) -> str:
    return (
        f"Airflow is up: {url}\n"
        f"  log in as '{ADMIN_USER}'; the password is in {password_file()}\n"
        f"    (python -c \"import json; print(json.load(open('{password_file()}'))['{ADMIN_USER}'])\")\n"
        f"  DAGs: {SYNC_DAG_ID} (unpause it, then trigger it; dry run and guard rail are in its form),\n"
        f"        {SEND_LIST_DAG_ID} (its form: segment or filter, list, mode, dry run),\n"
        f"        {ACTIVITY_DAG_ID} (hourly; backfill it from the DAG's page or the CLI)\n"
        f"  Airflow's output: {STANDALONE_LOG}; the emulator's: {EMULATOR_LOG}\n"
        "Ctrl-C stops Airflow and the emulator."
    )


def add_check_options(parser: argparse.ArgumentParser, *, checks: str) -> None:
    """``--check`` (run ``checks`` through the REST API, then stop) and ``--keep-running``."""
    parser.add_argument("--check", action="store_true", help=f"run {checks} through the REST API, then stop")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="with --check: keep Airflow up after the checks, to look at their runs in the UI",
    )


def parse_check_options(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.keep_running and not args.check:
        parser.error("--keep-running goes with --check")
    return args


def checks_outcome(problems: list[str]) -> int:
    """Print the checks' problems; the exit code they make."""
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


def announce_kept_running() -> None:
    """Say that the checks are done and Airflow stays up: ``CHECKS_DONE`` first, the line a test
    (or a person) answers with a SIGTERM or Ctrl-C. Print it only once the checks' exit code is
    kept, or a signal right after it finds none and the stack exits 130 (stop 26's flake)."""
    print(f"{CHECKS_DONE}; Airflow keeps running: Ctrl-C stops it.", flush=True)


def main(argv: list[str] | None = None) -> int:
    from include import local_setup

    parser = argparse.ArgumentParser(prog="python -m include.airflow_ui", description=__doc__.split("\n")[0])
    add_check_options(parser, checks="the sync, a send list and the activity DAG")
    parser.add_argument("--verbose", action="store_true", help="show airflow standalone's output here")
    parser.add_argument("--emulator-port", type=int, default=local_setup.DEFAULT_EMULATOR_PORT)
    args = parse_check_options(parser, argv)
    # A service manager, `timeout` or CI stops with SIGTERM: stop Airflow's process tree and the
    # emulator as Ctrl-C does, instead of leaving a scheduler and its workers behind.
    signal.signal(signal.SIGTERM, _interrupt)
    airflow_env.apply()
    url = api_url()
    api = AirflowApi(url)
    if api.healthy():
        print(f"An Airflow already answers on {url}; stop it first.", file=sys.stderr)
        return 1

    checked: int | None = None  # the checks' exit code, once they ran
    with emulator_running(args.emulator_port) as emulator_url:
        print(f"Constant Contact emulator on {emulator_url} (4 requests/s, 10,000 a day); account in "
              f"{local_setup.EMULATOR_STATE_FILE}")  # fmt: skip
        print(f"Member database {local_setup.DEMO_MEMBER_DB}: {prepare_member_database(emulator_url)}")
        local_setup.migrate_airflow_db()
        local_setup.import_settings_into_airflow(emulator_url)
        print("Connections and pools of airflow_settings.yaml imported; starting airflow standalone ...")
        standalone = start_standalone(None if args.verbose else STANDALONE_LOG)
        try:
            wait_until_healthy(api, standalone)
            print(_login_help(url), flush=True)
            if args.check:
                runs, problems = run_checks(api, emulator_url, check_segment())
                for run in runs:
                    print(f"Check run of {run.dag_id} {json.dumps(run.conf)}: {run.state}")
                    for task_id, task_state in run.tasks.items():
                        tries = run.tries.get(task_id, 1)
                        # A retried task is no failure, but it should be rare: say so.
                        print(f"  {task_id}: {task_state}" + (f" (after {tries} tries)" if tries > 1 else ""))
                    print(f"  summary: {json.dumps(run.summary, default=str)}")
                checked = checks_outcome(problems)
                if not args.keep_running:
                    return checked
                announce_kept_running()
            standalone.wait()
        except KeyboardInterrupt:
            print("\nStopping Airflow and the emulator ...")
            if args.check:
                return 130 if checked is None else checked
        except AirflowUiError as error:
            print(f"{error}", file=sys.stderr)
            return 1
        finally:
            # A second Ctrl-C or SIGTERM must not cut the stopping short and leave processes behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stop_standalone(standalone)
    return checked or 0


if __name__ == "__main__":
    sys.exit(main())
