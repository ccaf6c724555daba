"""Admin paths (``/_admin/...``, never under /v3): set-up, subscriber actions, counters and the log.

They cost no API quota and never appear in the counters or the request log, so a test can arrange
a scenario and inspect the result without disturbing what it measures. ``testing.EmulatorAdmin`` is
the Python client of these paths.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from include.cc_emulator.app import json_response
from include.cc_emulator.clock import normalise_timestamp
from include.cc_emulator.errors import bad_request
from include.cc_emulator.settings import FaultSettings
from include.cc_emulator.state import EmulatorState

router = APIRouter(prefix="/_admin", tags=["admin"])


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise bad_request("admin request body is not JSON") from None
    if not isinstance(data, dict):
        raise bad_request("admin request body must be a JSON object")
    return data


def _ok(data: Any = None, status: int = 200) -> Response:
    return json_response({"ok": True} if data is None else data, status)


def _settings_error(error: Exception) -> Response:
    return json_response([{"error_key": "admin.settings.invalid", "error_message": str(error)}], 400)


def _at(body: dict[str, Any]) -> str | None:
    return normalise_timestamp(body["at"], name="at") if body.get("at") else None


@router.get("/health")
async def health(request: Request) -> Response:
    state = _state(request)
    return _ok({"ok": True, "contacts": len(state.store.contacts)})


@router.get("/settings")
async def get_settings(request: Request) -> Response:
    return _ok(_state(request).settings.public_dict())


@router.post("/reset")
async def reset(request: Request) -> Response:
    try:
        _state(request).reset(**await _body(request))
    except (TypeError, ValueError) as error:
        return _settings_error(error)
    return _ok()


@router.get("/snapshot")
async def snapshot(request: Request) -> Response:
    """The whole account, its counters and its request log, for ``POST /_admin/restore``."""
    return _ok(_state(request).snapshot())


@router.post("/restore")
async def restore(request: Request) -> Response:
    """Put back an account from ``GET /_admin/snapshot`` (settings and faults are left as they are)."""
    try:
        _state(request).restore(await _body(request))
    except (KeyError, TypeError, ValueError) as error:
        return _settings_error(error)
    return _ok({"contacts": len(_state(request).store.contacts)})


@router.post("/configure")
async def configure(request: Request) -> Response:
    try:
        _state(request).configure(**await _body(request))
    except (TypeError, ValueError) as error:
        return _settings_error(error)
    return _ok(_state(request).settings.public_dict())


@router.post("/faults")
async def set_faults(request: Request) -> Response:
    try:
        _state(request).set_faults(**await _body(request))
    except (TypeError, ValueError) as error:
        return _settings_error(error)
    return _ok()


@router.delete("/faults")
async def clear_faults(request: Request) -> Response:
    _state(request).set_faults(**FaultSettings().__dict__)
    return _ok()


@router.post("/seed")
async def seed(request: Request) -> Response:
    body = await _body(request)
    state = _state(request)
    ids = state.store.seed(
        count=body.get("count"),
        contacts=body.get("contacts"),
        list_ids=body.get("list_ids"),
        seed=int(body.get("seed") or 0),
    )
    state.mark_dirty()
    return _ok({"contact_ids": ids})


@router.post("/lists")
async def create_list(request: Request) -> Response:
    state = _state(request)
    contact_list = state.store.create_list(await _body(request))
    state.mark_dirty()
    return _ok(contact_list, 201)


@router.post("/custom_fields")
async def create_custom_field(request: Request) -> Response:
    state = _state(request)
    custom_field = state.store.create_custom_field(
        await _body(request), limit=state.settings.max_custom_fields
    )
    state.mark_dirty()
    return _ok(custom_field, 201)


@router.post("/contacts/{contact_id}/opt_out")
async def opt_out(request: Request, contact_id: str) -> Response:
    body = await _body(request)
    state = _state(request)
    state.store.opt_out(
        contact_id, at=_at(body), source=body.get("source") or "Contact", reason=body.get("reason") or ""
    )
    state.mark_dirty()
    return _ok(state.store.get_contact(contact_id))


@router.post("/contacts/{contact_id}/edit")
async def edit_contact(request: Request, contact_id: str) -> Response:
    body = await _body(request)
    state = _state(request)
    contact = state.store.edit_contact(contact_id, body.get("fields") or {}, at=_at(body))
    state.mark_dirty()
    return _ok(contact)


@router.post("/contacts/{contact_id}/delete")
async def delete_contact(request: Request, contact_id: str) -> Response:
    body = await _body(request)
    state = _state(request)
    state.store.delete_contact(contact_id, at=_at(body))
    state.mark_dirty()
    return _ok(state.store.get_contact(contact_id))


@router.get("/contacts/{contact_id}")
async def get_contact(request: Request, contact_id: str) -> Response:
    return _ok(_state(request).store.get_contact(contact_id))


@router.get("/contacts")
async def all_contacts(request: Request) -> Response:
    return _ok(list(_state(request).store.iter_contacts()))


@router.get("/lists")
async def all_lists(request: Request) -> Response:
    store = _state(request).store
    return _ok(
        [{**lst, "member_ids": sorted(store.list_members.get(lid, ()))} for lid, lst in store.lists.items()]
    )


@router.get("/activities")
async def all_activities(request: Request) -> Response:
    return _ok(list(_state(request).activities.activities.values()))


@router.get("/request_log")
async def request_log(request: Request) -> Response:
    return _ok(list(_state(request).request_log))


@router.get("/counters")
async def counters(request: Request) -> Response:
    return _ok(_state(request).counters())


@router.post("/expire_access_tokens")
async def expire_access_tokens(request: Request) -> Response:
    _state(request).tokens.expire_access_tokens()
    return _ok()


@router.post("/access_token")
async def issue_access_token(request: Request) -> Response:
    """A valid access token without using (and rotating) the refresh token: for test set-up."""
    state = _state(request)
    token = state.tokens.issue_access_token(state.settings.access_token_ttl_seconds)
    return _ok({"access_token": token})


@router.get("/refresh_token")
async def current_refresh_token(request: Request) -> Response:
    return _ok({"refresh_token": _state(request).tokens.current_refresh_token()})


@router.post("/save")
async def save(request: Request) -> Response:
    state = _state(request)
    if state.settings.state_file is None:
        raise bad_request("the emulator runs without a state file")
    state.save()
    return _ok({"state_file": str(state.settings.state_file)})


@router.post("/campaigns/send")
async def send_campaign(request: Request) -> Response:
    """Create a campaign and send it: ``{name, list_ids, contact_ids, at, events}``; ``events`` are
    what recipients then do (see ``track_campaign_activity``)."""
    body = await _body(request)
    state = _state(request)
    campaign = state.campaigns.send(
        state.store,
        name=body.get("name") or "",
        list_ids=body.get("list_ids") or (),
        contact_ids=body.get("contact_ids") or (),
        at=body.get("at"),
    )
    primary = campaign["campaign_activities"][0]["campaign_activity_id"]
    if body.get("events"):
        state.campaigns.track(state.store, primary, body["events"])
    state.mark_dirty()
    return _ok(campaign, 201)


@router.post("/campaign_activities/{campaign_activity_id}/track")
async def track_campaign_activity(request: Request, campaign_activity_id: str) -> Response:
    """Recipients act on a sent activity: ``{events: [{type: open|click|bounce|optout, contact_id,
    at, link_url, bounce_code, reason}]}``; an opt-out also unsubscribes the contact."""
    body = await _body(request)
    state = _state(request)
    count = state.campaigns.track(state.store, campaign_activity_id, body.get("events") or [])
    state.mark_dirty()
    return _ok({"events": count})
