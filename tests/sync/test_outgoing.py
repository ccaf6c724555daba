"""screen_outgoing: the mapping's rules applied to real engine plans (tests/engine/world.py).

A refused person sends nothing to Constant Contact but an unsubscribe, keeps CC's value in the base
for what was held back (so a later edit on either side stays one-sided), and still takes CC's
changes into the member database; the name placeholder replaces a required name a PUT would blank.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cc_sync.member_db.mapping import load_mapping
from cc_sync.policy import FieldPolicy
from cc_sync.sync.outgoing import screen_outgoing
from cc_sync.sync.resources import DEFAULT_MAPPING_PATH
from tests.engine.world import World

MAPPING = load_mapping(DEFAULT_MAPPING_PATH)  # name_placeholder: Unknown; required: email, last_name


def _world() -> World:
    world = World()
    for i in range(2):
        world.add_linked(
            f"m{i}", f"c{i}", email=f"p{i}@example.org", first_name="Ann", last_name=f"L{i}", city="York"
        )
    world.last_sync = world.now()
    return world


def _row(frame: pd.DataFrame, member_id: str) -> dict:
    rows = frame[frame["member_id"].astype(str) == member_id].to_dict("records")
    assert len(rows) == 1, (member_id, frame)
    return rows[0]


def test_a_refused_email_change_is_held_back_and_the_rest_of_the_person_syncs() -> None:
    world = _world()
    world.edit_member("m0", email="p0..bad@example.org")  # the engine's loose check lets it through
    world.edit_contact("c0", city="Leeds")
    world.edit_member("m1", city="Bath")

    plan = screen_outgoing(world.plan(), MAPPING)

    assert plan.cc_puts.empty  # m0's email change held back
    assert plan.cc_updates["member_id"].tolist() == ["m1"]
    assert _row(plan.member_updates, "m0")["city"] == "Leeds"  # CC's change still reaches the member
    base = _row(plan.new_base, "m0")
    assert base["email"] == "p0@example.org"  # CC's address: the member's change stays one-sided
    assert base["city"] == "Leeds"
    rejected = _row(plan.rejected, "m0")
    assert (rejected["field"], rejected["reason"]) == ("email", "invalid_email")
    assert rejected["contact_id"] == "c0"
    to_cc = plan.changes[plan.changes["direction"] == "to_cc"]
    assert to_cc["member_id"].tolist() == ["m1"]

    # Applied, and planned again: the same member-side change, refused again; nothing else moves.
    world.apply(plan)
    again = screen_outgoing(world.plan(changed_only=False), MAPPING)
    assert not again.writes_anything
    assert _row(again.rejected, "m0")["field"] == "email"


def test_an_unsubscribe_goes_even_when_the_row_is_refused() -> None:
    world = _world()
    world.edit_member("m0", email="p0..bad@example.org", opted_out=True)

    plan = screen_outgoing(world.plan(), MAPPING)

    put = _row(plan.cc_puts, "m0")
    assert put["unsubscribe"]
    assert pd.isna(put["email_change"])
    assert set(plan.changes.loc[plan.changes["direction"] == "to_cc", "field"]) == {"opted_out"}
    assert _row(plan.new_base, "m0")["opted_out"]


@pytest.mark.parametrize("placeholder", [True, False])
def test_a_blanked_required_name_takes_the_placeholder_or_is_refused(placeholder: bool) -> None:
    mapping = MAPPING if placeholder else load_mapping_without_placeholder()
    world = _world()
    world.edit_member("m0", last_name=None)
    policies = {f: FieldPolicy(blank_overwrites=True) for f in world.fields}

    plan = screen_outgoing(world.plan(policies=policies), mapping)

    if placeholder:
        put = _row(plan.cc_puts, "m0")
        assert put["last_name"] == "Unknown"
        assert pd.isna(put["cleared_fields"]) or "last_name" not in str(put["cleared_fields"])
        assert plan.rejected.empty
    else:
        assert plan.cc_puts.empty
        assert _row(plan.rejected, "m0")["reason"] == "required_blank"
        assert _row(plan.new_base, "m0")["last_name"] == "L0"


def load_mapping_without_placeholder():
    from cc_sync.member_db.mapping import parse_mapping

    text = DEFAULT_MAPPING_PATH.read_text(encoding="utf-8").replace("name_placeholder: Unknown", "")
    return parse_mapping(text, source="no_placeholder.yaml")
