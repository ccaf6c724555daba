"""Every setting of the package in one place: its environment variables, connection ids, pool and
the default_args every DAG shares.

Environment variables are read when a function here is called, never when this module is
imported, so a test or a deployment that sets one before a run (or a DAG file parse) is always
seen. This module imports only the standard library: DAG files read it at parse time.

- ``CC_SYNC_MAPPING``: the member mapping YAML (include/config/member_mapping.yaml).
- ``CC_SYNC_SCHEDULE``: the two-way sync's cron, UTC (``0 3 * * *``).
- ``CC_ACTIVITY_SCHEDULE``: the campaign activity pull's cron, UTC (``0 * * * *``).
- ``CC_EVENTS_SCHEDULE``: the event registrations pull's cron, UTC (``0 5 * * *``).
- ``CC_SYNC_TASK_RETRIES``: retries of every task; a NotRetryableError never retries (2).
- ``CC_SYNC_TASK_TIMEOUT_MINUTES``: every task's ``execution_timeout`` (240).
- ``CC_SYNC_OWNER``: the DAGs' owner in the UI (``cc_sync``).
- ``CC_SYNC_ON_FAILURE_CALLBACK``: ``module:attribute`` called with a failed task's context (none).
- ``CC_SYNC_READ_OVERLAP_SECONDS``: how far an incremental read reaches back before its watermark,
  for clock skew and late commits (300).
- ``CC_SYNC_VAR_DIR``: where local runs keep their world, demo DB and emulator (./var).
- ``CC_SYNC_MEMBER_DB_URL``: ``make migrate``'s database when the mapping names none (the demo's).
- ``CC_SYNC_MIGRATIONS_DIR``: the bookkeeping tables' Alembic migrations (include/migrations).
- ``CC_SYNC_XCOM_RETENTION``: ``delete`` (default) a run's XCom objects, which hold email
  addresses, once it finished and its record is closed; ``keep`` them (:mod:`cc_sync.xcom_retention`).

``include/airflow_env.py`` (``CC_SYNC_VAR_DIR``, ``CC_SYNC_AIRFLOW_PORT``) and
``include/local_setup.py`` (``CC_SYNC_EMULATOR_PORT``) read their own: they set Airflow up, before
``plugins/`` is on ``sys.path``.
"""

from __future__ import annotations

import importlib
import logging
import os
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAPPING_PATH = PROJECT_ROOT / "include" / "config" / "member_mapping.yaml"

# Connection ids every DAG uses (the hooks' default_conn_name too).
CC_CONN_ID = "constant_contact_default"
MEMBER_DB_CONN_ID = "member_db_default"
# The pool every task calling Constant Contact runs in: the API's rate limit is per account.
CC_POOL = "constant_contact_api"

# The lease the sync, send-list and undo runs hold while they work (cc_sync.sync.lease): one writer
# of links and the contact directory at a time. Tasks renew it every LEASE_RENEW_EVERY, so ten missed
# renewals (a database blip, a paused worker) are tolerated; LEASE_TTL also bounds the gap between two
# tasks of one run (a task queued behind a full pool), which renew nothing.
LEASE_NAME = "constant_contact_sync"
LEASE_TTL = timedelta(minutes=10)
LEASE_RENEW_EVERY = timedelta(minutes=1)
# How often a waiting run's sensor asks, and for how long it waits at most. A dead holder frees the
# lease within LEASE_TTL, so the wait only runs out behind a holder that is alive but never finishes.
LEASE_POKE_INTERVAL = timedelta(seconds=30)
LEASE_WAIT_TIMEOUT = timedelta(hours=24)

DEFAULT_OWNER = "cc_sync"
DEFAULT_RETRIES = 2
DEFAULT_TASK_TIMEOUT = timedelta(hours=4)
RETRY_DELAY = timedelta(minutes=2)
# The guard rail: a sync or an undo changing more than this share of the linked people stops first.
DEFAULT_MAX_CHANGE_SHARE = 0.25
# A list this many pages long or longer is read by a contact export (settings.list_export_min_pages).
DEFAULT_LIST_EXPORT_MIN_PAGES = 4


