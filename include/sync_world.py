"""A small world to sync: a member database, the emulator seeded with overlapping contacts, and
the Airflow connections to both. The demo, the DAG tests and the benchmarks all build it here.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from cc_sync.engine.normalise import is_valid_email
from cc_sync.member_db.connection import create_member_engine
from include.airflow_env import PROJECT_ROOT
from include.cc_emulator import DEMO_REFRESH_TOKEN
from include.cc_emulator.testing import EmulatorHandle

CC_CONN_ID = "constant_contact_default"
MEMBER_DB_CONN_ID = "member_db_default"


@dataclass(frozen=True)
class SeedReport:
    """What the emulator was seeded with, relative to the members (counts only)."""

    same_person: int  # same email, same name: the sync links them
    renamed: int  # same email, another first name: a near match for review
    opted_out: int  # linked people who already opted out in CC
    cc_only: int  # contacts with no member


def create_members(db_url: str, members: int, *, seed: int = 7) -> None:
    """The sample member table (include/sample_data.py) in ``db_url``, and the bookkeeping tables."""
    subprocess.run(
        [sys.executable, "-m", "include.sample_data", "--members", str(members), "--db-url", db_url,
         "--seed", str(seed)],
        check=True, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    migrate_bookkeeping(db_url)


def migrate_bookkeeping(db_url: str) -> None:
    from cc_sync.member_db.migrate import upgrade

    engine = create_member_engine(db_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def seed_contacts_from_members(
    emulator: EmulatorHandle,
    db_url: str,
    *,
    share: float = 0.6,
    renamed_share: float = 0.02,
    opted_out_share: float = 0.02,
    cc_only: int = 50,
    seed: int = 11,
    created_at: str | None = None,
) -> SeedReport:
    """Put a share of the active members into CC as contacts (as an earlier manual upload would
    have), a few under another first name or already unsubscribed, plus contacts with no member.
    ``created_at`` (ISO 8601): when the upload was; now when not given."""
    rng = random.Random(seed)
    engine = create_member_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT email, first_name, last_name FROM members "
                "WHERE email IS NOT NULL AND membership_status = 'active' ORDER BY member_id"
            )
        ).all()
    engine.dispose()
    seen: set[str] = set()
    contacts: list[dict[str, Any]] = []
    renamed = opted_out = 0
    opt_outs: list[int] = []
    valid = is_valid_email(pd.Series([r[0] for r in rows], dtype="string")) if rows else []
    for (email, first, last), ok in zip(rows, valid, strict=True):
        key = email.strip().lower()
        # CC holds only well-formed addresses: the members' malformed ones stay members only.
        if not ok or key in seen or rng.random() >= share:
            continue
        seen.add(key)
        roll = rng.random()
        if roll < renamed_share:
            first = f"{first}ina" if first else "Anne"
            renamed += 1
        elif roll < renamed_share + opted_out_share:
            opt_outs.append(len(contacts))
            opted_out += 1
        contacts.append(
            {
                "email_address": {"address": email.strip(), "permission_to_send": "implicit"},
                "first_name": first,
                "last_name": last,
            }
        )
    for number in range(cc_only):
        contacts.append(
            {
                "email_address": {
                    "address": f"cc.only.{number}@example.net",
                    "permission_to_send": "implicit",
                },
                "first_name": "Only",
                "last_name": f"InCC{number}",
            }
        )
    if created_at is not None:
        contacts = [contact | {"created_at": created_at} for contact in contacts]
    ids = emulator.admin.seed_contacts(contacts=contacts)
    for position in opt_outs:
        emulator.admin.opt_out(ids[position], source="Contact", reason="not interested")
    return SeedReport(len(contacts) - cc_only - renamed, renamed, opted_out, cc_only)


def connection_env(
    emulator: EmulatorHandle, member_db_url: str, state_db_uri: str, **cc_extra: Any
) -> dict[str, str]:
    """AIRFLOW_CONN_* variables for both connections (rate limit and budget off unless given)."""
    extra: dict[str, Any] = {
        "refresh_token": DEMO_REFRESH_TOKEN,
        "token_url": emulator.token_url,
        "state_db_uri": state_db_uri,
        "requests_per_second": None,
        "daily_budget": 10_000,
    }
    extra.update(cc_extra)
    cc = {
        "conn_type": "constant_contact",
        "host": emulator.base_url,
        "login": emulator.client_id,
        "password": emulator.client_secret,
        "extra": extra,
    }
    members = {"conn_type": "member_database", "extra": {"sqlalchemy_url": member_db_url}}
    return {
        f"AIRFLOW_CONN_{CC_CONN_ID.upper()}": json.dumps(cc),
        f"AIRFLOW_CONN_{MEMBER_DB_CONN_ID.upper()}": json.dumps(members),
    }
