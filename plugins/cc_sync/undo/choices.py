"""The undo DAG's ``run_id`` param: recent runs that can be undone, read when the DAG file is parsed.

The DAG processor parses the file every ``min_file_process_interval`` (30 s by default), so this
is one indexed read of the bookkeeping (the latest finished runs) and one GROUP BY of their
change-log rows, over a connection opened with short timeouts and closed again. Whatever goes wrong
(no connection yet, the database down, the tables not migrated), the param is a plain text field
that says so: a parse never fails because of it.

The param stays a *string* with ``examples`` (not an ``enum``): Airflow 3.3's trigger form shows
examples as a list to pick from while still taking any text, and a run id that is not in the list
(older, or finished since the last parse) is still accepted from the form, the REST API and the
CLI; ``open_undo`` checks it against the bookkeeping. ``values_display`` labels each run (kind,
time, status, values written); 3.3's form shows those labels only for an ``enum``, so the newest
few are also listed in the field's description.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from cc_sync.member_db import schema
from cc_sync.member_db.schema import ChangeDirection, RunKind, RunStatus

log = logging.getLogger(__name__)

# The run kinds that cannot be undone: dry runs wrote nothing; the activity DAG writes only opt-outs
# and the consent ledger, which an undo never reverses.
NOT_UNDOABLE_KINDS = (RunKind.DRY_RUN.value, "activity")
FINISHED = (RunStatus.SUCCESS.value, RunStatus.FAILED.value)
CHOICES = 50
# Finished runs read to find CHOICES that wrote something (most scheduled syncs write nothing).
SCANNED = 200
DESCRIBED = 10
CONNECT_TIMEOUT_SECONDS = 3
FREE_TEXT = (
    "The run id of a sync, send-list or undo run (its page in the sync console, or ccsync_runs.run_id). {why}"
)


@dataclass(frozen=True)
class UndoableRun:
    run_id: str
    kind: str
    status: str
    started_at: datetime
    written: int  # change-log rows: values written, links made, list memberships

    @property
    def label(self) -> str:
        when = self.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        status = "" if self.status == "success" else f", {self.status}"
        return f"{self.kind} {when}{status}: {self.written} change(s)"


def written_by_run(counts: Mapping[str, Mapping[str, int]], run_id: str) -> int:
    """Change-log rows an undo could reverse (a person's decisions are logged, but not writes)."""
    return sum(n for d, n in counts.get(run_id, {}).items() if d != ChangeDirection.DECISION.value)


def why_not_undoable(run: Mapping[str, Any], written: int) -> str | None:
    """None when ``run`` can be undone, else why not (for the console's run page)."""
    if run["kind"] in NOT_UNDOABLE_KINDS:
        return f"A {run['kind']} run has nothing an undo reverses."
    if run["status"] not in FINISHED:
        return f"The run is {run['status']}: only a finished run can be undone."
    if not written:
        return "The run wrote nothing: there is nothing to undo."
    return None


def undoable_runs(
    engine: sa.Engine, prefix: str = schema.DEFAULT_PREFIX, limit: int | None = None
) -> list[UndoableRun]:
    """The latest finished runs that wrote something (``CHOICES`` of them), newest first. SQLAlchemy
    alone (no pandas): the undo DAG's file calls this when it is parsed."""
    tables = schema.build_metadata(prefix).tables
    runs = schema.finished_runs(
        engine, tables[f"{prefix}runs"], exclude_kinds=NOT_UNDOABLE_KINDS, limit=SCANNED
    )
    counts = schema.change_counts_by_run(engine, tables[f"{prefix}changes"], (r["run_id"] for r in runs))
    out = []
    for run in runs:
        written = written_by_run(counts, run["run_id"])
        if why_not_undoable(run, written) is None:
            out.append(UndoableRun(run["run_id"], run["kind"], run["status"], run["started_at"], written))
    return out[: limit or CHOICES]


def _quick_engine(url: str) -> sa.Engine:
    """An engine that gives up in seconds and keeps no connection (a parse must not hang)."""
    from cc_sync.member_db.connection import create_member_engine

    backend = sa.make_url(url).get_backend_name()
    timeout = {"timeout": CONNECT_TIMEOUT_SECONDS} if backend == "sqlite" else {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS
    }  # fmt: skip
    return create_member_engine(url, poolclass=NullPool, connect_args=timeout)


def read_choices(member_db_conn_id: str, mapping_path: str) -> list[UndoableRun]:
    """The runs to offer, read through the member database connection (or the bookkeeping's own
    database when the mapping names one)."""
    from airflow.sdk import BaseHook

    from cc_sync.member_db.connection import MemberDbSettings
    from cc_sync.member_db.mapping import load_mapping

    mapping = load_mapping(mapping_path)
    settings = mapping.bookkeeping
    # The connection's URL without the member hook, which needs pyarrow (a parse must stay light).
    url = settings.database_url or MemberDbSettings.from_connection(
        BaseHook.get_connection(member_db_conn_id)
    ).url.render_as_string(hide_password=False)
    engine = _quick_engine(url)
    try:
        return undoable_runs(engine, settings.table_prefix)
    finally:
        engine.dispose()


def run_id_param_kwargs(runs: Iterable[UndoableRun] | None, why: str = "") -> dict[str, Any]:
    """The ``Param`` arguments of ``run_id``: a string, with the runs as examples when known."""
    runs = list(runs or [])
    kwargs: dict[str, Any] = {"type": "string", "minLength": 1, "title": "Run to undo"}
    if not runs:
        kwargs["description"] = FREE_TEXT.format(
            why=why or "No recent run that wrote something was found when this DAG was parsed."
        )
        return kwargs
    kwargs["examples"] = [r.run_id for r in runs]
    kwargs["values_display"] = {r.run_id: r.label for r in runs}
    newest = "\n".join(f"- `{r.run_id}`: {r.label}" for r in runs[:DESCRIBED])
    kwargs["description_md"] = (
        f"Pick one of the {len(runs)} latest runs that wrote something (newest first), or type any "
        f"run id of a sync, send-list or undo run. The newest:\n\n{newest}"
    )
    return kwargs


def run_id_param_schema(member_db_conn_id: str, mapping_path: str) -> dict[str, Any]:
    """``run_id_param_kwargs`` from the bookkeeping, or the free-text field when it cannot be read."""
    try:
        runs = read_choices(member_db_conn_id, mapping_path)
    except Exception as exc:  # no connection, database down, not migrated: never a parse error
        log.info("Undo DAG: no list of recent runs (%s); run_id is a free-text field", type(exc).__name__)
        return run_id_param_kwargs(
            None, f"(The list of recent runs was unavailable when this DAG was parsed: {type(exc).__name__}.)"
        )
    return run_id_param_kwargs(runs)
