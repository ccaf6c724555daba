"""The console's FastAPI app, mounted by Airflow's API server under /cc-sync.

Authorization is Airflow's own, as its core API does it: ``requires_access_dag`` on the sync DAG
(no user: 401; a user the auth manager refuses: 403). Reading needs read access to the sync DAG's
runs, a decision edit access (PUT), "apply now" the right to trigger (POST) a run. Every read goes
through :class:`~cc_sync.member_db.bookkeeping.Bookkeeping` and the hooks; no SQL here, and the
only column-like input a client can send is a field name, checked against the mapping.
"""

# No ``from __future__ import annotations``: FastAPI must see the real annotations of the route
# functions, whose dependencies (Resources, GetUserDep) are local to create_app.
import csv
import io
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import pandas as pd
from fastapi import Depends, FastAPI, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cc_sync import settings
from cc_sync.console import plots
from cc_sync.fields import CONTACT_ID, MEMBER_ID
from cc_sync.member_db.bookkeeping import Decision
from cc_sync.sync.resources import SyncResources
from cc_sync.undo import choices as undo_choices

log = logging.getLogger(__name__)

SYNC_DAG_ID = "constant_contact_sync"
UNDO_DAG_ID = "constant_contact_undo"
DAG_IDS = (
    SYNC_DAG_ID,
    "constant_contact_send_list",
    "constant_contact_activity",
    "constant_contact_events",
    UNDO_DAG_ID,
)
CC_CONN_ID = settings.CC_CONN_ID
MEMBER_DB_CONN_ID = settings.MEMBER_DB_CONN_ID
PLOT_DAYS = 30
PAGE_SIZE = 50
TEMPLATES = FilePath(__file__).with_name("templates")
# Review kinds whose pair can be linked; conflicts of a linked pair take one side's value.
LINKABLE = {"near_match", "shared_email", "ambiguous"}


def default_resources() -> SyncResources:
    return SyncResources(CC_CONN_ID, MEMBER_DB_CONN_ID, settings.mapping_path())


