"""Email campaigns and tracking reports in the emulator: sends skip the unsubscribed, reports answer
the most recent first in cursor pages, clicks carry their link, and an opt-out in tracking also
unsubscribes the contact (as the campaign's unsubscribe link does in CC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from include.cc_emulator.testing import EmulatorHandle
from tests.emulator.conftest import ApiClient

SENT_AT = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
REPORT = "/reports/email_reports/{activity}/tracking/{kind}"


def _walk(api: ApiClient, path: str, item_key: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item of a paged collection and the number of pages read."""
    response = api.get(path, params=params)
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        items.extend(body[item_key])
        href = (body["_links"].get("next") or {}).get("href")
        if not href:
            return items, pages
        response = api.session.get(api.emulator.base_url + href, timeout=60)


@pytest.fixture
def audience(emulator: EmulatorHandle) -> tuple[str, list[str]]:
    list_id = emulator.admin.create_list("Newsletter")
    ids = emulator.admin.seed_contacts(count=12, list_ids=[list_id], seed=3)
    return list_id, ids


def test_a_send_goes_to_the_list_but_not_to_the_unsubscribed(
    emulator: EmulatorHandle, api: ApiClient, audience: tuple[str, list[str]]
) -> None:
    list_id, ids = audience
    emulator.admin.opt_out(ids[0])  # also leaves the list, as in CC
    other = emulator.admin.seed_contacts(count=1, seed=4)[0]
    campaign = emulator.admin.send_campaign(
        "May news", list_ids=[list_id], contact_ids=[other, ids[0]], at=SENT_AT
    )
    assert set(campaign["sent_to"]) == set(ids[1:]) | {other}
    sends, _ = _walk(
        api, REPORT.format(activity=campaign["campaign_activity_id"], kind="sends"), "tracking_activities"
    )
    assert {s["contact_id"] for s in sends} == set(campaign["sent_to"])
    assert all(s["tracking_activity_type"] == "em_sends" for s in sends)
    times = [s["created_time"] for s in sends]
    assert times == sorted(times, reverse=True), "most recent first"