def mapping_path() -> str:
    return os.environ.get("CC_SYNC_MAPPING") or str(DEFAULT_MAPPING_PATH)


def sync_schedule() -> str:
    return os.environ.get("CC_SYNC_SCHEDULE") or "0 3 * * *"


def activity_schedule() -> str:
    return os.environ.get("CC_ACTIVITY_SCHEDULE") or "0 * * * *"


def events_schedule() -> str:
    return os.environ.get("CC_EVENTS_SCHEDULE") or "0 5 * * *"


def task_retries() -> int:
    return int(os.environ.get("CC_SYNC_TASK_RETRIES") or DEFAULT_RETRIES)


def task_timeout() -> timedelta:
    minutes = os.environ.get("CC_SYNC_TASK_TIMEOUT_MINUTES")
    return timedelta(minutes=float(minutes)) if minutes else DEFAULT_TASK_TIMEOUT


def owner() -> str:
    return os.environ.get("CC_SYNC_OWNER") or DEFAULT_OWNER


def list_export_min_pages() -> int | None:
    """From how many pages (500 contacts each) a list is read by one contact export instead (an
    export costs its POST, its polls and one file read: at least 3 calls); None (``off``): always
    page by page."""
    value = (os.environ.get("CC_SYNC_LIST_EXPORT_MIN_PAGES") or "").strip().lower()
    if value == "off":
        return None
    return int(value) if value else DEFAULT_LIST_EXPORT_MIN_PAGES


def read_overlap() -> timedelta:
    return timedelta(seconds=float(os.environ.get("CC_SYNC_READ_OVERLAP_SECONDS") or 300))


def var_dir() -> Path:
    return Path(os.environ.get("CC_SYNC_VAR_DIR") or PROJECT_ROOT / "var")


def member_db_url() -> str:
    return os.environ.get("CC_SYNC_MEMBER_DB_URL") or f"sqlite:///{var_dir() / 'members.db'}"


def migrations_dir() -> Path:
    return Path(os.environ.get("CC_SYNC_MIGRATIONS_DIR") or PROJECT_ROOT / "include" / "migrations")


class XComRetention(StrEnum):
    """``CC_SYNC_XCOM_RETENTION``: what becomes of a finished run's XCom objects."""

    DELETE = "delete"
    KEEP = "keep"


def xcom_retention() -> XComRetention:
    """What becomes of a finished run's XCom objects (:mod:`cc_sync.xcom_retention`); an unknown
    value is refused with the ones allowed, rather than guessed."""
    value = (os.environ.get("CC_SYNC_XCOM_RETENTION") or XComRetention.DELETE.value).strip().lower()
    try:
        return XComRetention(value)
    except ValueError:
        allowed = ", ".join(r.value for r in XComRetention)
        raise ValueError(f"CC_SYNC_XCOM_RETENTION={value!r} is not one of: {allowed}") from None


def on_failure(context: Any) -> None:
    """Every task's ``on_failure_callback``: hands the context to ``$CC_SYNC_ON_FAILURE_CALLBACK``.

    The hook point for a deployment's alerting: point the variable at any callable taking the
    context, an Airflow notifier instance included (``my_alerts:notify`` with ``notify =
    SmtpNotifier(...)`` in ``my_alerts.py`` on the workers' path; README, "Alerts"). Resolved when
    a task fails, not at parse time, so DAG files stay light and a change needs no DAG edit. A
    broken callback is logged, never raised: the task's own failure is the one to report.
    """
    target = os.environ.get("CC_SYNC_ON_FAILURE_CALLBACK")
    if not target:
        return
    try:
        module_name, _, attribute = target.partition(":")
        callback = getattr(importlib.import_module(module_name), attribute)
        callback(context)
    except Exception:
        log.exception("The failure callback %s failed", target)


def default_args() -> dict[str, Any]:
    """The default_args of every DAG: owner, retries, a timeout on every task, the failure hook."""
    return {
        "owner": owner(),
        "retries": task_retries(),
        "retry_delay": RETRY_DELAY,
        "execution_timeout": task_timeout(),
        "on_failure_callback": on_failure,
    }
