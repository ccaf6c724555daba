"""Contact exports: ``POST /v3/activities/contact_exports`` and ``GET /v3/contact_exports/{id}``.

An export is a bulk activity (activities.py) whose work writes a CSV file of the chosen contacts;
when it completes its ``_links.results.href`` names the file, which ``GET /v3/contact_exports/{id}``
serves as ``text/csv`` (spec: ``ContactsExport``, ``ActivityExportStatus``, ``ActivityGetExport``).

What is served, as the spec and the export guide describe it:

- the contacts: ``contact_ids`` (up to 500) or ``list_ids`` (up to 50 lists' members) or, with
  neither, every contact; ``status`` (``active``, ``unsubscribed``, ``removed``) narrows any of them
  and ``exclude.contact_ids`` takes contacts out of a list export. Without ``status`` deleted
  contacts are left out (they are on no list the account sees). ``tag_ids``, ``segment_id`` and
  ``new_subscriber`` are refused (400): the emulator keeps no tags, segments or sign-up dates.
- the columns: ``fields`` from :data:`EXPORT_FIELDS` (the guide's names; all of them when none is
  given), each a column headed by its field name. The first column is always ``contact_id``: the
  guide does not list it as a field, and an export whose rows cannot be told apart by id is useless
  to a sync, so the emulator assumes the real file carries it (and takes ``contact_id`` as a field).

Files live in memory only (not in the state file): after a restart an old file is a 404, as an
expired file would be.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from include.cc_emulator.errors import ApiError, validation_error
from include.cc_emulator.store import ACTIVE_PERMISSIONS, AccountStore, Permission, contact_status
from include.cc_emulator.validation import UUID, Arr, Bool, Int, Obj, Str, check_body

MAX_EXPORT_CONTACT_IDS = 500
MAX_EXPORT_LIST_IDS = 50
MAX_EXCLUDED_CONTACT_IDS = 50
RESULTS_PATH = "/v3/contact_exports/{file_export_id}"


class ExportStatus:
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    REMOVED = "removed"


EXPORT_STATUSES = (ExportStatus.ACTIVE, ExportStatus.UNSUBSCRIBED, ExportStatus.REMOVED)

CONTACTS_EXPORT = Obj(
    {
        "contact_ids": Arr(UUID, max_items=MAX_EXPORT_CONTACT_IDS),
        "list_ids": Arr(UUID, max_items=MAX_EXPORT_LIST_IDS),
        "tag_ids": Arr(UUID, max_items=50),
        "new_subscriber": Bool(),
        "segment_id": Int(),
        "fields": Arr(Str()),
        "status": Str(enum=EXPORT_STATUSES),
        "exclude": Obj({"contact_ids": Arr(UUID, max_items=MAX_EXCLUDED_CONTACT_IDS)}),
    }
)


def _email(contact: dict[str, Any], key: str) -> Any:
    return (contact.get("email_address") or {}).get(key)


# Column name -> how a stored contact fills it (None and missing values are empty cells).
EXPORT_FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "contact_id": lambda c: c["contact_id"],
    "email_address": lambda c: _email(c, "address"),
    "first_name": lambda c: c.get("first_name"),
    "last_name": lambda c: c.get("last_name"),
    "company_name": lambda c: c.get("company_name"),
    "job_title": lambda c: c.get("job_title"),
    "email_permission": lambda c: _email(c, "permission_to_send"),
    "email_optout_date": lambda c: _email(c, "opt_out_date"),
    "email_optout_source": lambda c: _email(c, "opt_out_source"),
    "email_optout_reason": lambda c: _email(c, "opt_out_reason"),
    "created_at": lambda c: c.get("created_at"),
    "updated_at": lambda c: c.get("updated_at"),
}


class ExportFiles:
    """Finished exports' CSV text by file id (the activity's id)."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def get(self, file_export_id: str) -> str:
        found = self.files.get(file_export_id)
        if found is None:
            raise ApiError(
                404, "contact_exports.api.not.found", f"Export file {file_export_id} was not found"
            )
        return found