def _auth(method: str, dag_id: str = SYNC_DAG_ID) -> Callable[..., None]:
    """Airflow's dependency for ``method`` on a DAG's runs (the sync's unless named; imported late:
    API server only)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag(method, DagAccessEntity.RUN, param_dag_id=dag_id)  # type: ignore[arg-type]


def _same_origin(request: Request) -> None:
    """Refuse a cross-site form post (the session cookie would otherwise ride along)."""
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/").split("://", 1)[-1] != request.headers.get("host", ""):
        raise HTTPException(status_code=403, detail="cross-origin request refused")


def _fmt_time(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return str(value)


def _duration(run: dict[str, Any]) -> str:
    if not run.get("finished_at") or not run.get("started_at"):
        return ""
    seconds = (run["finished_at"] - run["started_at"]).total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def create_app(resources_factory: Callable[[], SyncResources] = default_resources) -> FastAPI:
    from airflow.api_fastapi.core_api.security import GetUserDep

    app = FastAPI(title="Constant Contact sync", docs_url=None, redoc_url=None, openapi_url=None)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["t"] = _fmt_time
    env.filters["q"] = lambda v: quote(str(v), safe="")
    state: dict[str, SyncResources] = {}

    def resources() -> SyncResources:
        if "r" not in state:
            state["r"] = resources_factory()
        return state["r"]

    Resources = Annotated[SyncResources, Depends(resources)]
    read = [Depends(_auth("GET"))]

    def render(request: Request, name: str, **context: Any) -> HTMLResponse:
        base = str(request.scope.get("root_path", "")).rstrip("/")
        return HTMLResponse(env.get_template(name).render(base=base, **context))

    @app.get("/", response_class=HTMLResponse, dependencies=read)
    def status_page(request: Request, res: Resources) -> HTMLResponse:
        books = res.bookkeeping
        dags = []
        for dag_id in DAG_IDS:
            runs = books.recent_runs(dag_id, limit=5)
            by_run = books.change_counts_by_run(r["run_id"] for r in runs)
            for run in runs:
                run["directions"] = by_run.get(run["run_id"], {})
                run["duration"] = _duration(run)
            dags.append({"dag_id": dag_id, "runs": runs, "next_run": _next_run(dag_id)})
        quota = _quota(res)
        since = datetime.now(UTC) - timedelta(days=PLOT_DAYS - 1)
        recent = books.runs_since(since.replace(hour=0, minute=0, second=0, microsecond=0))
        days = [(since + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(PLOT_DAYS)]
        per_day: dict[str, int] = defaultdict(int)
        for run in recent:
            per_day[run["started_at"].strftime("%Y-%m-%d")] += int(run["api_calls"] or 0)
        if quota is not None:
            per_day[quota.day] = max(per_day[quota.day], quota.used)  # all workers' calls today
        sync_runs = [r for r in recent if r["dag_id"] == SYNC_DAG_ID][-60:]
        change_counts = books.change_counts_by_run(r["run_id"] for r in sync_runs)
        calls_svg = plots.calls_per_day(
            days,
            [per_day[d] for d in days],
            quota.budget if quota else 0,
            quota.reserve if quota else 0,
        )
        changes_svg = plots.changes_per_run(
            [r["run_id"] for r in sync_runs], [change_counts.get(r["run_id"], {}) for r in sync_runs]
        )
        return render(
            request,
            "status.html",
            dags=dags,
            quota=quota,
            watermarks=books.get_watermarks(),
            review_counts=books.open_review_counts(),
            calls_svg=calls_svg,
            changes_svg=changes_svg,
        )

    @app.get("/reviews", response_class=HTMLResponse, dependencies=read)
    def review_queue(
        request: Request,
        res: Resources,
        kind: Annotated[str | None, Query(max_length=60)] = None,
        min_age_days: Annotated[int | None, Query(ge=0, le=3650)] = None,
        max_age_days: Annotated[int | None, Query(ge=0, le=3650)] = None,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ) -> HTMLResponse:
        books = res.bookkeeping
        now = datetime.now(UTC)
        items, total = books.page_open_reviews(
            kind=kind or None,
            created_before=now - timedelta(days=min_age_days) if min_age_days is not None else None,
            created_after=now - timedelta(days=max_age_days) if max_age_days is not None else None,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        pending = books.pending_decision_by_review(i["id"] for i in items)
        filters = {"kind": kind or "", "min_age_days": min_age_days, "max_age_days": max_age_days}
        query = {k: v for k, v in filters.items() if v not in (None, "")}
        return render(
            request,
            "reviews.html",
            items=items,
            total=total,
            page=page,
            pages=max(1, -(-total // PAGE_SIZE)),
            pending=pending,
            counts=books.open_review_counts(),
            filters=filters,
            query=urlencode(query),
        )

    @app.get("/reviews/{review_id}", response_class=HTMLResponse, dependencies=read)
    def review_item(request: Request, res: Resources, review_id: int) -> HTMLResponse:
        books = res.bookkeeping
        item = books.get_review(review_id)
        if item is None:
            raise HTTPException(status_code=404, detail="no such review item")
        member = _member_values(res, item[MEMBER_ID])
        contact = books.directory_entry(item[CONTACT_ID]) if item[CONTACT_ID] else None
        fields = list(res.mapping.policies())
        rows = []
        for name in fields:
            m = member.get(name) if member else None
            c = contact.get(name) if contact else None
            shown = contact is not None and name in contact
            rows.append({"field": name, "member": m, "contact": c if shown else None, "cc_known": shown})
        for row in rows:
            row["differs"] = row["cc_known"] and str(row["member"] or "") != str(row["contact"] or "")
        link = books.link_of(member_id=item[MEMBER_ID]) if item[MEMBER_ID] else None
        return render(
            request,
            "review.html",
            item=item,
            rows=rows,
            member=member,
            contact=contact,
            link=link,
            fields=fields,
            decisions=[d.value for d in Decision],
            linkable=item["kind"] in LINKABLE and item[CONTACT_ID] is not None,
            pending=books.pending_decision_by_review([review_id]).get(review_id),
            saved=request.query_params.get("saved"),
        )

    @app.post("/reviews/{review_id}/decision", dependencies=[Depends(_auth("PUT")), Depends(_same_origin)])
    def decide(
        request: Request,
        res: Resources,
        user: GetUserDep,
        review_id: int,
        decision: Annotated[Decision, Form()],
        why: Annotated[str, Form(max_length=1000)] = "",
        field: Annotated[str, Form(max_length=100)] = "",
        apply_now: Annotated[bool, Form()] = False,
    ) -> Response:
        books = res.bookkeeping
        item = books.get_review(review_id)
        if item is None or item["status"] != "open":
            raise HTTPException(status_code=404, detail="no such open review item")
        if decision in (Decision.TAKE_MEMBER, Decision.TAKE_CC) and field not in res.mapping.policies():
            raise HTTPException(status_code=422, detail="choose a field of the mapping")
        if decision == Decision.LINK and not item[CONTACT_ID]:
            raise HTTPException(status_code=422, detail="this item names no contact to link")
        if apply_now and not _may_trigger(user):
            raise HTTPException(status_code=403, detail="you may decide but not trigger the sync")
        who = user.get_name()
        decision_id = books.record_decision(
            review_id=review_id,
            decision=decision,
            member_id=item[MEMBER_ID],
            contact_id=item[CONTACT_ID],
            decided_by=who,
            why=why or None,
            field=field if decision in (Decision.TAKE_MEMBER, Decision.TAKE_CC) else None,
        )
        log.info(
            "Review item %s: decision %s (%s) recorded by %s", review_id, decision_id, decision.value, who
        )
        target = f"{request.scope.get('root_path', '')}/reviews/{review_id}?saved={decision_id}"
        if apply_now:
            _trigger_sync(request, user)
            target += "&triggered=1"
        return RedirectResponse(target, status_code=303)

    @app.post("/apply-now", dependencies=[Depends(_auth("POST")), Depends(_same_origin)])
    def apply_now(request: Request, user: GetUserDep) -> Response:
        run_id = _trigger_sync(request, user)
        return RedirectResponse(f"{request.scope.get('root_path', '')}/?triggered={quote(run_id)}", 303)

    @app.get("/runs/{run_id}/api-log.csv", dependencies=read)
    def api_log(res: Resources, run_id: Annotated[str, Path(max_length=250)]) -> Response:
        """The Constant Contact calls of one run as CSV: method, path, status, duration (the shared
        state keeps only those, so no token or email can be in it)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["at", "task_id", "method", "path", "status", "duration_ms"])
        for call in res.cc.state.call_log(run_id):
            at = datetime.fromtimestamp(call["at_us"] / 1_000_000, UTC).isoformat(timespec="milliseconds")
            writer.writerow(
                [at, call["task_id"], call["method"], call["path"], call["status"], call["duration_ms"]]
            )
        filename = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="api-log-{filename}.csv"'},
        )

    @app.get("/runs/{run_id}", response_class=HTMLResponse, dependencies=read)
    def run_page(
        request: Request, res: Resources, run_id: Annotated[str, Path(max_length=250)]
    ) -> HTMLResponse:
        """One run: what it wrote, an "Undo this run" button where there is something to undo, its
        undos, and the plan of its latest dry-run undo (restored where, left alone and why)."""
        books = res.bookkeeping
        run = books.get_run(run_id)
        if run is None:
            raise HTTPException(status_code=404, detail="no such run in the bookkeeping")
        directions = books.change_counts_by_run([run_id]).get(run_id, {})
        written = undo_choices.written_by_run({run_id: directions}, run_id)
        no_undo = undo_choices.why_not_undoable(run, written)
        undos = books.undos_of(run_id)
        plan = next((u for u in undos if u["kind"] == undo_choices.RunKind.DRY_RUN.value), None)
        return render(
            request,
            "run.html",
            run=run,
            duration=_duration(run),
            directions=directions,
            can_undo=no_undo is None,
            no_undo_reason=no_undo,
            undo_dag_id=UNDO_DAG_ID,
            undos=undos,
            plan=plan,
            plan_summary=books.planned_summary(plan["run_id"]) if plan else [],
            plan_rows=books.planned_rows(plan["run_id"], limit=PAGE_SIZE * 4) if plan else [],
        )

    @app.post(
        "/runs/{run_id}/undo", dependencies=[Depends(_auth("POST", UNDO_DAG_ID)), Depends(_same_origin)]
    )
    def undo_run(
        request: Request, res: Resources, user: GetUserDep, run_id: Annotated[str, Path(max_length=250)]
    ) -> Response:
        """ "Undo this run": plan the undo as a dry run (it writes nothing but its plan) and open that
        run in Airflow, whose "Trigger again with this config" is the undo's trigger form with this
        run filled in. Airflow 3.3's UI cannot open a trigger form pre-filled from a URL."""
        run = res.bookkeeping.get_run(run_id)
        if run is None:
            raise HTTPException(status_code=404, detail="no such run in the bookkeeping")
        written = undo_choices.written_by_run(res.bookkeeping.change_counts_by_run([run_id]), run_id)
        why_not = undo_choices.why_not_undoable(run, written)
        if why_not:
            raise HTTPException(status_code=422, detail=why_not)
        planned = _trigger(
            UNDO_DAG_ID,
            user,
            conf={"run_id": run_id, "dry_run": True},
            note=f"plan of an undo of {run_id}, from the sync console",
        )
        log.info("Dry-run undo %s of run %s triggered by %s", planned, run_id, user.get_name())
        return RedirectResponse(f"/dags/{quote(UNDO_DAG_ID, safe='')}/runs/{quote(planned, safe='')}", 303)

    @app.get("/person", response_class=HTMLResponse, dependencies=read)
    def person(
        request: Request, res: Resources, q: Annotated[str, Query(max_length=254)] = ""
    ) -> HTMLResponse:
        found = _find_person(res, q.strip()) if q.strip() else None
        return render(request, "person.html", q=q, person=found)

    def _trigger_sync(request: Request, user: Any) -> str:
        return _trigger(SYNC_DAG_ID, user, conf={}, note="apply now: review decisions from the sync console")

    return app


