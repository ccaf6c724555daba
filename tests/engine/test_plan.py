"""The plan as a whole: bad input, its summary, the guard rails, and idempotence."""

from __future__ import annotations

import pandas as pd
import pytest

from cc_sync.engine import check_mass_change, default_policies, plan_sync
from cc_sync.policy import FieldPolicy
from tests.engine.world import FIELDS, World


def people(n: int) -> World:
    world = World()
    for i in range(n):
        world.add_linked(
            f"m{i}", f"c{i}", email=f"p{i}@example.org", first_name=f"P{i}", last_name="X", city="Leeds"
        )
    return world


@pytest.mark.parametrize("side", ["members", "contacts"])
def test_duplicate_and_missing_ids_are_rejected_and_the_rest_goes_through(side: str) -> None:
    world = people(3)
    world.edit_member("m0", city="Hull")
    world.edit_contact("c1", city="Bath")
    members, contacts = world.member_frame(), world.contact_frame()
    if side == "members":
        members = pd.concat(
            [members, members.iloc[[2]], members.iloc[[0]].assign(member_id=None)], ignore_index=True
        )
    else:
        contacts = pd.concat([contacts, contacts.iloc[[2]], contacts.iloc[[0]].assign(contact_id=None)])
    plan = plan_sync(
        members, contacts, world.link_frame(), world.base_frame(), None, policies=default_policies(FIELDS)
    )
    assert sorted(plan.rejected["reason"]) == ["duplicate_id", "missing_id"]
    assert plan.cc_updates["city"].tolist() == ["Hull"]
    assert plan.member_updates["city"].tolist() == ["Bath"]


def test_unknown_policy_field_is_a_clear_error() -> None:
    world = people(1)
    with pytest.raises(ValueError, match="unknown fields: favourite_colour"):
        world.plan(policies={"favourite_colour": FieldPolicy()})


def test_missing_id_column_is_a_clear_error() -> None:
    world = people(1)
    with pytest.raises(ValueError, match="members frame lacks the column"):
        plan_sync(
            world.member_frame().drop(columns="member_id"),
            world.contact_frame(),
            world.link_frame(),
            world.base_frame(),
            policies=default_policies(FIELDS),
        )


def test_integer_and_custom_fields_are_compared_by_value() -> None:
    world = World(fields=("email", "first_name", "last_name", "birthday_month", "cf:level"))
    world.add_linked("m1", "c1", email="a@example.org", first_name="A", last_name="B", birthday_month=3)
    world.base["m1"]["cf:level"] = None
    world.edit_member("m1", birthday_month=4)
    world.edit_contact("c1", **{"cf:level": "gold"})
    members = world.member_frame().assign(birthday_month=lambda f: pd.array([4], dtype="Int64"))
    contacts = world.contact_frame().assign(birthday_month=lambda f: pd.array([3], dtype="Int64"))
    plan = plan_sync(
        members,
        contacts,
        world.link_frame(),
        world.base_frame(),
        None,
        policies=default_policies(world.fields),
    )
    assert plan.cc_updates["birthday_month"].tolist() == [4]
    assert plan.member_updates["cf:level"].tolist() == ["gold"]


