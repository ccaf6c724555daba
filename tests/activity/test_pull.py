"""pull_activity itself (no DAG): an address several members share is attributed to none of them,
and a run that stored its events but died before advancing the watermarks is re-read on the next
run without adding anything twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from cc_sync.activity.pull import ActivityWindow, MatchedBy, pull_activity
from cc_sync.sync.resources import SyncResources

SENT_AT = datetime(2026, 4, 6, 8, 30, tzinfo=UTC)
WINDOW = ActivityWindow(SENT_AT.replace(minute=0), SENT_AT.replace(minute=0) + timedelta(hours=1))


@pytest.fixture
def resources() -> Iterator[SyncResources]:
    made = SyncResources()
    yield made
    made.close()


def test_an_address_several_members_share_is_attributed_to_none(world_factory, sqlite_url, resources):
    world = world_factory(sqlite_url)
    person = world.pick(linked=False)
    with world.engine.begin() as conn:
        # Another active member takes the same address (a household email): no single member owns it.
        conn.execute(
            sa.text(
                "UPDATE members SET email = :email WHERE member_id = (SELECT MIN(member_id) FROM members "
                "WHERE member_id <> :id AND membership_status = 'active' AND deleted_at IS NULL)"
            ),
            {"email": person.email.upper(), "id": int(person.member_id)},
        )
    campaign = world.emulator.admin.send_campaign("Shared", contact_ids=[person.contact_id], at=SENT_AT)
    world.emulator.admin.track(
        campaign["campaign_activity_id"], [{"type": "optout", "contact_id": person.contact_id}]
    )
    summary = pull_activity(resources.cc, resources.members, resources.bookkeeping, WINDOW, run_id="shared")
    assert summary.by_match == {MatchedBy.SHARED_EMAIL.value: 2}
    assert world.activity()["member_id"].isna().all()
    assert summary.members_opted_out == 0
    assert not world.member_opted_out(person.member_id)
    # The opt-out is still in the ledger, against the contact.
    ledger = world.bookkeeping.get_opt_outs()
    assert ledger["contact_id"].tolist() == [person.contact_id]


def test_a_run_that_died_before_its_watermarks_is_read_again_and_adds_nothing(
    world_factory, sqlite_url, resources
):
    world = world_factory(sqlite_url)
    campaign = world.emulator.admin.send_campaign(
        "Crash", contact_ids=[p.contact_id for p in world.people], at=SENT_AT
    )
    opted_out = world.pick(linked=True)
    world.emulator.admin.track(
        campaign["campaign_activity_id"],
        [
            {"type": "open", "contact_id": opted_out.contact_id, "at": SENT_AT + timedelta(minutes=1)},
            {"type": "optout", "contact_id": opted_out.contact_id, "at": SENT_AT + timedelta(minutes=2)},
        ],
    )
    first = pull_activity(resources.cc, resources.members, resources.bookkeeping, WINDOW, run_id="first")
    assert first.events_added == first.events_read == len(campaign["sent_to"]) + 2
    assert first.members_opted_out == 1
    with world.engine.begin() as conn:  # as if the run had died just before set_watermarks
        conn.execute(world.bookkeeping.watermarks.delete())
    ledger_rows = len(world.bookkeeping.get_opt_outs())
    again = pull_activity(resources.cc, resources.members, resources.bookkeeping, WINDOW, run_id="again")
    assert again.events_read == first.events_read
    assert again.events_added == 0
    assert again.members_opted_out == 0  # already opted out: not written again
    assert len(world.bookkeeping.get_opt_outs()) == ledger_rows
    assert world.member_opted_out(opted_out.member_id)
