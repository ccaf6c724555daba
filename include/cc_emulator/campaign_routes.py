"""The ``/v3`` routes of email campaigns and their tracking reports (state in ``campaigns.py``).

``GET /v3/emails`` filters on ``updated_at`` (``after_date``, ``before_date``) and, like the real
endpoint, answers campaigns without their activities; ``GET /v3/emails/{campaign_id}`` lists them.
Tracking reports answer the most recent event first, at most 500 a page, with an opaque cursor in
``_links.next.href`` (the spec lists no cursor parameter, as for contacts).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from include.cc_emulator.app import _state, _timestamp_param, json_response
from include.cc_emulator.campaigns import (
    BOUNCE_CODES,
    MAX_CAMPAIGN_PAGE,
    MAX_TRACKING_PAGE,
    TrackingCursor,
    TrackingReport,
)
from include.cc_emulator.errors import bad_request, validation_error

REPORT_PATH = "/v3/reports/email_reports/{campaign_activity_id}/tracking/"
Limit = Annotated[int, Query(ge=1, le=MAX_TRACKING_PAGE)]


def _encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise bad_request("The cursor is not valid") from None
    if not isinstance(data, dict):
        raise bad_request("The cursor is not valid")
    return data


def _tracking_answer(request: Request, cursor: TrackingCursor) -> Response:
    events, next_position = _state(request).campaigns.tracking_page(cursor)
    links: dict[str, Any] = {}
    if next_position is not None:
        after = TrackingCursor(**{**cursor.__dict__, "position": next_position})
        path = REPORT_PATH.format(campaign_activity_id=cursor.campaign_activity_id) + cursor.report
        links["next"] = {"href": f"{path}?{urlencode({'cursor': after.encode()})}"}
    return json_response({"tracking_activities": events, "_links": links})


def _tracking_cursor(
    report: TrackingReport,
    campaign_activity_id: str,
    *,
    limit: int,
    cursor: str | None,
    url_id: str | None = None,
    bounce_codes: tuple[str, ...] = (),
) -> TrackingCursor:
    if cursor:
        decoded = TrackingCursor.decode(cursor)
        if decoded.report != report.value or decoded.campaign_activity_id != campaign_activity_id:
            raise bad_request("The cursor belongs to another report")
        return decoded
    return TrackingCursor(report.value, campaign_activity_id, 0, limit, url_id, bounce_codes)


def add_campaign_routes(app: FastAPI) -> None:
    @app.get("/v3/emails", tags=["email campaigns"])
    async def get_campaigns(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_CAMPAIGN_PAGE)] = 50,
        after_date: str | None = None,
        before_date: str | None = None,
        cursor: str | None = None,
    ) -> Response:
        if cursor:
            walk = _decode(cursor)
            after, before, position, limit = walk.get("a"), walk.get("b"), int(walk.get("p", 0)), int(
                walk.get("l", limit))  # fmt: skip
        else:
            after = _timestamp_param(after_date, "after_date")
            before = _timestamp_param(before_date, "before_date")
            position = 0
        campaigns, next_position = _state(request).campaigns.list_campaigns(
            after=after, before=before, position=position, limit=limit
        )
        links: dict[str, Any] = {}
        if next_position is not None:
            token = _encode({"a": after, "b": before, "p": next_position, "l": limit})
            links["next"] = {"href": f"/v3/emails?{urlencode({'cursor': token})}"}
        return json_response({"campaigns": campaigns, "_links": links})

    @app.get("/v3/emails/{campaign_id}", tags=["email campaigns"])
    async def get_campaign(request: Request, campaign_id: str) -> Response:
        return json_response(_state(request).campaigns.get_campaign(campaign_id))

    @app.get(REPORT_PATH + "sends", tags=["email reporting"])
    async def get_sends(
        request: Request,
        campaign_activity_id: str,
        limit: Limit = MAX_TRACKING_PAGE,
        cursor: str | None = None,
    ) -> Response:
        walk = _tracking_cursor(TrackingReport.SENDS, campaign_activity_id, limit=limit, cursor=cursor)
        return _tracking_answer(request, walk)

    @app.get(REPORT_PATH + "opens", tags=["email reporting"])
    async def get_opens(
        request: Request,
        campaign_activity_id: str,
        limit: Limit = MAX_TRACKING_PAGE,
        cursor: str | None = None,
    ) -> Response:
        walk = _tracking_cursor(TrackingReport.OPENS, campaign_activity_id, limit=limit, cursor=cursor)
        return _tracking_answer(request, walk)

    @app.get(REPORT_PATH + "clicks", tags=["email reporting"])
    async def get_clicks(
        request: Request,
        campaign_activity_id: str,
        limit: Limit = MAX_TRACKING_PAGE,
        url_id: int | None = None,
        cursor: str | None = None,
    ) -> Response:
        walk = _tracking_cursor(
            TrackingReport.CLICKS,
            campaign_activity_id,
            limit=limit,
            cursor=cursor,
            url_id=None if url_id is None else str(url_id),
        )
        return _tracking_answer(request, walk)

    @app.get(REPORT_PATH + "bounces", tags=["email reporting"])
    async def get_bounces(
        request: Request,
        campaign_activity_id: str,
        limit: Limit = MAX_TRACKING_PAGE,
        bounce_code: Annotated[list[str] | None, Query()] = None,
        cursor: str | None = None,
    ) -> Response:
        codes = tuple(bounce_code or ())
        unknown = set(codes) - BOUNCE_CODES
        if unknown:
            raise validation_error(f"bounce_code must be among {sorted(BOUNCE_CODES)}, not {sorted(unknown)}")
        walk = _tracking_cursor(
            TrackingReport.BOUNCES, campaign_activity_id, limit=limit, cursor=cursor, bounce_codes=codes
        )
        return _tracking_answer(request, walk)

    @app.get(REPORT_PATH + "optouts", tags=["email reporting"])
    async def get_optouts(
        request: Request,
        campaign_activity_id: str,
        limit: Limit = MAX_TRACKING_PAGE,
        cursor: str | None = None,
    ) -> Response:
        walk = _tracking_cursor(TrackingReport.OPTOUTS, campaign_activity_id, limit=limit, cursor=cursor)
        return _tracking_answer(request, walk)
