"""Property test: random edit histories on both sides, synced round after round.

Each round edits both sides in a random interleaving (field edits, blanks, opt-outs, and people
re-subscribing themselves), then plans and applies a sync (full or incremental extract). After
every sync:

- no edit is lost except to a later edit of the same field on the other side (the sides only
  know when a record last changed, so "later" means the other record changed later; a tie goes
  to the member database);
- both sides hold the same value on every two-way field, except where a side blanked a value
  (a blank never wipes);
- the sync never turns an opt-out back into a subscription, and an opt-out on either side since
  the last sync leaves the person opted out on both;
- planning again after the last round writes nothing (the sync converges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.engine.world import World, at, blank

PEOPLE = 3
FIELDS = ("email", "first_name", "last_name", "city", "phone_home")
EDITABLE = ("email", "first_name", "city", "phone_home")


@dataclass(frozen=True)
class Event:
    side: str  # "member" or "cc"
    person: int
    kind: str  # "edit", "blank", "opt_out", "resubscribe"
    field: str
    value: int
    same_instant: bool  # at the very time of the previous event (to exercise the tie rule)


events = st.builds(
    Event,
    side=st.sampled_from(["member", "cc"]),
    person=st.integers(0, PEOPLE - 1),
    kind=st.sampled_from(["edit", "edit", "edit", "blank", "opt_out", "resubscribe"]),
    field=st.sampled_from(EDITABLE),
    value=st.integers(0, 3),
    same_instant=st.booleans(),
)
rounds = st.lists(st.tuples(st.lists(events, max_size=6), st.booleans()), min_size=1, max_size=3)


def _value(event: Event) -> str | None:
    if event.kind == "blank" and not (event.side == "cc" and event.field == "email"):
        return None  # (a CC contact cannot lose its email address: CC requires one)
    if event.field == "email":
        return f"p{event.person}-{event.value}@example.org"  # unique per person: no collisions here
    return f"{event.field[:2]}{event.value}"


def _world() -> World:
    world = World(fields=FIELDS)
    for i in range(PEOPLE):
        world.add_linked(
            f"m{i}",
            f"c{i}",
            email=f"p{i}@example.org",
            first_name=f"F{i}",
            last_name=f"L{i}",
            city="Leeds",
            phone_home="100",
        )
    world.last_sync = world.now()
    return world


def _apply_event(world: World, event: Event) -> None:
    member_id, contact_id = f"m{event.person}", f"c{event.person}"
    edit = world.edit_member if event.side == "member" else world.edit_contact
    target = member_id if event.side == "member" else contact_id
    previous = at(world.clock)
    # (Only after an edit of this round: an edit at the instant of the last sync would be missed
    # by an incremental extract, which is the extractor's overlap's job, not the engine's.)
    when = previous if event.same_instant and previous > world.last_sync else world.now()
    if event.kind in ("edit", "blank"):
        edit(target, when=when, **{event.field: _value(event)})
    elif event.kind == "opt_out":
        edit(target, when=when, opted_out=True)
    else:
        edit(target, when=when, opted_out=False)


def _snapshot(world: World) -> dict[str, Any]:
    return {
        i: {
            "member": dict(world.members[f"m{i}"]),
            "cc": dict(world.contacts[f"c{i}"]),
            "base": dict(world.base[f"m{i}"]),
        }
        for i in range(PEOPLE)
    }


def _changed(value: Any, base: Any) -> bool:
    return not blank(value) and value != base


# Examples, deadline and health checks come from the Hypothesis profile (tests/conftest.py: ci, dev, quick).
@given(history=rounds)
def test_random_edit_histories_converge_without_losing_edits_or_consent(
    history: list[tuple[list[Event], bool]],
) -> None:
    world = _world()
    for round_events, changed_only in history:
        for event in round_events:
            _apply_event(world, event)
        before = _snapshot(world)
        world.sync(changed_only=changed_only)

        for i in range(PEOPLE):
            was = before[i]
            member, contact = world.members[f"m{i}"], world.contacts[f"c{i}"]
            member_later = was["member"]["updated_at"] >= was["cc"]["updated_at"]  # a tie goes to the member
            for name in FIELDS:
                base_value = was["base"][name]
                m_value, c_value = was["member"][name], was["cc"][name]
                m_changed, c_changed = _changed(m_value, base_value), _changed(c_value, base_value)
                if m_changed and c_changed and m_value != c_value:
                    winner = m_value if member_later else c_value
                    assert member[name] == contact[name] == winner, (i, name, "conflict")
                elif m_changed:
                    assert member[name] == contact[name] == m_value, (i, name, "member edit lost")
                elif c_changed:
                    assert member[name] == contact[name] == c_value, (i, name, "CC edit lost")
                # Two-way fields agree, unless one side blanked its value (a blank never wipes).
                assert member[name] == contact[name] or blank(member[name]) or blank(contact[name]), (i, name)

            # Consent: the sync never re-subscribes anyone ...
            assert member["opted_out"] or not was["member"]["opted_out"]
            assert contact["opted_out"] or not was["cc"]["opted_out"]
            # ... and a new opt-out on either side reaches both.
            if not was["base"]["opted_out"] and (was["member"]["opted_out"] or was["cc"]["opted_out"]):
                assert member["opted_out"] is True
                assert contact["opted_out"] is True

    again = world.plan(changed_only=False)
    assert not again.writes_anything, "a second plan right after the last sync still writes"
