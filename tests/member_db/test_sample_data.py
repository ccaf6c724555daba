"""The sample member data holds what real member tables hold, and the command fills each dialect."""

from __future__ import annotations

import warnings

import pandas as pd
import sqlalchemy as sa

from include import sample_data
from include.sample_data import INVALID_EMAILS, generate_members, main


def test_generated_members_have_the_awkward_cases() -> None:
    members = generate_members(5_000, seed=3)
    assert len(members) == 5_000
    assert members["member_id"].is_unique
    emails = members["email"].dropna().str.strip().str.lower()
    assert members["email"].isna().sum() > 50  # members without email
    assert emails.duplicated().sum() > 100  # shared household emails
    assert emails.isin(INVALID_EMAILS).sum() >= 3  # a few invalid emails
    assert members["email_opt_out"].sum() > 100
    assert (members["membership_status"] == "lapsed").sum() > 400
    assert members["deleted_at"].notna().sum() > 10
    names = pd.concat([members["first_name"], members["last_name"]])
    assert names.str.contains(r"[^\x00-\x7f]").sum() > 100  # accented and other non-ASCII letters
    sample_data._pools.cache_clear()  # Faker's draws too, not only the cached pools
    assert members.equals(generate_members(5_000, seed=3))  # deterministic per seed


def test_command_fills_each_dialect(database_url: str) -> None:
    assert main(["--members", "250", "--db-url", database_url, "--seed", "5"]) == 0
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM members")).scalar() == 250
            opted = conn.execute(
                sa.text("SELECT count(*) FROM members WHERE email_opt_out = :t"), {"t": True}
            )
            assert opted.scalar() > 0
        with warnings.catch_warnings():  # the lower(trim(email)) index cannot be reflected; fine here
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            index_names = {ix["name"] for ix in sa.inspect(engine).get_indexes("members")}
        assert {"ix_members_updated_at", "ix_members_last_name"} <= index_names
    finally:
        engine.dispose()