@pytest.mark.parametrize("limit", [1, 5, 500])
def test_tracking_reports_page_most_recent_first(
    emulator: EmulatorHandle, api: ApiClient, audience: tuple[str, list[str]], limit: int
) -> None:
    list_id, ids = audience
    campaign = emulator.admin.send_campaign("Paged", list_ids=[list_id], at=SENT_AT)
    activity = campaign["campaign_activity_id"]
    # Opens arrive out of order; the report still lists them newest first.
    offsets = [7, 2, 9, 4, 1, 8, 3]
    emulator.admin.track(
        activity,
        [
            {"type": "open", "contact_id": ids[i], "at": SENT_AT + timedelta(minutes=m)}
            for i, m in enumerate(offsets)
        ],
    )
    opens, pages = _walk(
        api, REPORT.format(activity=activity, kind="opens"), "tracking_activities", limit=limit
    )
    assert len(opens) == len(offsets)
    assert pages == -(-len(offsets) // limit)
    times = [o["created_time"] for o in opens]
    assert times == sorted(times, reverse=True)
    assert opens[0]["contact_id"] == ids[2]
    assert {o["tracking_activity_type"] for o in opens} == {"em_opens"}


def test_clicks_carry_the_link_and_filter_by_url_id(
    emulator: EmulatorHandle, api: ApiClient, audience: tuple[str, list[str]]
) -> None:
    list_id, ids = audience
    campaign = emulator.admin.send_campaign("Links", list_ids=[list_id], at=SENT_AT)
    activity = campaign["campaign_activity_id"]
    later = SENT_AT + timedelta(hours=1)
    emulator.admin.track(
        activity,
        [
            {"type": "click", "contact_id": ids[0], "at": later, "link_url": "https://example.org/a"},
            {"type": "click", "contact_id": ids[1], "at": later, "link_url": "https://example.org/b"},
            {"type": "click", "contact_id": ids[2], "at": later, "link_url": "https://example.org/a"},
        ],
    )
    clicks, _ = _walk(api, REPORT.format(activity=activity, kind="clicks"), "tracking_activities")
    by_url = {c["link_url"]: c["url_id"] for c in clicks}
    assert set(by_url) == {"https://example.org/a", "https://example.org/b"}
    only_a, _ = _walk(
        api,
        REPORT.format(activity=activity, kind="clicks"),
        "tracking_activities",
        url_id=by_url["https://example.org/a"],
    )
    assert {c["contact_id"] for c in only_a} == {ids[0], ids[2]}


def test_an_opt_out_in_tracking_unsubscribes_the_contact_and_a_bounce_keeps_its_code(
    emulator: EmulatorHandle, api: ApiClient, audience: tuple[str, list[str]]
) -> None:
    list_id, ids = audience
    campaign = emulator.admin.send_campaign("Consent", list_ids=[list_id], at=SENT_AT)
    activity = campaign["campaign_activity_id"]
    at = SENT_AT + timedelta(minutes=30)
    emulator.admin.track(
        activity,
        [
            {"type": "optout", "contact_id": ids[3], "at": at, "reason": "too many emails"},
            {"type": "bounce", "contact_id": ids[4], "at": at, "bounce_code": "F"},
        ],
    )
    optouts, _ = _walk(api, REPORT.format(activity=activity, kind="optouts"), "tracking_activities")
    assert [(o["contact_id"], o["opt_out_reason"]) for o in optouts] == [(ids[3], "too many emails")]
    contact = api.get(f"/contacts/{ids[3]}", params={"include": "list_memberships"}).json()
    assert contact["email_address"]["permission_to_send"] == "unsubscribed"
    assert contact["email_address"]["opt_out_source"] == "Contact"
    assert contact["list_memberships"] == []
    found = api.get("/contacts", params={"optout_after": (at - timedelta(seconds=1)).isoformat()}).json()
    assert ids[3] in {c["contact_id"] for c in found["contacts"]}
    bounces, _ = _walk(api, REPORT.format(activity=activity, kind="bounces"), "tracking_activities")
    assert [(b["contact_id"], b["bounce_code"]) for b in bounces] == [(ids[4], "F")]
    none_of_those, _ = _walk(
        api, REPORT.format(activity=activity, kind="bounces"), "tracking_activities", bounce_code=["B", "Z"]
    )
    assert none_of_those == []


def test_only_recipients_can_act_and_events_are_checked(
    emulator: EmulatorHandle, audience: tuple[str, list[str]]
) -> None:
    list_id, ids = audience
    stranger = emulator.admin.seed_contacts(count=1, seed=9)[0]
    campaign = emulator.admin.send_campaign("Strict", list_ids=[list_id], at=SENT_AT)
    bad_events = [
        {"type": "open", "contact_id": stranger},
        {"type": "wave", "contact_id": ids[0]},
        {"type": "click", "contact_id": ids[0]},
        {"type": "bounce", "contact_id": ids[0], "bounce_code": "Q"},
    ]
    for event in bad_events:
        with pytest.raises(Exception, match="400"):
            emulator.admin.track(campaign["campaign_activity_id"], [event])
    with pytest.raises(Exception, match="409"):
        emulator.admin.send_campaign("Strict", list_ids=[list_id])


def test_campaigns_filter_on_updated_at_and_page(emulator: EmulatorHandle, api: ApiClient) -> None:
    contact = emulator.admin.seed_contacts(count=1, seed=5)
    for day in range(5):
        emulator.admin.send_campaign(f"Day {day}", contact_ids=contact, at=SENT_AT + timedelta(days=day))
    window = {
        "after_date": (SENT_AT + timedelta(hours=12)).isoformat(),
        "before_date": (SENT_AT + timedelta(days=3, hours=12)).isoformat(),
    }
    campaigns, pages = _walk(api, "/emails", "campaigns", limit=2, **window)
    assert [c["name"] for c in campaigns] == ["Day 1", "Day 2", "Day 3"]
    assert pages == 2
    assert all("campaign_activities" not in c for c in campaigns)
    detail = api.get(f"/emails/{campaigns[0]['campaign_id']}").json()
    assert [a["role"] for a in detail["campaign_activities"]] == ["primary_email", "permalink"]
    assert api.get("/emails/00000000-0000-0000-0000-000000000000").status_code == 404
    unknown = REPORT.format(activity="00000000-0000-0000-0000-000000000000", kind="opens")
    assert api.get(unknown).status_code == 404
    primary = detail["campaign_activities"][0]["campaign_activity_id"]
    too_many = api.get(REPORT.format(activity=primary, kind="opens"), params={"limit": 501})
    assert too_many.status_code == 400


def test_campaigns_survive_a_restart_with_a_state_file(tmp_path: Any) -> None:
    from include.cc_emulator.testing import run_emulator

    state_file = tmp_path / "state.json"
    with run_emulator(state_file=state_file, rate_limit_per_second=None) as first:
        ids = first.admin.seed_contacts(count=2, seed=1)
        campaign = first.admin.send_campaign("Kept", contact_ids=ids, at=SENT_AT)
        first.admin.track(campaign["campaign_activity_id"], [{"type": "open", "contact_id": ids[1]}])
        first.admin.save_state()
    with run_emulator(state_file=state_file, rate_limit_per_second=None) as second:
        api = ApiClient(second, second.admin.issue_access_token())
        opens, _ = _walk(
            api, REPORT.format(activity=campaign["campaign_activity_id"], kind="opens"), "tracking_activities"
        )
        assert [o["contact_id"] for o in opens] == [ids[1]]
        api.session.close()
