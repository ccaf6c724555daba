"""State kept in a file: a restarted emulator still has its account and its rotated refresh token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from include.cc_emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN
from include.cc_emulator.__main__ import build_parser, settings_from_args
from include.cc_emulator.testing import EmulatorHandle, run_emulator


def _refresh(token_url: str, refresh_token: str) -> requests.Response:
    return requests.post(
        token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        timeout=10,
    )


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "emulator-state.json"
    with run_emulator(state_file=state_file) as emulator:
        list_id = emulator.admin.create_list("Kept")
        ids = emulator.admin.seed_contacts(count=25, list_ids=[list_id])
        emulator.admin.opt_out(ids[0], reason="moved away")
        rotated = _refresh(emulator.token_url, DEMO_REFRESH_TOKEN).json()["refresh_token"]
    # Stopping the server wrote the file (no explicit save).
    assert json.loads(state_file.read_text())["format_version"] == 1

    with run_emulator(state_file=state_file) as emulator:
        contacts = {c["contact_id"]: c for c in emulator.admin.all_contacts()}
        assert set(contacts) == set(ids)
        assert contacts[ids[0]]["email_address"]["permission_to_send"] == "unsubscribed"
        assert contacts[ids[1]]["list_memberships"] == [list_id]
        assert _refresh(emulator.token_url, DEMO_REFRESH_TOKEN).json()["error"] == "invalid_grant"
        answer = _refresh(emulator.token_url, rotated)
        assert answer.status_code == 200
        token = answer.json()["access_token"]
        response = requests.get(
            f"{emulator.api_url}/contacts",
            params={"lists": list_id, "include_count": "true"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.json()["contacts_count"] == 24


def test_without_a_state_file_nothing_is_kept(tmp_path: Path) -> None:
    with run_emulator() as emulator:
        emulator.admin.seed_contacts(count=3)
    with run_emulator() as emulator:
        assert emulator.admin.all_contacts() == []
    assert list(tmp_path.iterdir()) == []


def test_command_line_options_become_settings(tmp_path: Path) -> None:
    state_file = str(tmp_path / "s.json")
    args = build_parser().parse_args(
        [
            "--no-rate-limit",
            "--daily-quota",
            "0",
            "--access-token-ttl",
            "60",
            "--seed",
            "5",
            "--state-file",
            state_file,
        ]
    )
    settings = settings_from_args(args)
    assert settings.rate_limit_per_second is None
    assert settings.daily_quota is None
    assert settings.access_token_ttl_seconds == 60
    assert settings.faults.seed == 5
    assert settings.state_file == tmp_path / "s.json"
    defaults = settings_from_args(build_parser().parse_args([]))
    assert (defaults.rate_limit_per_second, defaults.daily_quota) == (4.0, 10_000)


def test_faults_can_be_switched_on_from_the_command_line() -> None:
    args = build_parser().parse_args(
        ["--fault", "error_503_rate=0.25", "--fault", "slow_seconds=1", "--seed", "9"]
    )
    faults = settings_from_args(args).faults
    assert (faults.error_503_rate, faults.slow_seconds, faults.seed) == (0.25, 1.0, 9)
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        settings_from_args(build_parser().parse_args(["--fault", "explode=1"]))


def test_a_snapshot_restores_the_account_its_tokens_and_counters(emulator: EmulatorHandle) -> None:
    list_id = emulator.admin.create_list("Kept")
    ids = emulator.admin.seed_contacts(count=5, list_ids=[list_id])
    rotated = _refresh(emulator.token_url, DEMO_REFRESH_TOKEN).json()["refresh_token"]
    token = emulator.admin.issue_access_token()
    assert requests.get(
        f"{emulator.api_url}/contacts", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).ok
    saved = emulator.admin.snapshot()
    counters = emulator.admin.counters()
    assert counters["api_calls"] == 1

    # Everything changes afterwards: another contact, an opt-out, another refresh, more calls.
    emulator.admin.seed_contacts(count=1)
    emulator.admin.opt_out(ids[0])
    _refresh(emulator.token_url, rotated)
    requests.get(f"{emulator.api_url}/contacts", headers={"Authorization": f"Bearer {token}"}, timeout=10)

    emulator.admin.restore(saved)

    contacts = {c["contact_id"]: c for c in emulator.admin.all_contacts()}
    assert set(contacts) == set(ids)
    assert contacts[ids[0]]["email_address"]["permission_to_send"] == "implicit"
    assert contacts[ids[0]]["list_memberships"] == [list_id]
    assert emulator.admin.current_refresh_token() == rotated
    assert emulator.admin.counters() == counters
    assert requests.get(
        f"{emulator.api_url}/contacts", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).ok
