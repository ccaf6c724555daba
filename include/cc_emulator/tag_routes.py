"""The ``/v3`` routes of contact tags (state in ``store.py``: ``AccountStore.tags`` and each contact's
``taggings``).

Served as the spec documents them: ``GET /v3/contact_tags`` (``limit`` up to 500, ``include_count``,
cursor paging through ``_links.next.href``), ``POST /v3/contact_tags`` (a unique ``name``: 409 on a
duplicate), ``GET`` / ``PUT`` / ``DELETE /v3/contact_tags/{tag_id}`` (a delete is an activity that
un-assigns the tag, answered 202), and the bulk activities ``POST
/v3/activities/contacts_taggings_add`` and ``contacts_taggings_remove`` (``TagAddRemoveContacts``: one
source of ``contact_ids`` up to 500, ``list_ids``, ``tag_ids`` or ``all_active_contacts``; ``exclude``
only with the last two). Tagging never touches a contact's permission to send.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from include.cc_emulator.app import (
    MAX_ACTIVITY_CONTACT_IDS,
    MAX_ACTIVITY_LIST_IDS,
    _check_queue,
    _existing_lists,
    _id_list,
    _state,
    json_response,
    read_json,
)
from include.cc_emulator.errors import bad_request, validation_error
from include.cc_emulator.state import EmulatorState
from include.cc_emulator.validation import TAG_INPUT, TAGGING, check_body

MAX_TAG_PAGE = 500
MAX_ACTIVITY_TAG_IDS = 50
DEFAULT_TAG_PAGE = 50


def _encode_position(position: int) -> str:
    return base64.urlsafe_b64encode(f"next={position}".encode()).decode().rstrip("=")


def _decode_position(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        name, _, value = text.partition("=")
        if name != "next":
            raise ValueError(text)
        return int(value)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise bad_request("The cursor is not valid") from None


def _shown(state: EmulatorState, tag: dict[str, Any], include_count: bool) -> dict[str, Any]:
    if not include_count:
        return tag
    return {**tag, "contacts_count": state.store.tag_count(tag["tag_id"])}


def _existing_tags(state: EmulatorState, tag_ids: list[str]) -> list[str]:
    for tag_id in tag_ids:
        if tag_id not in state.store.tags:
            raise validation_error(f"tag {tag_id} does not exist")
    return tag_ids


def _tagging_source(state: EmulatorState, body: dict[str, Any]) -> Callable[[], list[str]]:
    """The contacts a tagging activity works on, resolved when the activity runs."""
    source = body["source"]
    given = [k for k in ("contact_ids", "list_ids", "tag_ids", "all_active_contacts") if source.get(k)]
    if source.get("new_subscriber"):
        raise validation_error("source new_subscriber is not supported by the emulator")
    if len(given) != 1:
        raise validation_error(
            "source needs exactly one of contact_ids, list_ids, tag_ids or all_active_contacts"
        )
    exclude_ids = _id_list(body.get("exclude") or {}, "contact_ids", maximum=10_000)
    if exclude_ids and given[0] not in ("list_ids", "all_active_contacts"):
        raise validation_error("exclude applies only to a list_ids or all_active_contacts source")
    exclude = set(exclude_ids)
    store = state.store
    if given[0] == "contact_ids":
        ids = _id_list(source, "contact_ids", maximum=MAX_ACTIVITY_CONTACT_IDS)
        return lambda: ids
    if given[0] == "list_ids":
        lists = _existing_lists(state, _id_list(source, "list_ids", maximum=MAX_ACTIVITY_LIST_IDS))
        return lambda: [cid for cid in store.members_of(lists) if cid not in exclude]
    if given[0] == "tag_ids":
        tags = _existing_tags(state, _id_list(source, "tag_ids", maximum=MAX_ACTIVITY_TAG_IDS))
        return lambda: store.tagged_with(tags)
    return lambda: [cid for cid in store.active_contact_ids() if cid not in exclude]


def add_tag_routes(app: FastAPI) -> None:
    @app.get("/v3/contact_tags", tags=["tags"])
    async def get_tags(request: Request, include_count: bool = False, cursor: str | None = None) -> Response:
        state = _state(request)
        limit = int(request.query_params.get("limit") or DEFAULT_TAG_PAGE)
        position = _decode_position(cursor) if cursor else 0
        tags = list(state.store.tags.values())
        page = tags[position : position + limit]
        body: dict[str, Any] = {"tags": [_shown(state, tag, include_count) for tag in page]}
        body["_links"] = {}
        if position + limit < len(tags):
            after = _encode_position(position + limit)
            body["_links"] = {"next": {"href": f"/v3/contact_tags?limit={limit}&cursor={after}"}}
        return json_response(body)

    @app.post("/v3/contact_tags", tags=["tags"])
    async def create_tag(request: Request) -> Response:
        body = check_body(await read_json(request), TAG_INPUT)
        return json_response(_state(request).store.create_tag(body), 201)

    @app.get("/v3/contact_tags/{tag_id}", tags=["tags"])
    async def get_tag(request: Request, tag_id: str, include_count: bool = False) -> Response:
        state = _state(request)
        return json_response(_shown(state, state.store.get_tag(tag_id), include_count))

    @app.put("/v3/contact_tags/{tag_id}", tags=["tags"])
    async def put_tag(request: Request, tag_id: str) -> Response:
        body = check_body(await read_json(request), TAG_INPUT)
        return json_response(_state(request).store.rename_tag(tag_id, body))

    @app.delete("/v3/contact_tags/{tag_id}", tags=["tags"])
    async def delete_tag(request: Request, tag_id: str) -> Response:
        state = _state(request)
        state.store.get_tag(tag_id)
        _check_queue(state)
        store = state.store

        def work() -> tuple[dict[str, Any], list[str]]:
            if tag_id not in store.tags:  # deleted twice before either ran
                return {"items_total_count": 0, "items_completed_count": 0}, []
            untagged = store.delete_tag(tag_id)
            return {"items_total_count": untagged, "items_completed_count": untagged}, []

        activity = state.activities.submit({}, work)
        shown = {k: activity[k] for k in ("activity_id", "state", "created_at", "updated_at", "percent_done")}
        shown.update(activity_errors=[], _links=activity["_links"])
        return json_response(shown, 202, headers={"Location": activity["_links"]["self"]["href"]})

    async def _tagging_activity(request: Request, *, adding: bool) -> Response:
        state = _state(request)
        body = check_body(await read_json(request), TAGGING)
        tag_ids = _existing_tags(
            state, _id_list(body, "tag_ids", maximum=MAX_ACTIVITY_TAG_IDS, required=True)
        )
        contacts_of = _tagging_source(state, body)
        _check_queue(state)
        store = state.store

        def work() -> tuple[dict[str, Any], list[str]]:
            contact_ids = contacts_of()
            if adding:
                store.add_taggings(contact_ids, tag_ids)
            else:
                store.remove_taggings(contact_ids, tag_ids)
            total = len(contact_ids)
            return {"items_total_count": total, "items_completed_count": total}, []

        activity = state.activities.submit({}, work)
        return json_response(activity, 201)

    @app.post("/v3/activities/contacts_taggings_add", tags=["activities"])
    async def contacts_taggings_add(request: Request) -> Response:
        return await _tagging_activity(request, adding=True)

    @app.post("/v3/activities/contacts_taggings_remove", tags=["activities"])
    async def contacts_taggings_remove(request: Request) -> Response:
        return await _tagging_activity(request, adding=False)
