"""ConstantContactHook: every call to the Constant Contact v3 API goes through here.

The connection (``constant_contact_default``; conn_type ``constant_contact``, registered by this
package's provider entry point so the UI shows these fields (provider_info.py) and its Test button
proves the credentials by a token exchange and names the account; ``http`` or ``generic`` work too):

- ``host``: the API base URL (``https://api.cc.email`` when empty; the emulator in the demo);
- ``login`` / ``password``: the API key (client id) and its secret;
- ``extra``: ``refresh_token`` (from ``python -m cc_sync.constant_contact.authorize``),
  ``token_url``, ``state_db_uri`` (the shared state, see ``state.py``), ``requests_per_second``
  (default 4; 0 or null turns the limiter off, for benchmarks against the emulator),
  ``daily_budget`` (default 10,000; null turns counting off), ``budget_reserve`` (default 200
  calls kept in hand), ``timeout`` (seconds, default 60).

One choke point, :meth:`ConstantContactHook._request`, gives every call the same treatment: a slot
in the shared rate limiter and the daily budget (each attempt counts), bearer auth with one refresh
on a 401, and retries with exponential backoff and jitter on ``throttled``, 5xx, timeouts, dropped
connections and cut-off or malformed 2xx bodies, never on another 4xx. ``quota_exceeded`` fails at
once, saying when the quota resets. Log lines carry paths, counts and ids, never a token or an
email address (query strings, which can hold one, are never logged).

Use::

    hook = ConstantContactHook()  # or ConstantContactHook("my_conn_id")
    frame = convert.contacts_to_frame(
        hook.iter_contacts(updated_after=watermark), hook.custom_field_names()
    )
    result = hook.import_contacts(convert.frame_to_import_rows(changes), [list_id])
    log.info("import: %s", result.summary())  # counts only; result.errors has the rejected rows

Bulk requests can be journaled by the caller and survive a crash: ``on_accepted`` hears of each
request CC accepted before it is polled, and ``resume`` (request key -> activity id) given back on
a retry polls those activities instead of sending the requests again; ``resubmit_failed`` sends a
request again when its activity fails (see :meth:`ConstantContactHook.run_activities`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import tenacity
from airflow.sdk import BaseHook

from cc_sync.constant_contact import bulk
from cc_sync.constant_contact.connection import (
    API_PREFIX,
    ConnectionSettings,
)
from cc_sync.constant_contact.errors import (
    ConstantContactApiError,
    ConstantContactAuthError,
    ConstantContactError,
    ConstantContactMalformedResponse,
    ConstantContactQuotaExceeded,
    ConstantContactTransportError,
)
from cc_sync.constant_contact.events import EVENT_PAGE_SIZE, REGISTRATION_PAGE_SIZE, Event, Registration
from cc_sync.constant_contact.models import (
    AcceptedActivity,
    Activity,
    ActivityRequest,
    ContactList,
    ContactStatus,
    CustomField,
    ImportResult,
    QuotaUsage,
    RowError,
    Tag,
)
from cc_sync.constant_contact.state import SharedState, next_utc_midnight
from cc_sync.constant_contact.tokens import TokenManager, token_store_key
from cc_sync.constant_contact.tracking import EmailCampaign, TrackingKind
from cc_sync.timeutil import parse_utc

PAGE_SIZE = 500
MAX_IDS_PER_MEMBERSHIP_ACTIVITY = 500
CONTACT_INCLUDES = ("custom_fields", "list_memberships", "phone_numbers", "street_addresses", "taggings")
MAX_IDS_PER_TAGGING_ACTIVITY = 500
MAX_TAGS_PER_TAGGING_ACTIVITY = 50
TAGGINGS_ADD_PATH = "activities/contacts_taggings_add"
TAGGINGS_REMOVE_PATH = "activities/contacts_taggings_remove"
# Polling a bulk activity: the first look after about a second, then no more than one call every
# two seconds, spacing out further for long activities (each poll is a call from the daily budget).
FIRST_POLL_AFTER_SECONDS = 1.0
MIN_POLL_INTERVAL_SECONDS = 2.0
MAX_POLL_INTERVAL_SECONDS = 10.0
POLL_INTERVAL_GROWTH = 1.25
ACTIVITY_TIMEOUT_SECONDS = 3600.0
IMPORT_PATH = "activities/contacts_json_import"
EXPORT_PATH = "activities/contact_exports"
CONTACT_ID_COLUMN = "contact_id"
# What learning a list's contact ids needs: the id (always in the file) and the email.
EXPORT_ID_FIELDS = (CONTACT_ID_COLUMN, "email_address")

# Told of each bulk request CC accepts, before any poll (a caller journals it there).
ActivityCallback = Callable[[AcceptedActivity], None]

_EMAIL_PATTERN = re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+")


def redact_emails(text: str) -> str:
    """CC's error messages can quote the address they refuse; logs and errors keep ids, not emails."""
    return _EMAIL_PATTERN.sub("<email>", text)


_IMPORT_ROW_PATTERN = re.compile(r"import_data\[(\d+)\]")


