"""The ``/v3`` routes of events (state in ``events.py``), and the admin's routes to create events and
registrations.

Served as the spec documents them: ``GET /v3/events`` (``event_status``, ``search_text``,
``sort_by``, ``sort_order``, ``limit`` up to 100, ``next`` / ``prev`` cursors answered as
``next_cursor`` and ``_links``), ``GET /v3/events/{event_id}`` (its ``default_track`` names the track),
``GET .../tracks/{track_id}/registrations`` (status, payment status, search, sort, ``limit`` /
``page_size``), ``PUT .../registrations/payment_status`` and ``POST .../check_in/tickets`` (and its
undo). Query parameters are checked here, against the spec's enums, before any state is read.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import Response

from include.cc_emulator.app import _state, json_response, read_json
from include.cc_emulator.errors import bad_request, validation_error
from include.cc_emulator.events import (
    EVENT_SORT_KEYS,
    MAX_EVENT_PAGE,
    MAX_REGISTRATION_PAGE,
    REGISTRATION_SORT_KEYS,
    Page,
    PaymentStatus,
    RegistrationStatus,
)
from include.cc_emulator.validation import Arr, Obj, Param, Str, check_body

TRACK_PATH = "/v3/events/{event_id}/tracks/{track_id}"
_SORT_ORDER = ("ASC", "DESC")
_EVENT_QUERY = {
    "limit": Param(type="integer", minimum=1, maximum=MAX_EVENT_PAGE),
    "sort_by": Param(enum=tuple(EVENT_SORT_KEYS)),
    "sort_order": Param(enum=_SORT_ORDER),
}
_REGISTRATION_QUERY = {
    "limit": Param(type="integer", minimum=1, maximum=MAX_REGISTRATION_PAGE),
    "page_size": Param(type="integer", minimum=1, maximum=MAX_REGISTRATION_PAGE),
    # The spec's enum has one value "IN_PROGRESS, FAILED" (two statuses run together); both are taken.
    "registration_status": Param(enum=(*RegistrationStatus, "IN_PROGRESS, FAILED")),
    "payment_status": Param(enum=tuple(PaymentStatus)),
    "sort_by": Param(enum=REGISTRATION_SORT_KEYS),
    "sort_order": Param(enum=_SORT_ORDER),
}
_TICKET_KEYS = Obj({"order_ticket_keys": Arr(Str())}, required=("order_ticket_keys",))
_PAYMENT_UPDATE = Obj(
    {"registration_ids": Arr(Str()), "payment_status": Str()}, required=("payment_status", "registration_ids")
)


def _query(request: Request, rules: dict[str, Param]) -> dict[str, str]:
    grouped: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        grouped.setdefault(name, []).append(value)
    for name, values in grouped.items():
        if name in rules:
            rules[name].check(name, values)
        elif len(values) > 1:
            raise validation_error(f"{name} may be given once")
    return {name: values[0] for name, values in grouped.items()}


def _page(query: dict[str, str], scope: str, filter_names: tuple[str, ...], default_limit: int) -> Page:
    if query.get("next") and query.get("prev"):
        raise bad_request("next and prev are mutually exclusive")
    cursor = query.get("next") or query.get("prev")
    if cursor:
        return Page.decode(cursor, scope)
    limit = int(query.get("limit") or query.get("page_size") or default_limit)
    filters = tuple((name, query[name]) for name in filter_names if query.get(name))
    return Page(scope, 0, limit, filters)


def _paged(records: list[dict[str, Any]], total: int, page: Page, after: int | None, path: str) -> Response:
    body: dict[str, Any] = {"records": records, "total_records": total}
    links: dict[str, Any] = {"self": {"href": path}}
    if after is not None:
        cursor = Page(page.scope, after, page.limit, page.filters).encode()
        body["next_cursor"] = cursor
        links["next"] = {"href": f"{path}?{urlencode({'next': cursor})}"}
    if page.position > 0:
        cursor = Page(page.scope, max(page.position - page.limit, 0), page.limit, page.filters).encode()
        body["prev_cursor"] = cursor
        links["prev"] = {"href": f"{path}?{urlencode({'prev': cursor})}"}
    body["_links"] = links
    return json_response(body)


def add_event_routes(app: FastAPI) -> None:
    @app.get("/v3/events", tags=["events"])
    async def find_events(request: Request) -> Response:
        query = _query(request, _EVENT_QUERY)
        page = _page(
            query, "events", ("event_status", "search_text", "sort_by", "sort_order"), MAX_EVENT_PAGE
        )
        records, total, after = _state(request).events.list_events(page)
        return _paged(records, total, page, after, "/v3/events")

    @app.get("/v3/events/{event_id}", tags=["events"])
    async def get_event(request: Request, event_id: str) -> Response:
        include = request.query_params.get("include")
        if include is not None and include not in ("true", "false"):
            raise validation_error("include must be true or false")
        return json_response(_state(request).events.detail(event_id))

    @app.get(TRACK_PATH + "/registrations", tags=["events"])
    async def find_registrations(request: Request, event_id: str, track_id: str) -> Response:
        query = _query(request, _REGISTRATION_QUERY)
        if query.get("limit") and query.get("page_size") and query["limit"] != query["page_size"]:
            raise validation_error("limit and page_size must be the same value when both are given")
        filters = ("registration_status", "payment_status", "search_text", "sort_by", "sort_order")
        page = _page(query, f"{event_id}/{track_id}", filters, MAX_REGISTRATION_PAGE)
        if dict(page.filters).get("registration_status") == "IN_PROGRESS, FAILED":
            raise validation_error("registration_status takes one status: IN_PROGRESS or FAILED")
        records, total, after = _state(request).events.list_registrations(event_id, track_id, page)
        path = TRACK_PATH.format(event_id=event_id, track_id=track_id) + "/registrations"
        return _paged(records, total, page, after, path)

    @app.put(TRACK_PATH + "/registrations/payment_status", tags=["events"])
    async def update_payment_status(request: Request, event_id: str, track_id: str) -> Response:
        body = check_body(await read_json(request), _PAYMENT_UPDATE)
        status = body["payment_status"].upper()
        if status not in PaymentStatus.__members__:
            raise validation_error(f"payment_status must be one of {list(PaymentStatus)}")
        state = _state(request)
        failed = state.events.set_payment_status(event_id, track_id, body["registration_ids"], status)
        state.mark_dirty()
        if failed:
            return json_response({"failed_registration_ids": failed}, 207)
        return json_response({})

    @app.post("/v3/events/{event_id}/check_in/tickets", tags=["events"])
    async def check_in_tickets(request: Request, event_id: str) -> Response:
        body = check_body(await read_json(request), _TICKET_KEYS)
        state = _state(request)
        state.events.check_in(event_id, body["order_ticket_keys"])
        state.mark_dirty()
        return Response(status_code=204)

    @app.post("/v3/events/{event_id}/undo_check_in/tickets", tags=["events"])
    async def undo_check_in_tickets(request: Request, event_id: str) -> Response:
        body = check_body(await read_json(request), _TICKET_KEYS)
        state = _state(request)
        state.events.check_in(event_id, body["order_ticket_keys"], undo=True)
        state.mark_dirty()
        return Response(status_code=204)

    # ---- admin: make events happen --------------------------------------------------------------

    @app.post("/_admin/events", tags=["admin"])
    async def admin_create_event(request: Request) -> Response:
        """``{name, start_time, end_time, status, at}`` -> the event (with its ``track_id``)."""
        body = await read_json(request) or {}
        state = _state(request)
        event = state.events.create(
            name=body.get("name") or "Event",
            start_time=body["start_time"],
            end_time=body["end_time"],
            status=body.get("status") or "ACTIVE",
            at=body.get("at"),
        )
        state.mark_dirty()
        return json_response(event, 201)

    @app.post("/_admin/events/{event_id}/registrations", tags=["admin"])
    async def admin_register(request: Request, event_id: str) -> Response:
        """``{registrants: [{email, first_name, last_name, at, tickets, price, payment_method,
        payment_status, registration_status}]}`` -> the registrations made."""
        body = await read_json(request) or {}
        state = _state(request)
        made = state.events.register(event_id, body.get("registrants") or [])
        state.mark_dirty()
        return json_response({"registrations": made}, 201)

    @app.get("/_admin/events/{event_id}/registrations/{registration_id}/tickets", tags=["admin"])
    async def admin_ticket_keys(request: Request, event_id: str, registration_id: str) -> Response:
        return json_response(
            {"order_ticket_keys": _state(request).events.ticket_keys(event_id, registration_id)}
        )