def _trigger(dag_id: str, user: Any, *, conf: dict[str, Any], note: str) -> str:
    """Trigger a run of ``dag_id`` as ``user`` (Airflow validates ``conf`` against the params)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    run = trigger_dag(
        dag_id,
        triggered_by=DagRunTriggeredByType.REST_API,
        triggering_user_name=user.get_name(),
        conf=conf,
        note=note,
    )
    return run.run_id if run is not None else ""


def _may_trigger(user: Any) -> bool:
    """The auth manager's answer for triggering a sync run (what "apply now" does)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return get_auth_manager().is_authorized_dag(
        method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=SYNC_DAG_ID), user=user
    )


def _next_run(dag_id: str) -> datetime | None:
    try:
        from airflow.models.dag import DagModel

        model = DagModel.get_dagmodel(dag_id)
    except Exception:  # the console still shows the rest when the metadata DB is unreachable
        log.debug("No DagModel for %s", dag_id, exc_info=True)
        return None
    return (
        getattr(model, "next_dagrun_run_after", None) or getattr(model, "next_dagrun", None)
        if model
        else None
    )


def _quota(res: SyncResources) -> Any:
    try:
        return res.cc.quota_usage()
    except Exception:  # no CC connection configured yet: the page says so instead of failing
        log.warning("Today's Constant Contact usage is unavailable", exc_info=True)
        return None