def _matches_status(contact: dict[str, Any], status: str | None) -> bool:
    current = contact_status(contact)
    if status is None:
        return current != "deleted"
    if status == ExportStatus.REMOVED:
        return current == "deleted"
    if status == ExportStatus.UNSUBSCRIBED:
        return current == Permission.UNSUBSCRIBED.value
    return current in ACTIVE_PERMISSIONS


def _columns(body: dict[str, Any]) -> list[str]:
    fields = list(dict.fromkeys(body.get("fields") or [f for f in EXPORT_FIELDS if f != "contact_id"]))
    unknown = [f for f in fields if f not in EXPORT_FIELDS]
    if unknown:
        raise validation_error(f"fields accepts {sorted(EXPORT_FIELDS)}, not {unknown}")
    return ["contact_id", *(f for f in fields if f != "contact_id")]


def plan_export(store: AccountStore, body: dict[str, Any]) -> tuple[Callable[[], list[str]], list[str]]:
    """(who to export, resolved when the activity runs; the columns), or a 400 for a body CC refuses."""
    body = check_body(body, CONTACTS_EXPORT)
    for unsupported in ("tag_ids", "segment_id", "new_subscriber"):
        if body.get(unsupported):
            raise validation_error(f"{unsupported} is not supported by the emulator")
    contact_ids, list_ids = body.get("contact_ids") or [], body.get("list_ids") or []
    if contact_ids and list_ids:
        raise validation_error("contact_ids and list_ids are mutually exclusive")
    excluded = set((body.get("exclude") or {}).get("contact_ids") or [])
    if excluded and contact_ids:
        raise validation_error("exclude may only be given with list_ids or with no source")
    for list_id in list_ids:
        found = store.lists.get(list_id)
        if found is None or found.get("deleted_at"):
            raise validation_error(f"list {list_id} does not exist")
    columns = _columns(body)
    status = body.get("status")

    def chosen() -> list[str]:
        if contact_ids:
            candidates = [cid for cid in dict.fromkeys(contact_ids) if cid in store.contacts]
        elif list_ids:
            candidates = store.members_of(list_ids)
        else:
            candidates = list(store.order)
        return [
            cid for cid in candidates if cid not in excluded and _matches_status(store.contacts[cid], status)
        ]

    return chosen, columns


def render_csv(store: AccountStore, contact_ids: list[str], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180, as CC's files are
    writer.writerow(columns)
    getters = [EXPORT_FIELDS[c] for c in columns]
    for cid in contact_ids:
        contact = store.contacts[cid]
        writer.writerow(["" if (v := get(contact)) is None else v for get in getters])
    return out.getvalue()


def add_export_routes(app: FastAPI) -> None:
    # Here, not at the top: state.py imports this module for ExportFiles, and app.py imports state.py.
    from include.cc_emulator.app import _check_queue, _state, json_response, read_json

    @app.post("/v3/activities/contact_exports", tags=["activities"])
    async def contact_exports(request: Request) -> Response:
        state = _state(request)
        chosen, columns = plan_export(state.store, await read_json(request))
        _check_queue(state)
        store, files = state.store, state.exports
        activity: dict[str, Any] = {}

        def work() -> tuple[dict[str, Any], list[str]]:
            contact_ids = chosen()
            file_id = activity["activity_id"]
            files.files[file_id] = render_csv(store, contact_ids, columns)
            activity["_links"]["results"] = {"href": RESULTS_PATH.format(file_export_id=file_id)}
            return {"items_total_count": len(contact_ids), "items_completed_count": len(contact_ids)}, []

        activity = state.activities.submit({"items_total_count": 0, "items_completed_count": 0}, work)
        return json_response(activity, 201)

    @app.get(RESULTS_PATH, tags=["activities"])
    async def contact_export_file(request: Request, file_export_id: str) -> Response:
        text = _state(request).exports.get(file_export_id)
        return Response(text.encode(), status_code=200, media_type="text/csv")
