"""The FastAPI app: the v3 API subset the sync uses, the OAuth token endpoint, and the admin paths.

Request flow for ``/v3/...``: the ``V3Gate`` (outermost, raw ASGI) counts and logs the call, checks
the bearer token (401), the per-second rate (429 ``throttled``) and the daily quota (429
``quota_exceeded``), then injects any switched-on fault, then hands over to the route. Routes answer
with plain ``Response`` objects built from the stored dicts, skipping model validation, so reading
100,000 contacts stays fast.

Paths, parameters, bodies and status codes follow the official spec
(/work/shared/constant-contact/swagger.yaml); tests/emulator/test_conformance.py checks them, and
the contract suite (tests/contract) fuzzes every served operation with the spec. Bodies and query
parameters are validated first (validation.py), so a malformed request is a 400, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from include.cc_emulator.activities import ActivityState
from include.cc_emulator.auth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from include.cc_emulator.clock import format_timestamp, now_timestamp, parse_timestamp
from include.cc_emulator.errors import (
    ApiError,
    OAuthError,
    bad_request,
    quota_exceeded,
    throttled,
    too_many_activities,
    unauthorized,
    validation_error,
)
from include.cc_emulator.limits import Fault
from include.cc_emulator.settings import EmulatorSettings
from include.cc_emulator.state import EmulatorState
from include.cc_emulator.store import SUBRESOURCES, ContactQuery, StatusFilter
from include.cc_emulator.validation import (
    CONTACT_DELETE,
    CONTACT_POST,
    CONTACT_PUT,
    CONTACTS_JSON_IMPORT,
    CUSTOM_FIELD_POST,
    CUSTOM_FIELD_PUT,
    LIST_DELETE,
    LIST_INPUT,
    LIST_MEMBERSHIPS,
    SIGN_UP_FORM,
    check_body,
    check_query,
)

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/default/v1/token"
AUTHORIZE_PATH = "/oauth2/default/v1/authorize"
MAX_IMPORT_CONTACTS = 40_000
MAX_IMPORT_BYTES = 4 * 1024 * 1024
MAX_ACTIVITY_CONTACT_IDS = 500
MAX_ACTIVITY_LIST_IDS = 50
MAX_LIST_FILTER = 25

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(error: ApiError) -> Response:
    return json_response(error.body(), error.status)


async def read_json(request: Request, *, max_bytes: int | None = None) -> Any:
    raw = await request.body()
    if max_bytes is not None and len(raw) >= max_bytes:
        raise bad_request(f"The request body must be smaller than {max_bytes // (1024 * 1024)} MB")
    content_type = request.headers.get("content-type", "")
    if raw and "json" not in content_type:
        raise ApiError(415, "contacts.api.unsupported.media.type", "Content-Type must be application/json")
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise bad_request("The request body is not valid JSON") from None


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


def _timestamp_param(value: str | None, name: str) -> str | None:
    return format_timestamp(parse_timestamp(value, name=name)) if value is not None else None


async def _valid_query(request: Request) -> None:
    """Every route's query parameters against the rules of its operation (validation.QUERY_RULES).

    An app-wide dependency, so it runs before the route reads a parameter itself."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if path is not None and path.startswith("/v3/"):
        check_query(f"{request.method} {path}", request.query_params.multi_items())


@dataclass(frozen=True)
class ContactCursor:
    """Where a ``GET /contacts`` walk stands: its filters, the next position and what each page shows.

    Sent base64-encoded in ``_links.next.href`` (the real cursor is opaque too). The count asked for
    with ``include_count`` is taken once, on the first page, and carried along, so a walk over
    100,000 contacts does not recount them for every page.
    """

    query: ContactQuery
    position: int
    limit: int
    include: tuple[str, ...]
    count: int | None

    def encode(self) -> str:
        payload = {
            "q": self.query.__dict__,
            "p": self.position,
            "l": self.limit,
            "i": self.include,
            "n": self.count,
        }
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> ContactCursor:
        try:
            payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            query = ContactQuery(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in payload["q"].items()}
            )
            count = payload["n"]
            return cls(
                query=query,
                position=int(payload["p"]),
                limit=int(payload["l"]),
                include=tuple(payload["i"]),
                count=None if count is None else int(count),
            )
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise bad_request("The cursor is not valid") from None