def _error_row_finder(
    rows: Sequence[Mapping[str, Any]], positions: Sequence[int]
) -> Callable[[str], int | None]:
    """``message -> row position or None`` for one request's activity errors: by the row reference
    (``import_data[N]``, N within the request) or, failing that, by an address of the request that
    the message quotes."""
    by_email: dict[str, int] | None = None

    def row_of(message: str) -> int | None:
        nonlocal by_email
        found = _IMPORT_ROW_PATTERN.search(message)
        if found and int(found.group(1)) < len(positions):
            return positions[int(found.group(1))]
        quoted = [e.lower() for e in _EMAIL_PATTERN.findall(message)]
        if not quoted:
            return None
        if by_email is None:
            by_email = {str(rows[p].get("email") or "").strip().lower(): p for p in positions}
        return next((by_email[e] for e in quoted if e in by_email), None)

    return row_of


def _iso(value: datetime | date | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("filter datetimes must be timezone-aware (UTC)")
        return value.isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _csv(value: str | Iterable[str]) -> str:
    return value if isinstance(value, str) else ",".join(str(v) for v in value)


class ExportStatus(StrEnum):
    """An export's ``status`` filter (``ContactsExport.status``)."""

    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    REMOVED = "removed"


def _column_name(header: str) -> str:
    """A CSV header as a key: ``Email Address`` and ``email_address`` are the same column."""
    return "_".join(header.strip().lower().split())


def _csv_rows(text: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    columns = [_column_name(h) for h in header]
    return [dict(zip(columns, row, strict=False)) for row in reader if row]


def _contact_id_requests(
    path: str, contact_ids: Sequence[str], target_key: str, targets: Sequence[str], per_request: int
) -> list[ActivityRequest]:
    """Requests of a bulk activity over contact ids (membership or tagging): ``per_request`` ids
    each, duplicates sent once; each request's items are the ids' first positions in ``contact_ids``."""
    ids = list(dict.fromkeys(contact_ids))
    positions = {contact_id: n for n, contact_id in reversed(list(enumerate(contact_ids)))}
    requests = []
    for i in range(0, len(ids), per_request):
        part = ids[i : i + per_request]
        body = {"source": {"contact_ids": part}, target_key: list(targets)}
        requests.append(
            ActivityRequest(
                path, json.dumps(body, separators=(",", ":")).encode(), tuple(positions[c] for c in part)
            )
        )
    return requests


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ConstantContactApiError):
        return exc.is_retryable
    return isinstance(exc, ConstantContactTransportError | ConstantContactMalformedResponse)


class ConstantContactHook(BaseHook):
    """Talks to the Constant Contact v3 API (or the project's emulator).

    :param cc_conn_id: the Airflow connection id.
    :param max_attempts: attempts per call, the first included, before a transient failure is raised.
    :param backoff_initial: seconds before the first retry; it doubles, with jitter, per retry.
    :param backoff_max: the longest wait between two attempts.
    """

    conn_name_attr = "cc_conn_id"
    default_conn_name = "constant_contact_default"
    conn_type = "constant_contact"
    hook_name = "Constant Contact"

    def __init__(
        self,
        cc_conn_id: str = default_conn_name,
        *,
        max_attempts: int = 8,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
    ):
        super().__init__()
        self.cc_conn_id = cc_conn_id
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.api_calls = 0  # HTTP attempts against the API this hook made (retries included)
        self.polls = 0  # of which activity polls
        self.activity_resubmissions = 0  # bulk requests sent again after their activity failed

    def __repr__(self) -> str:
        return f"ConstantContactHook(cc_conn_id={self.cc_conn_id!r})"

    # -- set-up --------------------------------------------------------------------------------

    @cached_property
    def _connection_parts(self) -> tuple[ConnectionSettings, str, str]:
        return ConnectionSettings.from_connection(self.get_connection(self.cc_conn_id))

    @property
    def settings(self) -> ConnectionSettings:
        return self._connection_parts[0]

    @cached_property
    def state(self) -> SharedState:
        return SharedState(self.settings.state_db_uri)

    @cached_property
    def session(self) -> requests.Session:
        return self.get_conn()

    @cached_property
    def tokens(self) -> TokenManager:
        settings, secret, refresh_token = self._connection_parts
        return TokenManager(
            self.state,
            token_key=token_store_key(settings.client_id, refresh_token),
            client_id=settings.client_id,
            client_secret=secret,
            seed_refresh_token=refresh_token,
            token_url=settings.token_url,
            session=self.session,
            timeout=settings.timeout,
        )

    def get_conn(self) -> requests.Session:
        """A fresh HTTP session (auth is added per request by :meth:`_request`)."""
        session = requests.Session()
        session.headers.update({"Accept": "application/json", "User-Agent": "cc-member-sync (Airflow)"})
        return session

    def close(self) -> None:
        if "session" in self.__dict__:
            self.session.close()

    # -- the choke point -----------------------------------------------------------------------

    def _url(self, path_or_href: str) -> str:
        if path_or_href.startswith(("http://", "https://")) or path_or_href.startswith(API_PREFIX + "/"):
            url = urljoin(self.settings.base_url + "/", path_or_href)
        else:
            url = f"{self.settings.base_url}{API_PREFIX}/{path_or_href.lstrip('/')}"
        if urlsplit(url).netloc != urlsplit(self.settings.base_url).netloc:
            raise ConstantContactMalformedResponse(
                "GET", urlsplit(url).path, "a link that leaves the API host"
            )
        return url

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        text: bool = False,
    ) -> Any:
        """Send one API call with limits, auth and retries; return the parsed JSON body (or None).

        :param path: an API path (``contacts`` or ``/v3/contacts``) or a ``_links`` href.
        :param json_body: a body to send as JSON.
        :param data: an already-serialised JSON body (the bulk import measures its bytes itself).
        :param text: the answer is a file (an export's CSV): return its text, not parsed JSON.
        """
        url = self._url(path)
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=tenacity.wait_exponential_jitter(
                multiplier=self.backoff_initial, max=self.backoff_max, jitter=self.backoff_initial
            ),
            retry=tenacity.retry_if_exception(_is_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(self._attempt, method, url, params, data, text)

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        self.log.warning(
            "Constant Contact call failed (attempt %d of %d): %s; retrying in %.1f s",
            retry_state.attempt_number,
            self.max_attempts,
            exc,
            wait,
        )

    def _send(
        self, method: str, url: str, params: Mapping[str, Any] | None, data: bytes | None
    ) -> tuple[requests.Response, str]:
        """One HTTP exchange: a budget and limiter slot, then the call with the current token."""
        settings = self.settings
        self.state.acquire_call(
            settings.client_id,
            rate_per_second=settings.requests_per_second,
            budget=settings.daily_budget,
            reserve=settings.budget_reserve,
        )
        self.api_calls += 1
        token = self.tokens.access_token()
        headers = {"Authorization": f"Bearer {token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        started = time.time()
        try:
            response = self.session.request(
                method, url, params=params, data=data, headers=headers, timeout=settings.timeout
            )
            response.content  # noqa: B018  (read the whole body now: a cut-off body fails here)
        except requests.RequestException as exc:
            self._log_call(method, url, None, started)
            raise ConstantContactTransportError(method, urlsplit(url).path, type(exc).__name__) from None
        self._log_call(method, url, response.status_code, started)
        return response, token

    @cached_property
    def _task(self) -> dict[str, str] | None:
        """dag_id, run_id, task_id of the Airflow task this hook runs in (None outside a task)."""
        try:
            from airflow.sdk import get_current_context

            context = get_current_context()
            return {
                "dag_id": context["dag"].dag_id,
                "run_id": context["run_id"],
                "task_id": context["task_instance"].task_id,
            }
        except Exception:  # not in a task (the console, a script): nothing to file the call under
            return None

    def _log_call(self, method: str, url: str, status: int | None, started: float) -> None:
        """File the call under its run for the run's API log: the path only (a query string may
        hold an email), never a header. A failure to log never fails the call."""
        task = self._task
        if task is None:
            return
        try:
            self.state.log_call(
                {
                    **task,
                    "method": method,
                    "path": urlsplit(url).path[:500],
                    "status": status,
                    "duration_ms": int((time.time() - started) * 1000),
                    "at_us": int(started * 1_000_000),
                }
            )
        except Exception:
            self.log.warning("Could not write the API log entry of %s %s", method, urlsplit(url).path)

    def _attempt(
        self, method: str, url: str, params: Mapping[str, Any] | None, data: bytes | None, text: bool = False
    ) -> Any:
        path = urlsplit(url).path
        response, token = self._send(method, url, params, data)
        if response.status_code == 401:
            # One refresh per attempt: the token may have expired early or been replaced elsewhere.
            self.log.info(
                "Constant Contact answered 401 on %s %s: refreshing the access token once", method, path
            )
            self.tokens.refresh(rejected_access_token=token)
            response, _ = self._send(method, url, params, data)
            if response.status_code == 401:
                raise ConstantContactAuthError(
                    f"Constant Contact refused a freshly refreshed access token on {method} {path}: "
                    "check the API key's scopes and that the app is active"
                )
        return self._parse(method, path, response, text=text)

    @staticmethod
    def _error_details(response: requests.Response) -> tuple[str | None, str]:
        try:
            body = response.json()
        except ValueError:
            return None, response.reason or "no error details"
        if isinstance(body, list) and body and isinstance(body[0], dict):
            body = body[0]
        if isinstance(body, dict):
            key = body.get("error_key") or body.get("error")
            message = body.get("error_message") or body.get("message") or response.reason or ""
            return (str(key) if key else None), redact_emails(str(message))[:500]
        return None, response.reason or "no error details"

    def _parse(self, method: str, path: str, response: requests.Response, *, text: bool = False) -> Any:
        status = response.status_code
        if status >= 400:
            key, message = self._error_details(response)
            if status == 429 and key == "quota_exceeded":
                raise ConstantContactQuotaExceeded(next_utc_midnight(), method=method, path=path)
            raise ConstantContactApiError(status, key, message, method=method, path=path)
        if text:
            try:
                return response.content.decode("utf-8-sig")  # CSV files may open with a BOM
            except UnicodeDecodeError as exc:
                raise ConstantContactMalformedResponse(
                    method, path, f"a file that is not UTF-8 ({exc})"
                ) from None
        if status == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ConstantContactMalformedResponse(
                method, path, f"{len(response.content)} bytes that are not valid JSON ({exc})"
            ) from None

    # -- reading -------------------------------------------------------------------------------

    def paginate(self, path: str, item_key: str, params: Mapping[str, Any] | None = None) -> Iterator[dict]:
        """Yield every item of a collection, following ``_links.next.href`` page by page."""
        for page in self.pages(path, item_key, params):
            yield from page

    def pages(
        self, path: str, item_key: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[list[dict]]:
        """Yield a collection page by page (for a caller that commits per page), following
        ``_links.next.href``."""
        next_path: str | None = path
        next_params: Mapping[str, Any] | None = params
        pages = 0
        while next_path:
            body = self._request("GET", next_path, params=next_params)
            items = body.get(item_key) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ConstantContactMalformedResponse(
                    "GET", urlsplit(self._url(next_path)).path, f"no '{item_key}' list"
                )
            pages += 1
            yield items
            href = ((body.get("_links") or {}).get("next") or {}).get("href")
            if href and href == next_path:
                raise ConstantContactMalformedResponse("GET", path, "a next link to the same page")
            next_path, next_params = (href, None) if href else (None, None)
        self.log.debug("Read %d page(s) of %s", pages, path)

    def iter_contacts(
        self,
        *,
        status: ContactStatus | str | Sequence[ContactStatus | str] | None = ContactStatus.ALL,
        email: str | None = None,
        lists: Sequence[str] | None = None,
        updated_after: datetime | str | None = None,
        updated_before: datetime | str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        optout_after: datetime | str | None = None,
        optout_before: datetime | str | None = None,
        include: Sequence[str] | None = CONTACT_INCLUDES,
        limit: int = PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Yield contacts (``GET /v3/contacts``) page by page; the arguments are the API's filters.

        ``status`` defaults to ``all`` (deleted contacts included: the sync must see deletions);
        datetimes must be timezone-aware. ``updated_after`` misses opt-outs (they only move the
        email address's time): use ``optout_after`` for those. The API's ``segment_id``, ``tags``
        and ``sms_status`` filters are not offered: the sync does not use them, and the emulator
        the tests run against does not implement them.
        """
        if lists is not None and len(lists) > 25:
            raise ValueError("the lists filter takes at most 25 list ids")
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = _csv([status] if isinstance(status, str) else status)
        filters = {
            "email": email,
            "lists": _csv(lists) if lists else None,
            "include": _csv(include) if include else None,
        }
        dates = {
            "updated_after": updated_after,
            "updated_before": updated_before,
            "created_after": created_after,
            "created_before": created_before,
            "optout_after": optout_after,
            "optout_before": optout_before,
        }
        params.update({k: v for k, v in filters.items() if v})
        params.update({k: _iso(v) for k, v in dates.items() if v is not None})
        return self.paginate("contacts", "contacts", params)

    def get_contact(
        self, contact_id: str, *, include: Sequence[str] | None = CONTACT_INCLUDES
    ) -> dict[str, Any]:
        params = {"include": _csv(include)} if include else None
        return self._expect_dict("GET", f"contacts/{contact_id}", params=params)

    def create_contact(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v3/contacts`` (never ``sign_up_form``, which would re-subscribe people)."""
        if "create_source" not in body:
            raise ValueError("a new contact needs create_source ('Account' for sync traffic)")
        return self._expect_dict("POST", "contacts", json_body=dict(body))

    def update_contact(self, contact_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /v3/contacts/{id}``: ``body`` must be complete (see ``convert.merge_contact_for_put``)."""
        if "update_source" not in body:
            raise ValueError("a contact update needs update_source")
        return self._expect_dict("PUT", f"contacts/{contact_id}", json_body=dict(body))

    def _expect_dict(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = self._request(method, path, **kwargs)
        if not isinstance(body, dict):
            raise ConstantContactMalformedResponse(method, path, "expected a JSON object")
        return body

    # -- lists and custom fields ---------------------------------------------------------------

    def iter_lists(self, *, name: str | None = None, include_count: bool = False) -> Iterator[ContactList]:
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if name:
            params["name"] = name
        if include_count:
            params["include_membership_count"] = "all"
        for item in self.paginate("contact_lists", "lists", params):
            yield ContactList.from_api(item)

    def get_list_by_name(self, name: str) -> ContactList | None:
        """The list with exactly this name (CC list names are unique per account), or None."""
        return next((lst for lst in self.iter_lists(name=name) if lst.name == name), None)

    def create_list(self, name: str, description: str | None = None) -> ContactList:
        body: dict[str, Any] = {"name": name, "favorite": False}
        if description:
            body["description"] = description
        return ContactList.from_api(self._expect_dict("POST", "contact_lists", json_body=body))

    def get_or_create_list(self, name: str, description: str | None = None) -> ContactList:
        existing = self.get_list_by_name(name)
        if existing:
            return existing
        try:
            return self.create_list(name, description)
        except ConstantContactApiError as exc:
            if exc.status != 409:
                raise
            # Someone created it between our lookup and our POST.
            found = self.get_list_by_name(name)
            if found is None:
                raise
            return found

    def list_custom_fields(self) -> list[CustomField]:
        return [
            CustomField.from_api(item)
            for item in self.paginate("contact_custom_fields", "custom_fields", {"limit": 100})
        ]

    def custom_field_names(self) -> dict[str, str]:
        """``custom_field_id`` -> ``name``: what ``convert.contacts_to_frame`` needs."""
        return {cf.custom_field_id: cf.name for cf in self.list_custom_fields()}

    def create_custom_field(self, label: str, field_type: str = "string") -> CustomField:
        body = {"label": label, "type": field_type}
        return CustomField.from_api(self._expect_dict("POST", "contact_custom_fields", json_body=body))

    # -- bulk activities -----------------------------------------------------------------------

    def get_activity(self, activity_id: str) -> Activity:
        body = self._expect_dict("GET", f"activities/{activity_id}")
        try:
            return Activity.from_api(body)
        except (KeyError, ValueError) as exc:
            raise ConstantContactMalformedResponse(
                "GET", f"/v3/activities/{activity_id}", repr(exc)
            ) from None

    def _start_activity(self, path: str, *, json_body: Any = None, data: bytes | None = None) -> Activity:
        body = self._request("POST", path, json_body=json_body, data=data)
        try:
            return Activity.from_api(body)
        except (KeyError, ValueError, TypeError) as exc:
            raise ConstantContactMalformedResponse("POST", f"/v3/{path}", repr(exc)) from None

    def _submit(self, request: ActivityRequest, send: int, on_accepted: ActivityCallback | None) -> Activity:
        activity = self._start_activity(request.path, data=request.body)
        self.log.info(
            "%s: %d item(s) (%d bytes) -> activity %s%s",
            request.path,
            len(request.items),
            len(request.body),
            activity.activity_id,
            f" (send {send})" if send > 1 else "",
        )
        if on_accepted is not None:
            # Before any poll: a crash from here on leaves the caller a record to poll, not resend.
            on_accepted(AcceptedActivity(request, activity.activity_id, send))
        return activity

    def _look_up_activity(self, activity_id: str) -> Activity | None:
        """An activity accepted earlier, as CC shows it now; None when CC no longer knows it."""
        try:
            activity = self.get_activity(activity_id)
        except ConstantContactApiError as exc:
            if exc.status != 404:
                raise
            self.log.warning(
                "Activity %s accepted earlier is unknown to Constant Contact: sending again", activity_id
            )
            return None
        self.polls += 1
        self.log.info("Activity %s accepted earlier: %s", activity_id, activity.state.value)
        return activity

    def run_activities(
        self,
        requests: Sequence[ActivityRequest],
        *,
        resume: Mapping[str, str] | None = None,
        on_accepted: ActivityCallback | None = None,
        resubmit_failed: int = 0,
        wait: bool = True,
    ) -> list[Activity]:
        """Send bulk requests, poll their activities, and send again those whose activity failed.

        :param resume: request key (:attr:`ActivityRequest.key`) -> the activity CC accepted for it
            earlier (say, before a crash): that activity is polled instead of the request being sent.
        :param on_accepted: called as soon as CC accepts a request (first send or resend), before
            any poll, so the caller can journal it.
        :param resubmit_failed: how many times a request is sent again when its activity ends
            failed, cancelled or timed out; what still fails after that is returned as it ended.
        :param wait: poll until every activity ends (else return them as accepted, and resend none).
        :return: each request's last activity, in the order of ``requests``.
        """
        resume = resume or {}
        activities: list[Activity] = []
        for request in requests:
            earlier = resume.get(request.key)
            activity = self._look_up_activity(earlier) if earlier else None
            activities.append(activity or self._submit(request, 1, on_accepted))
        if not wait:
            return activities
        activities = self.wait_for_activities(activities)
        for send in range(2, resubmit_failed + 2):
            failed = [i for i, a in enumerate(activities) if not a.state.is_success()]
            if not failed:
                break
            for i in failed:
                self.log.warning(
                    "Activity %s (%s, %d item(s)) ended %s: sending its request again (resend %d of %d)",
                    activities[i].activity_id,
                    requests[i].path,
                    len(requests[i].items),
                    activities[i].state.value,
                    send - 1,
                    resubmit_failed,
                )
                activities[i] = self._submit(requests[i], send, on_accepted)
                self.activity_resubmissions += 1
            for i, activity in zip(
                failed, self.wait_for_activities([activities[i] for i in failed]), strict=True
            ):
                activities[i] = activity
        return activities

    def wait_for_activities(
        self, activities: Sequence[Activity], *, timeout: float = ACTIVITY_TIMEOUT_SECONDS
    ) -> list[Activity]:
        """Poll until every activity is finished, one poll at a time, logging progress.

        The first poll comes about a second after the call, later ones at least two seconds
        apart (growing to ten), whichever activity they are for: the poll rate is what the
        daily budget feels, not how many activities run.
        """
        results = {a.activity_id: a for a in activities}
        pending = [a.activity_id for a in activities if not a.state.is_terminal()]
        interval = FIRST_POLL_AFTER_SECONDS
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise ConstantContactError(
                    f"bulk activities {pending} not finished after {timeout:.0f} s; poll them again later"
                )
            time.sleep(interval)
            activity_id = pending[0]
            activity = self.get_activity(activity_id)
            self.polls += 1
            results[activity_id] = activity
            self.log.info(
                "Activity %s: %s, %d%% done (%d of %d activities finished)",
                activity_id,
                activity.state.value,
                activity.percent_done,
                len(results) - len(pending) + (1 if activity.state.is_terminal() else 0),
                len(results),
            )
            if activity.state.is_terminal():
                pending.pop(0)
                if activity.state.is_success():
                    # The next activity has been running alongside: look at it soon.
                    interval = MIN_POLL_INTERVAL_SECONDS
                    continue
            interval = min(
                max(interval * POLL_INTERVAL_GROWTH, MIN_POLL_INTERVAL_SECONDS), MAX_POLL_INTERVAL_SECONDS
            )
        return [results[a.activity_id] for a in activities]

    def import_contacts(
        self,
        rows: Iterable[Mapping[str, Any]],
        list_ids: list[str],
        *,
        wait: bool = True,
        resume: Mapping[str, str] | None = None,
        on_accepted: ActivityCallback | None = None,
        resubmit_failed: int = 0,
    ) -> ImportResult:
        """Bulk-import contacts (``contacts_json_import``) and return what CC took and refused.

        :param rows: ``JsonImportContact`` rows (``convert.frame_to_import_rows``); missing keys
            leave CC's values as they are. No permission is sent: CC keeps an existing contact's.
        :param list_ids: 1-50 lists to add the contacts to (CC never re-adds an unsubscribed
            contact: see ``ImportResult.cannot_add_to_list_count``).
        :param wait: poll the activities until they finish (else return them as started).
        :param resume, on_accepted, resubmit_failed: as for :meth:`run_activities`; the requests'
            items are positions in ``rows``, and the same rows and lists make the same requests.
        """
        calls_before, polls_before = self.api_calls, self.polls
        resubmissions_before = self.activity_resubmissions
        rows = list(rows)
        chunks, errors = bulk.plan_import(
            rows, list_ids, max_contacts=bulk.MAX_IMPORT_CONTACTS, max_bytes=bulk.MAX_IMPORT_BYTES
        )
        result = ImportResult(submitted=sum(len(c.rows) for c in chunks), errors=list(errors))
        if errors:
            self.log.warning(
                "%d import row(s) rejected before sending (see the result's errors)", len(errors)
            )
        requests = [ActivityRequest(IMPORT_PATH, chunk.body, tuple(chunk.rows)) for chunk in chunks]
        result.activities = self.run_activities(
            requests, resume=resume, on_accepted=on_accepted, resubmit_failed=resubmit_failed, wait=wait
        )
        for activity, chunk in zip(result.activities, chunks, strict=True):
            result.rows_by_activity[activity.activity_id] = list(chunk.rows)
            row_of = _error_row_finder(rows, chunk.rows)
            result.errors.extend(
                RowError(reason=redact_emails(message), row=row_of(message), activity_id=activity.activity_id)
                for message in activity.activity_errors
            )
            if activity.state.is_terminal() and not activity.state.is_success():
                result.errors.append(
                    RowError(
                        reason=f"activity ended {activity.state.value}: its {len(chunk.rows)} contacts "
                        "may not be imported; a rerun sends them again",
                        activity_id=activity.activity_id,
                    )
                )
        result.api_calls = self.api_calls - calls_before
        result.polls = self.polls - polls_before
        result.resubmitted = self.activity_resubmissions - resubmissions_before
        self.log.info("Import finished: %s", result.summary())
        return result

    def membership_requests(
        self, path: str, contact_ids: Sequence[str], list_ids: Sequence[str]
    ) -> list[ActivityRequest]:
        """A membership activity's requests, 500 contact ids each (items: positions in the ids)."""
        if not list_ids or len(list_ids) > 50:
            raise ValueError("a membership activity takes 1 to 50 list ids")
        return _contact_id_requests(path, contact_ids, "list_ids", list_ids, MAX_IDS_PER_MEMBERSHIP_ACTIVITY)

    def _membership_activities(
        self,
        path: str,
        contact_ids: Sequence[str],
        list_ids: Sequence[str],
        wait: bool,
        resume: Mapping[str, str] | None,
        on_accepted: ActivityCallback | None,
        resubmit_failed: int,
    ) -> list[Activity]:
        return self.run_activities(
            self.membership_requests(path, contact_ids, list_ids),
            resume=resume,
            on_accepted=on_accepted,
            resubmit_failed=resubmit_failed,
            wait=wait,
        )

    def add_list_memberships(
        self,
        contact_ids: Sequence[str],
        list_ids: Sequence[str],
        *,
        wait: bool = True,
        resume: Mapping[str, str] | None = None,
        on_accepted: ActivityCallback | None = None,
        resubmit_failed: int = 0,
    ) -> list[Activity]:
        """Add contacts to lists, 500 contact ids per activity (unsubscribed contacts stay off).

        ``resume``, ``on_accepted``, ``resubmit_failed``: see :meth:`run_activities`.
        """
        return self._membership_activities(
            "activities/add_list_memberships",
            contact_ids,
            list_ids,
            wait,
            resume,
            on_accepted,
            resubmit_failed,
        )

    def remove_list_memberships(
        self,
        contact_ids: Sequence[str],
        list_ids: Sequence[str],
        *,
        wait: bool = True,
        resume: Mapping[str, str] | None = None,
        on_accepted: ActivityCallback | None = None,
        resubmit_failed: int = 0,
    ) -> list[Activity]:
        """Remove contacts from lists, 500 contact ids per activity.

        ``resume``, ``on_accepted``, ``resubmit_failed``: see :meth:`run_activities`.
        """
        return self._membership_activities(
            "activities/remove_list_memberships",
            contact_ids,
            list_ids,
            wait,
            resume,
            on_accepted,
            resubmit_failed,
        )

    def export_contacts(
        self,
        *,
        list_id: str,
        fields: Sequence[str] = EXPORT_ID_FIELDS,
        status: ExportStatus | None = None,
    ) -> list[dict[str, str]]:
        """Every contact of a list, as one CSV export: a ``contact_exports`` activity, its polls,
        and one read of its file, whatever the list's size (a page-by-page read costs one call per
        :data:`PAGE_SIZE` contacts).

        :param fields: the columns to export (``contact_id`` is always there: see
            :data:`EXPORT_ID_FIELDS`); the spec's names (``email_address``, ``first_name``, ...).
        :param status: only the list's contacts with this status (else all but the deleted).
        :return: one dict per contact, keyed by column name (lower case, ``_`` for spaces), values
            as text ("" when empty).
        """
        body: dict[str, Any] = {
            "list_ids": [list_id],
            "fields": [f for f in fields if f != CONTACT_ID_COLUMN],
        }
        if status is not None:
            body["status"] = status.value
        activity = self._start_activity(EXPORT_PATH, json_body=body)
        self.log.info("%s: list %s -> activity %s", EXPORT_PATH, list_id, activity.activity_id)
        [activity] = self.wait_for_activities([activity])
        if not activity.state.is_success():
            raise ConstantContactError(
                f"the export of list {list_id} (activity {activity.activity_id}) ended "
                f"{activity.state.value}: {redact_emails('; '.join(activity.activity_errors))[:500]}"
            )
        if not activity.results_href:
            raise ConstantContactMalformedResponse(
                "GET", f"/v3/activities/{activity.activity_id}", "a finished export without a results link"
            )
        rows = _csv_rows(self._request("GET", activity.results_href, text=True))
        if rows and CONTACT_ID_COLUMN not in rows[0]:
            raise ConstantContactMalformedResponse(
                "GET",
                urlsplit(self._url(activity.results_href)).path,
                f"an export file without {CONTACT_ID_COLUMN}",
            )
        self.log.info("Export of list %s: %d contact(s)", list_id, len(rows))
        return rows

    # -- tags ----------------------------------------------------------------------------------

    def iter_tags(self) -> Iterator[Tag]:
        """Every tag of the account (``GET /v3/contact_tags``, 500 a page)."""
        for item in self.paginate("contact_tags", "tags", {"limit": PAGE_SIZE}):
            try:
                yield Tag.from_api(item)
            except (KeyError, TypeError) as exc:
                raise ConstantContactMalformedResponse("GET", "/v3/contact_tags", repr(exc)) from None

    def create_tag(self, name: str) -> Tag:
        """``POST /v3/contact_tags``; a name taken already is a 409 (see :meth:`get_or_create_tags`)."""
        body = self._expect_dict("POST", "contact_tags", json_body={"name": name})
        try:
            return Tag.from_api(body)
        except (KeyError, TypeError) as exc:
            raise ConstantContactMalformedResponse("POST", "/v3/contact_tags", repr(exc)) from None

    def get_or_create_tags(
        self, names: Iterable[str], known: Mapping[str, Tag] | None = None
    ) -> dict[str, Tag]:
        """``name`` -> tag for each name, creating those the account lacks (one call each).

        :param known: the account's tags by name when the caller read them already (else one read).
        """
        by_name = dict(known) if known is not None else {tag.name: tag for tag in self.iter_tags()}
        for name in dict.fromkeys(names):
            if name in by_name:
                continue
            try:
                by_name[name] = self.create_tag(name)
            except ConstantContactApiError as exc:
                if exc.status != 409:
                    raise
                # Made by someone else between our read and our POST.
                by_name.update({tag.name: tag for tag in self.iter_tags()})
                if name not in by_name:
                    raise
        return by_name

    def tagging_requests(
        self, path: str, contact_ids: Sequence[str], tag_ids: Sequence[str]
    ) -> list[ActivityRequest]:
        """A tagging activity's requests, 500 contact ids each (items: positions in the ids); send them
        with :meth:`run_activities`, several tags' together so their polls overlap. Tagging changes no
        permission to send: an unsubscribed contact is tagged and stays unsubscribed."""
        if not tag_ids or len(tag_ids) > MAX_TAGS_PER_TAGGING_ACTIVITY:
            raise ValueError(f"a tagging activity takes 1 to {MAX_TAGS_PER_TAGGING_ACTIVITY} tag ids")
        return _contact_id_requests(path, contact_ids, "tag_ids", tag_ids, MAX_IDS_PER_TAGGING_ACTIVITY)

    # -- campaigns and tracking reports (scope campaign_data) -----------------------------------

    def iter_campaigns(
        self,
        *,
        after: datetime | str | None = None,
        before: datetime | str | None = None,
        limit: int = PAGE_SIZE,
    ) -> Iterator[EmailCampaign]:
        """Email campaigns (``GET /v3/emails``) last updated after ``after`` and before ``before``.

        The collection leaves out the campaigns' activities: :meth:`get_campaign` has them.
        """
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after_date"] = _iso(after)
        if before is not None:
            params["before_date"] = _iso(before)
        for body in self.paginate("emails", "campaigns", params):
            yield EmailCampaign.from_api(body)

    def get_campaign(self, campaign_id: str) -> EmailCampaign:
        """One campaign with its activities (``GET /v3/emails/{campaign_id}``)."""
        return EmailCampaign.from_api(self._expect_dict("GET", f"emails/{campaign_id}"))

    def iter_tracking(
        self,
        campaign_activity_id: str,
        kind: TrackingKind | str,
        *,
        stop_at: datetime | None = None,
        limit: int = PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Tracking events of one campaign activity, most recent first, as the report lists them.

        With ``stop_at`` (a high-water mark), stops at the first event created at or before it and
        reads no further page: an incremental pull costs the pages of new events only (plus one).
        """
        kind = TrackingKind(kind)
        path = f"reports/email_reports/{campaign_activity_id}/tracking/{kind.value}"
        for event in self.paginate(path, "tracking_activities", {"limit": limit}):
            if stop_at is not None:
                created = parse_utc(event.get("created_time"))
                if created is None:
                    raise ConstantContactMalformedResponse(
                        "GET", path, "a tracking event without created_time"
                    )
                if created <= stop_at:
                    return
            yield event

    # -- events and their registrations (scope campaign_data) ---------------------------------

    def iter_events(self, *, limit: int = EVENT_PAGE_SIZE) -> Iterator[Event]:
        """Every event of the account (``GET /v3/events``, at most 100 a page as the spec says)."""
        for body in self.paginate("events", "records", {"limit": limit}):
            if not isinstance(body, dict) or not body.get("event_id"):
                raise ConstantContactMalformedResponse("GET", "/v3/events", "an event without event_id")
            yield Event.from_api(body)

    def get_event_track(self, event_id: str) -> str:
        """The event's default track id (``GET /v3/events/{event_id}``): registrations live under it."""
        body = self._expect_dict("GET", f"events/{event_id}")
        track_id = (body.get("default_track") or {}).get("track_id")
        if not track_id:
            raise ConstantContactMalformedResponse(
                "GET", f"/v3/events/{event_id}", "an event without a track"
            )
        return str(track_id)

    def registration_pages(
        self, event_id: str, track_id: str, *, limit: int = REGISTRATION_PAGE_SIZE
    ) -> Iterator[list[Registration]]:
        """A track's registrations page by page (``GET .../tracks/{track_id}/registrations``).

        The listing has no time filter (the spec's filters are statuses, a search text and a sort on
        names or totals), so each read is the whole track: the caller stores it per page."""
        path = f"events/{event_id}/tracks/{track_id}/registrations"
        for page in self.pages(path, "records", {"limit": limit}):
            if not all(isinstance(body, dict) and body.get("registration_id") for body in page):
                raise ConstantContactMalformedResponse(
                    "GET", f"/v3/{path}", "a registration without registration_id"
                )
            yield [Registration.from_api(event_id, track_id, body) for body in page]

    def get_account_details(self) -> dict[str, Any]:
        """The account summary with its physical address (one call to ``GET /v3/account/summary``)."""
        return self._expect_dict("GET", "account/summary", params={"extra_fields": "physical_address"})

    # -- account -------------------------------------------------------------------------------

    def get_account_summary(self) -> dict[str, Any]:
        return self._expect_dict("GET", "account/summary")

    def quota_usage(self) -> QuotaUsage:
        """Today's calls as the shared state counts them (all workers together)."""
        settings = self.settings
        return self.state.usage(settings.client_id, settings.daily_budget or 0, settings.budget_reserve)

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's convention: (ok, message), for the connection form's Test button and
        ``airflow connections test``.

        It proves the API key, the client secret and the refresh token by a real token exchange
        (a cached access token would hide a wrong secret until it expires), storing the rotated
        refresh token in the shared state under the authorization's row before anything else uses
        it, then names the account (organisation, owner, masked contact email, physical address).
        A refusal says which credential is wrong. Two calls: the exchange and the account summary.
        """
        from cc_sync.account import AccountSummary  # it builds on this hook

        try:
            self.tokens.refresh(force=True)
            summary = AccountSummary.from_api(self.get_account_details())
        except ConstantContactAuthError as exc:
            if exc.credential == "client":
                return False, f"Wrong API key or client secret: {exc}"
            if exc.credential == "refresh_token":
                return False, f"The refresh token was refused: re-authorize. {exc}"
            return False, str(exc)
        except ConstantContactError as exc:
            return False, str(exc)
        return True, f"Connected; the API key, secret and refresh token work. {summary.describe()}"