def test_summary_counts_every_action() -> None:
    world = people(4)
    world.edit_member("m0", city="Hull")
    world.edit_contact("c1", opted_out=True)
    world.edit_member("m2", opted_out=True)
    world.edit_contact("c3", deleted=True)
    world.add_member("m9", email="new@example.org", first_name="N", last_name="W")
    summary = world.plan().summary()
    expected = {
        "cc_updates": 1,
        "member_opt_outs": 1,
        "cc_unsubscribes": 1,
        "unlinks": 1,
        "cc_creates": 1,
        "consent": 2,
        "changed_people": 3,
        "pairs_compared": 4,
    }
    assert {k: summary[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("max_share", "tripped"),
    [(0.5, []), (0.2, ["unsubscribe", "change"]), (0.05, ["unsubscribe", "unlink", "change"])],
)
def test_mass_change_guard(max_share: float, tripped: list[str]) -> None:
    world = people(10)
    for i in range(3):
        world.edit_member(f"m{i}", opted_out=True)
    world.edit_contact("c9", deleted=True)
    plan = world.plan()
    problems = check_mass_change(plan, linked_count=10, max_share=max_share)
    assert [p.split()[1] for p in problems] == tripped
    assert all("of 10 linked people" in p for p in problems)


def test_guard_needs_a_share() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        check_mass_change(people(1).plan(), 1, 5)


@pytest.mark.parametrize("changed_only", [False, True], ids=["full", "incremental"])
def test_replanning_after_applying_writes_nothing(changed_only: bool) -> None:
    world = people(3)
    world.edit_member("m0", city="Hull", email="p0@new.example.org")
    world.edit_contact("c1", first_name="Pat", opted_out=True)
    world.add_member("m7", email="seven@example.org", first_name="S", last_name="Even")
    world.sync(changed_only=changed_only)
    again = world.plan(changed_only=False)
    assert not again.writes_anything
    assert again.changes.empty


def test_plan_is_a_pure_function_of_its_inputs() -> None:
    world = people(3)
    world.edit_member("m0", city="Hull")
    frames = (world.member_frame(), world.contact_frame(), world.link_frame(), world.base_frame())
    copies = [f.copy() for f in frames]
    first = plan_sync(*frames, policies=default_policies(FIELDS))
    second = plan_sync(*frames, policies=default_policies(FIELDS))
    for frame, copy in zip(frames, copies, strict=True):
        pd.testing.assert_frame_equal(frame, copy)
    pd.testing.assert_frame_equal(first.changes, second.changes)


def test_base_may_come_keyed_by_member_id() -> None:
    world = people(2)
    world.edit_member("m0", city="Hull")
    plan = plan_sync(
        world.member_frame(),
        world.contact_frame(),
        world.link_frame(),
        world.base_frame().set_index("member_id"),
        policies=default_policies(FIELDS),
    )
    assert plan.cc_updates[["contact_id", "city"]].values.tolist() == [["c0", "Hull"]]


def test_a_link_without_a_base_is_merged_like_a_new_link() -> None:
    # Lets a DAG split the work: one task links, a later one plans with links + new links.
    world = World()
    world.add_member("m1", email="anne@example.org", first_name="Anne", last_name="Smith", city="Leeds")
    world.add_contact("c1", email="anne@example.org", first_name="Anne", last_name="Smith", phone_home="555")
    in_one_go = world.plan()
    world.links["m1"] = "c1"
    in_two_steps = world.plan()
    assert in_one_go.new_links["contact_id"].tolist() == ["c1"]
    assert in_two_steps.new_links.empty
    for name in ("member_updates", "cc_updates", "changes", "new_base"):
        pd.testing.assert_frame_equal(getattr(in_one_go, name), getattr(in_two_steps, name), obj=name)


@pytest.mark.parametrize("values", [[12345, "LS1 4AP"], [12345, 67890]], ids=["mixed", "ints"])
def test_text_fields_holding_other_python_types_compare_as_text(values: list[object]) -> None:
    world = World(fields=("email", "first_name", "last_name", "postal_code"))
    world.add_linked("m0", "c0", email="a@example.org", first_name="A", last_name="B", postal_code="12345")
    world.add_linked("m1", "c1", email="b@example.org", first_name="C", last_name="D", postal_code="LS1 4AP")
    members = world.member_frame()
    members["postal_code"] = pd.Series([values[0], values[1]], dtype=object)
    plan = plan_sync(
        members,
        world.contact_frame(),
        world.link_frame(),
        world.base_frame(),
        None,
        policies=default_policies(world.fields),
    )
    changed = [str(v) for v, old in zip(values, ["12345", "LS1 4AP"], strict=True) if str(v) != old]
    written = plan.cc_updates["postal_code"].astype(str).tolist() if len(plan.cc_updates) else []
    assert written == changed