def render_contact(contact: dict[str, Any], include: frozenset[str]) -> dict[str, Any]:
    """A stored contact as the API shows it: subresources only when asked for with ``include``."""
    if include >= SUBRESOURCES:
        return contact
    return {k: v for k, v in contact.items() if k not in SUBRESOURCES or k in include}


def _include_param(value: str | None) -> list[str]:
    include = _csv(value)
    unknown = set(include) - SUBRESOURCES
    if unknown:
        raise validation_error(f"include accepts {sorted(SUBRESOURCES)}, not {sorted(unknown)}")
    return include


_SECRET_KEYS = re.compile(r"token|secret|password|authorization", re.IGNORECASE)
_JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*")
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """``value`` with every token-like property and every JWT replaced: the log must never hold one."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEYS.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _JWT.sub(REDACTED, value)
    return value


def _declares_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers", []))
    return b"transfer-encoding" in headers or headers.get(b"content-length", b"0") not in (b"0", b"")


def logged_body(raw: bytes, limit: int, *, unread: bool = False) -> Any:
    """What the request log keeps of a body: the JSON value (redacted), None for none, or a note of
    its size when it is not JSON or bigger than ``limit`` bytes (a 4 MB import stays out of memory).

    ``unread``: the request had a body that nobody read, because the gate answered first (401, 429,
    an injected fault); the log says so rather than pretend the client sent none."""
    if unread:
        return {"_not_recorded": "answered before the body was read"}
    if not raw:
        return None
    if len(raw) > limit:
        return {"_not_recorded": f"{len(raw)} bytes, over the request log's {limit}"}
    try:
        return redact(json.loads(raw))
    except ValueError:
        return {"_not_recorded": f"{len(raw)} bytes, not JSON"}


async def _discard(message: Message) -> None:
    """An ASGI ``send`` that throws the answer away (the request still did its work)."""


class V3Gate:
    """Raw ASGI wrapper around the whole app: auth, limits, faults, counters and the request log."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    @property
    def state(self) -> EmulatorState:
        return self.fastapi_app.state.emulator

    def endpoint_of(self, scope: Scope) -> str:
        for route in self.fastapi_app.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return f"{scope['method']} {route.path}"  # type: ignore[attr-defined]
        return f"{scope['method']} {scope['path']}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == TOKEN_PATH and self.state.faults.token_answer_lost():
            self.state.count_event("fault:token_lost_answer")
            await self.app(scope, receive, _discard)
            await self._drop_connection(send)
            return
        if scope["type"] != "http" or not scope["path"].startswith("/v3/"):
            await self.app(scope, receive, send)
            return
        state = self.state
        received_at = now_timestamp()
        status_seen = {"status": 0}
        body_chunks: list[bytes] = []

        async def recording_receive() -> Message:
            # Keeps the body for the request log, so tests can check what a client really sent.
            message = await receive()
            if message["type"] == "http.request":
                body_chunks.append(message.get("body", b""))
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen["status"] = message["status"]
            await send(message)

        try:
            await self._handle(scope, recording_receive, send, tracking_send)
        finally:
            if scope["method"] != "GET" and 200 <= status_seen["status"] < 400:
                state.mark_dirty()
            state.record(
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                endpoint=self.endpoint_of(scope),
                status=status_seen["status"],
                time=received_at,
                body=logged_body(
                    b"".join(body_chunks),
                    state.settings.request_log_body_bytes,
                    unread=not body_chunks and _declares_body(scope),
                ),
            )

    async def _handle(self, scope: Scope, receive: Receive, raw_send: Send, send: Send) -> None:
        state = self.state
        settings = state.settings
        headers = dict(scope.get("headers", []))
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not state.tokens.is_valid(token.strip()):
            state.count_event("unauthorized")
            await error_response(unauthorized())(scope, receive, send)
            return
        if not state.rate_limiter.allow(settings.rate_limit_per_second):
            state.count_event("throttled")
            await error_response(throttled())(scope, receive, send)
            return
        if not state.quota.allow(settings.daily_quota):
            state.count_event("quota_exceeded")
            await error_response(quota_exceeded())(scope, receive, send)
            return
        fault, delay = state.faults.draw()
        if delay:
            state.count_event("fault:slow")
            await asyncio.sleep(delay)
        if fault is not None:
            state.count_event(f"fault:{fault.value}")
        if fault is Fault.THROTTLED:
            await error_response(throttled())(scope, receive, send)
        elif fault is Fault.SERVER_ERROR:
            error = ApiError(500, "server.error", "There was a problem with our internal service.")
            await error_response(error)(scope, receive, send)
        elif fault is Fault.UNAVAILABLE:
            error = ApiError(503, "service.unavailable", "Our internal service is temporarily unavailable.")
            await error_response(error)(scope, receive, send)
        elif fault is Fault.DROP:
            await self._drop_connection(raw_send)
        elif fault is Fault.LOST_ANSWER:
            await self.app(scope, receive, _discard)
            await self._drop_connection(raw_send)
        elif fault is Fault.TRUNCATE:
            await self._truncated(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    @staticmethod
    async def _drop_connection(send: Send) -> None:
        """Close the socket without any answer, as a load balancer dropping the connection would."""
        cycle = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is not None:
            transport.abort()
            await asyncio.sleep(0.01)  # lets uvicorn see the disconnect and not try to answer
            return
        # Not under uvicorn (no transport to close): promise a body and stop half-way instead.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        raise ConnectionAbortedError("connection dropped by fault injection")

    async def _truncated(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A 200 whose JSON body is cut in half (with a matching Content-Length, so it arrives 'whole')."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        cut = body[: len(body) // 2]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(cut)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": cut})


