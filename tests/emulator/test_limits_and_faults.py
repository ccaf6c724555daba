"""Rate limit, daily quota and each switchable fault, seen from a plain HTTP client."""

from __future__ import annotations

import time

import pytest
import requests

from include.cc_emulator.limits import DailyQuota, RateLimiter
from include.cc_emulator.testing import EmulatorHandle
from tests.emulator.conftest import ApiClient


def test_more_than_the_rate_limit_is_throttled(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.configure(rate_limit_per_second=2)
    responses = [api.get("/contacts") for _ in range(12)]
    statuses = [r.status_code for r in responses]
    assert statuses[:2] == [200, 200]
    throttled = [r for r in responses if r.status_code == 429]
    assert throttled
    assert throttled[0].json() == {"error_key": "throttled", "error_message": "Too Many Requests"}
    assert emulator.admin.counters()["throttled"] == len(throttled)


def test_daily_quota_answers_quota_exceeded(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.configure(daily_quota=3)
    statuses = [api.get("/contacts").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    response = api.get("/contacts")
    assert response.json() == {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}
    counters = emulator.admin.counters()
    assert counters["quota_used_today"] == 3
    assert counters["api_calls"] == 6
    emulator.admin.configure(daily_quota=None)
    assert api.get("/contacts").status_code == 200


def test_admin_calls_are_never_counted(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.configure(daily_quota=1)
    emulator.admin.seed_contacts(count=10)
    emulator.admin.all_contacts()
    assert api.get("/contacts").status_code == 200
    counters = emulator.admin.counters()
    assert counters["api_calls"] == 1
    assert counters["endpoints"] == {"GET /v3/contacts": 1}
    [entry] = emulator.admin.request_log()
    assert entry["method"] == "GET"
    assert entry["path"] == "/v3/contacts"
    assert entry["status"] == 200


def test_counters_per_endpoint_use_the_route_template(emulator: EmulatorHandle, api: ApiClient) -> None:
    ids = emulator.admin.seed_contacts(count=2)
    for cid in ids:
        api.get(f"/contacts/{cid}")
    api.get("/contacts", params={"limit": 1})
    endpoints = emulator.admin.counters()["endpoints"]
    assert endpoints == {"GET /v3/contacts/{contact_id}": 2, "GET /v3/contacts": 1}


@pytest.mark.parametrize(
    ("fault", "status", "error_key"),
    [("error_429_rate", 429, "throttled"), ("error_500_rate", 500, None), ("error_503_rate", 503, None)],
)
def test_error_faults(
    emulator: EmulatorHandle, api: ApiClient, fault: str, status: int, error_key: str | None
) -> None:
    emulator.admin.set_faults(**{fault: 1.0})
    response = api.get("/contacts")
    assert response.status_code == status
    if error_key:
        assert response.json()["error_key"] == error_key
    emulator.admin.clear_faults()
    assert api.get("/contacts").status_code == 200


def test_drop_fault_closes_the_connection_without_an_answer(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api.get("/contacts")
    assert emulator.admin.counters()["faults"] == {"drop": 1}
    emulator.admin.clear_faults()
    assert api.get("/contacts").status_code == 200


def test_lost_answer_fault_does_the_work_then_drops_the_connection(
    emulator: EmulatorHandle, api: ApiClient
) -> None:
    emulator.admin.set_faults(lost_answer_rate=1.0)
    body = {"email_address": {"address": "lost@example.org"}, "create_source": "Account"}
    with pytest.raises(requests.ConnectionError):
        api.post("/contacts", json=body)
    emulator.admin.clear_faults()
    assert [c["email_address"]["address"] for c in emulator.admin.all_contacts()] == ["lost@example.org"]
    assert api.post("/contacts", json=body).status_code == 409
    assert emulator.admin.counters()["faults"] == {"lost_answer": 1}


def test_drop_fault_does_not_do_the_work(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api.post(
            "/contacts", json={"email_address": {"address": "d@example.org"}, "create_source": "Account"}
        )
    assert emulator.admin.all_contacts() == []


def test_truncate_fault_sends_half_a_json_body(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.seed_contacts(count=20)
    emulator.admin.set_faults(truncate_rate=1.0)
    response = api.get("/contacts")
    assert response.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    emulator.admin.clear_faults()
    assert len(response.content) == len(api.get("/contacts").content) // 2


def test_slow_fault_delays_the_answer(emulator: EmulatorHandle, api: ApiClient) -> None:
    emulator.admin.set_faults(slow_rate=1.0, slow_seconds=2.0)
    with pytest.raises(requests.ReadTimeout):
        api.get("/contacts", timeout=0.3)
    assert emulator.admin.counters()["faults"]["slow"] == 1
    # Let the delayed request finish here, so it is not logged in the next test's counters.
    for _ in range(200):
        if emulator.admin.request_log():
            break
        time.sleep(0.05)
    assert emulator.admin.request_log()[0]["status"] == 200


def test_faults_are_reproducible_from_their_seed(emulator: EmulatorHandle, api: ApiClient) -> None:
    def run(seed: int) -> list[int]:
        emulator.admin.set_faults(error_500_rate=0.3, error_503_rate=0.2, seed=seed)
        return [api.get("/contacts").status_code for _ in range(30)]

    first, again, other = run(42), run(42), run(43)
    assert first == again
    assert first != other
    assert {200, 500, 503} <= set(first)


def test_bad_fault_settings_are_refused(emulator: EmulatorHandle) -> None:
    with pytest.raises(Exception, match="between 0 and 1"):
        emulator.admin.set_faults(error_500_rate=1.5)
    with pytest.raises(Exception, match="unknown emulator setting"):
        emulator.admin.configure(rate_limt_per_second=3)


def test_daily_quota_starts_again_on_a_new_utc_day() -> None:
    quota = DailyQuota()
    assert [quota.allow(2) for _ in range(3)] == [True, True, False]
    quota.day = "2000-01-01"  # as if the last request was made before 00:00 UTC
    assert quota.allow(2) is True
    assert quota.used == 1


@pytest.mark.parametrize(("per_second", "allowed"), [(None, 10), (1, 1), (4, 4), (2.5, 3)])
def test_rate_limiter_allows_per_second_requests_in_a_burst(per_second: float | None, allowed: int) -> None:
    limiter = RateLimiter()
    assert sum(limiter.allow(per_second) for _ in range(10)) == allowed