def _member_values(res: SyncResources, member_id: Any) -> dict[str, Any] | None:
    if not member_id:
        return None
    found = res.members.get_members([str(member_id)])
    if found.empty:
        return None
    row = found.iloc[0]
    return {k: (None if not isinstance(v, list | dict) and pd.isna(v) else v) for k, v in row.items()}


def _find_person(res: SyncResources, q: str) -> dict[str, Any] | None:
    """Look a person up by member id, contact id or email (exact, normalised)."""
    books = res.bookkeeping
    member_id = contact_id = None
    if "@" in q:
        found = res.members.lookup_by_email([q])
        if found is not None and len(found):
            member_id = str(found[MEMBER_ID].iloc[0])
        else:
            contacts = books.directory_contact_ids(q)
            contact_id = contacts[0] if contacts else None
    else:
        link = books.link_of(member_id=q) or books.link_of(contact_id=q)
        if link is not None:
            member_id, contact_id = link[MEMBER_ID], link[CONTACT_ID]
        elif books.directory_entry(q) is not None:
            contact_id = q
        else:
            member_id = q
    link = books.link_of(member_id=member_id) if member_id else books.link_of(contact_id=contact_id)
    if link is not None:
        member_id, contact_id = link[MEMBER_ID], link[CONTACT_ID]
    member = _member_values(res, member_id) if member_id else None
    contact = books.directory_entry(contact_id) if contact_id else None
    if member is None and contact is None:
        return None
    base = books.base_of(member_id) if member_id else None
    fields = list(res.mapping.policies())
    rows = [
        {
            "field": name,
            "member": member.get(name) if member else None,
            "contact": contact.get(name) if contact and name in contact else None,
            "base": base["field_values"].get(name) if base else None,
        }
        for name in fields
    ]
    return {
        "member_id": member_id,
        "contact_id": contact_id,
        "link": link,
        "member": member,
        "contact": contact,
        "base": base,
        "rows": rows,
        "changes": books.person_changes(member_id, contact_id),
        "consent": books.person_consent(member_id, contact_id),
        "activity": books.person_activity(member_id, contact_id),
        "reviews": books.person_open_reviews(member_id, contact_id),
    }