class EmulatorApp(FastAPI):
    """FastAPI with the ``V3Gate`` outermost, so it sees uvicorn's own ``send`` (to drop connections)."""

    def build_middleware_stack(self) -> ASGIApp:  # type: ignore[override]
        return V3Gate(super().build_middleware_stack(), self)


def create_app(settings: EmulatorSettings | None = None) -> FastAPI:
    """The emulator as an ASGI app; serve it with uvicorn (``python -m include.cc_emulator``)."""
    settings = settings or EmulatorSettings()
    state = EmulatorState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        saver = asyncio.get_running_loop().create_task(_save_periodically(app))
        try:
            yield
        finally:
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
            emulator: EmulatorState = app.state.emulator
            await emulator.activities.stop()
            if emulator.settings.state_file is not None:
                emulator.save()

    app = EmulatorApp(
        title="Constant Contact v3 emulator",
        description="A stateful emulator of the Constant Contact v3 API subset the member sync uses.",
        version="1.0",
        lifespan=lifespan,
        docs_url="/_admin/docs",
        openapi_url="/_admin/openapi.json",
        redoc_url=None,
        dependencies=[Depends(_valid_query)],
    )
    app.state.emulator = state

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> Response:
        return error_response(error)

    @app.exception_handler(OAuthError)
    async def _oauth_error(request: Request, error: OAuthError) -> Response:
        return json_response(error.body(), error.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        # Routing's own 404 and 405 under /v3 answer in CC's error array, not FastAPI's {"detail"}.
        if not request.url.path.startswith("/v3/"):
            return await http_exception_handler(request, error)
        if error.status_code == 404:
            api_error = ApiError(404, "not.found", f"{request.url.path} is not a resource of the v3 API")
        elif error.status_code == 405:
            api_error = ApiError(405, "method.not.allowed", f"{request.method} is not allowed here")
        else:
            api_error = ApiError(error.status_code, "http.error", str(error.detail))
        return json_response(api_error.body(), api_error.status, headers=error.headers)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, error: Exception) -> Response:
        # A bug still shows as a 500 (the contract suite fails on it), but in CC's shape and JSON.
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(ApiError(500, "server.error", "There was a problem with our internal service."))

    @app.exception_handler(RequestValidationError)
    async def _bad_parameters(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in error.errors()
        )
        return error_response(validation_error(problems or "invalid request"))

    _add_oauth_routes(app)
    _add_contact_routes(app)
    _add_activity_routes(app)
    _add_list_routes(app)
    _add_custom_field_routes(app)
    _add_account_routes(app)

    from include.cc_emulator.admin import router as admin_router
    from include.cc_emulator.campaign_routes import add_campaign_routes
    from include.cc_emulator.event_routes import add_event_routes
    from include.cc_emulator.exports import add_export_routes
    from include.cc_emulator.tag_routes import add_tag_routes

    add_campaign_routes(app)
    add_event_routes(app)
    add_export_routes(app)
    add_tag_routes(app)

    app.include_router(admin_router)
    return app


async def _save_periodically(app: FastAPI) -> None:
    pause = 1.0
    while True:
        await asyncio.sleep(pause)
        emulator: EmulatorState = app.state.emulator
        if emulator.dirty and emulator.settings.state_file is not None:
            started = time.monotonic()
            try:
                emulator.save()
            except OSError:
                log.exception("could not save the emulator state")
            # Saving blocks the event loop: with a big account, save less often so serving stays fast.
            pause = max(1.0, 10 * (time.monotonic() - started))


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


# --------------------------------------------------------------------------------------------------
# OAuth


def _add_oauth_routes(app: FastAPI) -> None:
    @app.get(AUTHORIZE_PATH, tags=["oauth"])
    async def authorize(
        request: Request,
        client_id: str,
        redirect_uri: str,
        response_type: str = "code",
        scope: str = "",
        state: str | None = None,
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
    ) -> Response:
        """The browser step: consents at once, redirects to ``redirect_uri`` with ``code`` and ``state``."""
        if client_id != DEMO_CLIENT_ID:
            raise OAuthError(400, "invalid_client", "Unknown client_id.")
        if response_type != "code":
            raise OAuthError(400, "unsupported_response_type", "Only response_type=code is supported.")
        if code_challenge is not None and code_challenge_method != "S256":
            raise OAuthError(400, "invalid_request", "code_challenge_method must be S256.")
        code = _state(request).tokens.authorize(client_id, redirect_uri, code_challenge)
        query = urlencode({"code": code, **({"state": state} if state is not None else {})})
        separator = "&" if "?" in redirect_uri else "?"
        return Response(status_code=302, headers={"Location": f"{redirect_uri}{separator}{query}"})

    @app.post(TOKEN_PATH, tags=["oauth"])
    async def token(request: Request) -> Response:
        """``refresh_token`` and ``authorization_code`` (PKCE) grants; client auth by HTTP Basic."""
        state = _state(request)
        state.count_event("token_requests")
        form = await request.form()
        client_id, client_secret = _client_credentials(request, form)
        grant_type = form.get("grant_type")
        settings = state.settings
        if grant_type == "authorization_code":
            # A public client (PKCE, no secret) may leave the secret out; a wrong one is still refused.
            if client_id != DEMO_CLIENT_ID or client_secret not in (None, DEMO_CLIENT_SECRET):
                raise OAuthError(401, "invalid_client", "Client authentication failed.")
            answer = state.tokens.exchange_code(
                str(form.get("code") or ""),
                client_id=client_id,
                redirect_uri=_form_text(form, "redirect_uri"),
                code_verifier=_form_text(form, "code_verifier"),
                client_authenticated=client_secret == DEMO_CLIENT_SECRET,
                ttl_seconds=settings.access_token_ttl_seconds,
            )
        else:
            if client_id != DEMO_CLIENT_ID or client_secret != DEMO_CLIENT_SECRET:
                raise OAuthError(401, "invalid_client", "Client authentication failed.")
            if grant_type != "refresh_token":
                raise OAuthError(
                    400, "unsupported_grant_type", "Supported grants: refresh_token, authorization_code."
                )
            refresh_token = _form_text(form, "refresh_token")
            if not refresh_token:
                raise OAuthError(400, "invalid_request", "refresh_token is required.")
            answer = state.tokens.refresh(refresh_token, settings.access_token_ttl_seconds)
            state.count_event("token_refreshes")
        state.mark_dirty()
        return json_response(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _form_text(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value else None


def _client_credentials(request: Request, form: Any) -> tuple[str | None, str | None]:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and encoded:
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
            return client_id, secret or None
        except (ValueError, binascii.Error):
            return None, None
    return _form_text(form, "client_id"), _form_text(form, "client_secret")


# --------------------------------------------------------------------------------------------------
# Contacts


def _add_contact_routes(app: FastAPI) -> None:
    @app.get("/v3/contacts", tags=["contacts"])
    async def get_contacts(
        request: Request,
        status: str | None = None,
        email: str | None = None,
        lists: str | None = None,
        updated_after: str | None = None,
        updated_before: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        optout_after: str | None = None,
        optout_before: str | None = None,
        include: str | None = None,
        include_count: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> Response:
        store = _state(request).store
        if cursor:
            walk = ContactCursor.decode(cursor)
        else:
            statuses = _csv(status)
            unknown = set(statuses) - {s.value for s in StatusFilter}
            if unknown:
                raise validation_error(
                    f"status accepts {[s.value for s in StatusFilter]}, not {sorted(unknown)}"
                )
            list_ids = _csv(lists)
            if len(list_ids) > MAX_LIST_FILTER:
                raise validation_error(f"lists accepts at most {MAX_LIST_FILTER} list ids")
            query = ContactQuery(
                statuses=tuple(statuses),
                email=email.strip() if email else None,
                lists=tuple(list_ids),
                updated_after=_timestamp_param(updated_after, "updated_after"),
                updated_before=_timestamp_param(updated_before, "updated_before"),
                created_after=_timestamp_param(created_after, "created_after"),
                created_before=_timestamp_param(created_before, "created_before"),
                optout_after=_timestamp_param(optout_after, "optout_after"),
                optout_before=_timestamp_param(optout_before, "optout_before"),
            )
            count = store.count_contacts(query) if include_count else None
            walk = ContactCursor(query, 0, limit, tuple(_include_param(include)), count)
        page, next_position = store.find_contacts(walk.query, walk.position, walk.limit)
        wanted = frozenset(walk.include)
        body: dict[str, Any] = {"contacts": [render_contact(c, wanted) for c in page]}
        if walk.count is not None:
            body["contacts_count"] = walk.count
        body["_links"] = {}
        if next_position is not None:
            next_cursor = replace(walk, position=next_position).encode()
            body["_links"] = {"next": {"href": f"/v3/contacts?cursor={next_cursor}"}}
        return json_response(body)

    @app.post("/v3/contacts", tags=["contacts"])
    async def create_contact(request: Request) -> Response:
        body = check_body(await read_json(request), CONTACT_POST)
        contact = _state(request).store.create_contact(body)
        return json_response(contact, 201)

    @app.get("/v3/contacts/{contact_id}", tags=["contacts"])
    async def get_contact(request: Request, contact_id: str, include: str | None = None) -> Response:
        contact = _state(request).store.get_contact(contact_id)
        return json_response(render_contact(contact, frozenset(_include_param(include))))

    @app.put("/v3/contacts/{contact_id}", tags=["contacts"])
    async def put_contact(request: Request, contact_id: str) -> Response:
        body = check_body(await read_json(request), CONTACT_PUT)
        contact = _state(request).store.put_contact(contact_id, body)
        return json_response(contact)

    @app.delete("/v3/contacts/{contact_id}", tags=["contacts"])
    async def delete_contact(request: Request, contact_id: str) -> Response:
        _state(request).store.delete_contact(contact_id)
        return Response(status_code=204)

    @app.post("/v3/contacts/sign_up_form", tags=["contacts"])
    async def sign_up_form(request: Request) -> Response:
        state = _state(request)
        state.count_event("sign_up_form_calls")
        body = check_body(await read_json(request), SIGN_UP_FORM)
        contact_id, created = state.store.sign_up_form(body)
        return json_response(
            {"contact_id": contact_id, "action": "created" if created else "updated"}, 201 if created else 200
        )


# --------------------------------------------------------------------------------------------------
# Bulk activities


def _check_queue(state: EmulatorState) -> None:
    limit = state.settings.max_queued_activities
    if state.activities.queued_count() >= limit:
        raise too_many_activities(limit)


def _id_list(body: dict[str, Any], name: str, *, maximum: int, required: bool = False) -> list[str]:
    value = body.get(name)
    if value is None:
        if required:
            raise validation_error(f"{name} is required")
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise validation_error(f"{name} must be an array of ids")
    if len(value) > maximum:
        raise validation_error(f"{name} accepts at most {maximum} ids, got {len(value)}")
    if required and not value:
        raise validation_error(f"{name} must not be empty")
    return list(dict.fromkeys(value))


def _existing_lists(state: EmulatorState, list_ids: list[str]) -> list[str]:
    for list_id in list_ids:
        found = state.store.lists.get(list_id)
        if found is None or found.get("deleted_at"):
            raise validation_error(f"list {list_id} does not exist")
    return list_ids


def _membership_source(state: EmulatorState, body: dict[str, Any]) -> Callable[[], list[str]]:
    """The contacts a membership activity works on, resolved when the activity runs."""
    source = body.get("source")
    if not isinstance(source, dict):
        raise validation_error("source is required")
    given = [k for k in ("contact_ids", "list_ids", "all_active_contacts") if source.get(k)]
    unsupported = [k for k in ("tag_ids", "segment_id", "engagement_level") if source.get(k)]
    if unsupported:
        raise validation_error(f"source {unsupported[0]} is not supported by the emulator")
    if len(given) != 1:
        raise validation_error("source needs exactly one of contact_ids, list_ids or all_active_contacts")
    exclude = set(_id_list(body.get("exclude") or {}, "contact_ids", maximum=10_000))
    if given[0] == "contact_ids":
        ids = _id_list(source, "contact_ids", maximum=MAX_ACTIVITY_CONTACT_IDS)
        return lambda: [cid for cid in ids if cid not in exclude]
    if given[0] == "list_ids":
        source_lists = _existing_lists(state, _id_list(source, "list_ids", maximum=MAX_ACTIVITY_LIST_IDS))
        return lambda: [cid for cid in state.store.members_of(source_lists) if cid not in exclude]
    return lambda: [cid for cid in state.store.active_contact_ids() if cid not in exclude]


def _add_activity_routes(app: FastAPI) -> None:
    @app.post("/v3/activities/contacts_json_import", tags=["activities"])
    async def contacts_json_import(request: Request) -> Response:
        state = _state(request)
        body = check_body(await read_json(request, max_bytes=MAX_IMPORT_BYTES), CONTACTS_JSON_IMPORT)
        rows = body.get("import_data")
        if not isinstance(rows, list) or not rows:
            raise validation_error("import_data is required and must be a non-empty array")
        if len(rows) > MAX_IMPORT_CONTACTS:
            raise validation_error(
                f"import_data accepts at most {MAX_IMPORT_CONTACTS:,} contacts, got {len(rows):,}"
            )
        list_ids = _existing_lists(
            state, _id_list(body, "list_ids", maximum=MAX_ACTIVITY_LIST_IDS, required=True)
        )
        _check_queue(state)
        store = state.store

        def work() -> tuple[dict[str, Any], list[str]]:
            result = store.import_contacts(
                rows,
                list_ids,
                refused_emails=state.settings.refused_import_emails,
                name_rows=state.settings.import_errors_name_rows,
            )
            return {
                "items_total_count": result.items_total_count,
                "person_count": result.person_count,
                "error_count": result.error_count,
                "correctable_count": result.correctable_count,
                "cannot_add_to_list_count": result.cannot_add_to_list_count,
            }, result.errors

        status = {"items_total_count": len(rows), "person_count": 0, "error_count": 0}
        activity = state.activities.submit(status, work, source_file_name="contacts_json_import")
        return json_response(activity, 201)

    async def _membership_activity(request: Request, *, adding: bool) -> Response:
        state = _state(request)
        body = check_body(await read_json(request), LIST_MEMBERSHIPS)
        list_ids = _existing_lists(
            state, _id_list(body, "list_ids", maximum=MAX_ACTIVITY_LIST_IDS, required=True)
        )
        contacts_of = _membership_source(state, body)
        _check_queue(state)
        store = state.store

        def work() -> tuple[dict[str, Any], list[str]]:
            contact_ids = contacts_of()
            if adding:
                store.add_list_memberships(contact_ids, list_ids)
            else:
                store.remove_list_memberships(contact_ids, list_ids)
            total = len(contact_ids)
            return {
                "items_total_count": total,
                "items_completed_count": total,
                "list_count": len(list_ids),
            }, []

        activity = state.activities.submit({"list_count": len(list_ids)}, work)
        return json_response(activity, 201)

    @app.post("/v3/activities/add_list_memberships", tags=["activities"])
    async def add_list_memberships(request: Request) -> Response:
        return await _membership_activity(request, adding=True)

    @app.post("/v3/activities/remove_list_memberships", tags=["activities"])
    async def remove_list_memberships(request: Request) -> Response:
        return await _membership_activity(request, adding=False)

    @app.post("/v3/activities/contact_delete", tags=["activities"])
    async def contact_delete(request: Request) -> Response:
        state = _state(request)
        body = check_body(await read_json(request), CONTACT_DELETE)
        contact_ids = _id_list(body, "contact_ids", maximum=MAX_ACTIVITY_CONTACT_IDS)
        list_ids = _existing_lists(state, _id_list(body, "list_ids", maximum=MAX_ACTIVITY_LIST_IDS))
        if bool(contact_ids) == bool(list_ids):
            raise validation_error("give either contact_ids or list_ids")
        _check_queue(state)
        store = state.store

        def work() -> tuple[dict[str, Any], list[str]]:
            targets = contact_ids or store.members_of(list_ids)
            errors = []
            for cid in targets:
                if cid in store.contacts:
                    store.delete_contact(cid)
                else:
                    errors.append(f"contact {cid} was not found")
            done = len(targets) - len(errors)
            return {"items_total_count": len(targets), "items_completed_count": done}, errors

        activity = state.activities.submit({}, work)
        return json_response(activity, 201)

    @app.post("/v3/activities/list_delete", tags=["activities"])
    async def list_delete(request: Request) -> Response:
        state = _state(request)
        body = check_body(await read_json(request), LIST_DELETE)
        list_ids = _existing_lists(state, _id_list(body, "list_ids", maximum=100, required=True))
        _check_queue(state)
        store = state.store

        def work() -> tuple[dict[str, Any], list[str]]:
            for list_id in list_ids:
                store.delete_list(list_id)
            return {"items_total_count": len(list_ids), "items_completed_count": len(list_ids)}, []

        activity = state.activities.submit({}, work)
        return json_response(activity, 201)

    @app.get("/v3/activities/{activity_id}", tags=["activities"])
    async def get_activity(request: Request, activity_id: str) -> Response:
        activity = _state(request).activities.view(activity_id)
        if activity is None:
            raise ApiError(404, "activities.api.not.found", f"Activity {activity_id} was not found")
        return json_response(activity)

    @app.get("/v3/activities", tags=["activities"])
    async def get_activities(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        state: str | None = None,
    ) -> Response:
        if state is not None and state not in {s.value for s in ActivityState}:
            raise validation_error(f"state must be one of {[s.value for s in ActivityState]}")
        queue = _state(request).activities
        found = [
            queue.view(a["activity_id"])
            for a in reversed(list(queue.activities.values()))
            if state is None or a["state"] == state
        ]
        return json_response({"activities": found[:limit], "_links": {}})


# --------------------------------------------------------------------------------------------------
# Contact lists


def _render_list(
    state: EmulatorState, contact_list: dict[str, Any], membership: str | None
) -> dict[str, Any]:
    shown = {k: v for k, v in contact_list.items() if v is not None}
    if membership:
        shown["membership_count"] = state.store.membership_count(contact_list["list_id"], membership)
    return shown


def _add_list_routes(app: FastAPI) -> None:
    @app.get("/v3/contact_lists", tags=["lists"])
    async def get_lists(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        include_count: bool = False,
        include_membership_count: str | None = None,
        name: str | None = None,
        status: str | None = None,
    ) -> Response:
        state = _state(request)
        if include_membership_count not in (None, "all", "active"):
            raise validation_error("include_membership_count must be 'all' or 'active'")
        if status not in (None, "all", "active", "deleted"):
            raise validation_error("status must be 'all', 'active' or 'deleted'")
        found = []
        for contact_list in state.store.lists.values():
            deleted = bool(contact_list.get("deleted_at"))
            if (status in (None, "active") and deleted) or (status == "deleted" and not deleted):
                continue
            if name is not None and contact_list["name"] != name:
                continue
            found.append(_render_list(state, contact_list, include_membership_count))
        body: dict[str, Any] = {"lists": found[:limit]}
        if include_count:
            body["lists_count"] = len(found)
        body["_links"] = {}
        return json_response(body)

    @app.post("/v3/contact_lists", tags=["lists"])
    async def create_list(request: Request) -> Response:
        state = _state(request)
        contact_list = state.store.create_list(check_body(await read_json(request), LIST_INPUT))
        return json_response(_render_list(state, contact_list, None), 201)

    @app.get("/v3/contact_lists/{list_id}", tags=["lists"])
    async def get_list(
        request: Request, list_id: str, include_membership_count: str | None = None
    ) -> Response:
        state = _state(request)
        if include_membership_count not in (None, "all", "active"):
            raise validation_error("include_membership_count must be 'all' or 'active'")
        return json_response(_render_list(state, state.store.get_list(list_id), include_membership_count))

    @app.put("/v3/contact_lists/{list_id}", tags=["lists"])
    async def put_list(request: Request, list_id: str) -> Response:
        state = _state(request)
        contact_list = state.store.update_list(list_id, check_body(await read_json(request), LIST_INPUT))
        return json_response(_render_list(state, contact_list, None))

    @app.delete("/v3/contact_lists/{list_id}", tags=["lists"])
    async def delete_list(request: Request, list_id: str) -> Response:
        state = _state(request)
        state.store.get_list(list_id)
        _check_queue(state)
        store = state.store

        def work() -> tuple[dict[str, Any], list[str]]:
            store.delete_list(list_id)
            return {"items_total_count": 1, "items_completed_count": 1}, []

        activity = state.activities.submit({}, work)
        shown = {k: activity[k] for k in ("activity_id", "state", "created_at", "updated_at", "percent_done")}
        shown.update(activity_errors=[], _links=activity["_links"])
        return json_response(shown, 202, headers={"Location": activity["_links"]["self"]["href"]})


# --------------------------------------------------------------------------------------------------
# Custom fields


def _add_custom_field_routes(app: FastAPI) -> None:
    @app.get("/v3/contact_custom_fields", tags=["custom fields"])
    async def get_custom_fields(
        request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 50
    ) -> Response:
        fields = list(_state(request).store.custom_fields.values())
        return json_response({"custom_fields": fields[:limit], "_links": {}})

    @app.post("/v3/contact_custom_fields", tags=["custom fields"])
    async def create_custom_field(request: Request) -> Response:
        state = _state(request)
        body = check_body(await read_json(request), CUSTOM_FIELD_POST)
        return json_response(
            state.store.create_custom_field(body, limit=state.settings.max_custom_fields), 201
        )

    @app.get("/v3/contact_custom_fields/{custom_field_id}", tags=["custom fields"])
    async def get_custom_field(request: Request, custom_field_id: str) -> Response:
        return json_response(_state(request).store.get_custom_field(custom_field_id))

    @app.put("/v3/contact_custom_fields/{custom_field_id}", tags=["custom fields"])
    async def put_custom_field(request: Request, custom_field_id: str) -> Response:
        body = check_body(await read_json(request), CUSTOM_FIELD_PUT)
        return json_response(_state(request).store.update_custom_field(custom_field_id, body))

    @app.delete("/v3/contact_custom_fields/{custom_field_id}", tags=["custom fields"])
    async def delete_custom_field(request: Request, custom_field_id: str) -> Response:
        _state(request).store.delete_custom_field(custom_field_id)
        return Response(status_code=204)


# --------------------------------------------------------------------------------------------------
# Account

DEMO_ACCOUNT = {
    "contact_email": "office@example.org",
    "contact_phone": "555-0100",
    "country_code": "US",
    "encoded_account_id": "a07e1demo0001",
    "first_name": "Demo",
    "last_name": "Administrator",
    "organization_name": "Example Community Association (emulated)",
    "organization_phone": "555-0100",
    "state_code": "MA",
    "time_zone_id": "US/Eastern",
    "website": "https://example.org",
}
DEMO_PHYSICAL_ADDRESS = {
    "address_line1": "1 Example Street",
    "city": "Springfield",
    "state_code": "MA",
    "postal_code": "01101",
    "country_code": "US",
}


def _add_account_routes(app: FastAPI) -> None:
    @app.get("/v3/account/summary", tags=["account"])
    async def account_summary(request: Request, extra_fields: str | None = None) -> Response:
        body: dict[str, Any] = dict(DEMO_ACCOUNT)
        if "physical_address" in _csv(extra_fields):
            body["physical_address"] = dict(DEMO_PHYSICAL_ADDRESS)
        return json_response(body)


__all__ = ["TOKEN_PATH", "ContactCursor", "EmulatorApp", "create_app", "render_contact"]
