"""Field-by-field merge rules of compare + resolve, each as a before/after scenario on both sides."""

from __future__ import annotations

import pytest

from cc_sync.engine import ChangeReason, RejectReason, ReviewKind
from cc_sync.policy import FieldDirection, FieldOwner, FieldPolicy, SyncDirection
from tests.engine.world import FIELDS, World


def linked_world() -> World:
    world = World()
    world.add_linked(
        "m1",
        "c1",
        email="anne@example.org",
        first_name="Anne",
        last_name="Smith",
        city="Leeds",
        phone_home="111",
    )
    world.add_linked("m2", "c2", email="bob@example.org", first_name="Bob", last_name="Jones", city="York")
    return world


@pytest.mark.parametrize("changed_only", [False, True], ids=["full", "incremental"])
def test_concurrent_edits_of_different_fields_are_both_kept(changed_only: bool) -> None:
    world = linked_world()
    world.edit_member("m1", city="Hull")
    world.edit_contact("c1", phone_home="222")
    plan = world.sync(changed_only=changed_only)
    member, contact = world.pair("m1")
    assert (member["city"], member["phone_home"]) == ("Hull", "222")
    assert (contact["city"], contact["phone_home"]) == ("Hull", "222")
    assert set(plan.changes["field"]) == {"city", "phone_home"}
    assert world.plan(changed_only=False).writes_anything is False  # converged


@pytest.mark.parametrize(
    ("member_minute", "cc_minute", "winner", "reason"),
    [
        (50, 60, "cc", ChangeReason.CONFLICT_CC_LATER),
        (60, 50, "member", ChangeReason.CONFLICT_MEMBER_LATER),
        (55, 55, "member", ChangeReason.CONFLICT_TIE_MEMBER),
    ],
)
def test_same_field_on_both_sides_the_later_change_wins(
    member_minute: int, cc_minute: int, winner: str, reason: ChangeReason
) -> None:
    from tests.engine.world import at

    world = linked_world()
    world.edit_member("m1", when=at(member_minute), city="Hull")
    world.edit_contact("c1", when=at(cc_minute), city="Bath")
    plan = world.sync()
    expected = "Hull" if winner == "member" else "Bath"
    member, contact = world.pair("m1")
    assert member["city"] == contact["city"] == expected
    assert plan.changes.loc[plan.changes["field"] == "city", "reason"].tolist() == [reason.value]


@pytest.mark.parametrize(("owner", "expected"), [(FieldOwner.MEMBER_DB, "Hull"), (FieldOwner.CC, "Bath")])
def test_field_owner_overrides_the_later_change(owner: FieldOwner, expected: str) -> None:
    from tests.engine.world import at

    world = linked_world()
    # The non-owner changes later: it still loses.
    world.edit_member("m1", when=at(70 if owner == FieldOwner.CC else 50), city="Hull")
    world.edit_contact("c1", when=at(50 if owner == FieldOwner.CC else 70), city="Bath")
    policies = {f: FieldPolicy() for f in FIELDS} | {"city": FieldPolicy(owner=owner)}
    world.sync(policies=policies)
    member, contact = world.pair("m1")
    assert member["city"] == contact["city"] == expected


@pytest.mark.parametrize("side", ["member", "cc"])
@pytest.mark.parametrize("blank_value", [None, "", "   "])
def test_a_blank_never_wipes_a_value(side: str, blank_value: str | None) -> None:
    world = linked_world()
    if side == "member":
        world.edit_member("m1", city=blank_value)
    else:
        world.edit_contact("c1", city=blank_value)
    plan = world.sync()
    member, contact = world.pair("m1")
    other = contact if side == "member" else member
    assert other["city"] == "Leeds"
    assert not plan.writes_anything
    assert world.plan().writes_anything is False


@pytest.mark.parametrize("side", ["member", "cc"])
def test_a_blank_wipes_when_the_policy_allows(side: str) -> None:
    world = linked_world()
    if side == "member":
        world.edit_member("m1", city=None)
    else:
        world.edit_contact("c1", city=None)
    policies = {f: FieldPolicy() for f in FIELDS} | {"city": FieldPolicy(blank_overwrites=True)}
    plan = world.sync(policies=policies)
    member, contact = world.pair("m1")
    assert member["city"] is None
    assert contact["city"] is None
    cleared = plan.cc_puts if side == "member" else plan.member_updates
    assert cleared["cleared_fields"].tolist() == ["city"]


def test_blank_then_a_real_change_on_the_other_side_fills_both() -> None:
    world = linked_world()
    world.edit_member("m1", city=None)
    world.edit_contact("c1", city="Bath")
    world.sync()
    member, contact = world.pair("m1")
    assert member["city"] == contact["city"] == "Bath"


def test_both_changed_to_the_same_value_writes_nothing() -> None:
    world = linked_world()
    world.edit_member("m1", city="Hull")
    world.edit_contact("c1", city="Hull")
    plan = world.sync()
    assert not plan.writes_anything
    assert world.base["m1"]["city"] == "Hull"


def test_unchanged_pairs_write_nothing_and_are_not_in_the_new_base() -> None:
    world = linked_world()
    world.edit_member("m1", city="Hull")
    plan = world.sync()
    assert plan.new_base["member_id"].tolist() == ["m1"]
    assert plan.pairs_compared == 2


@pytest.mark.parametrize("changed_only", [False, True], ids=["full", "incremental"])
def test_member_email_change_goes_to_cc_by_put(changed_only: bool) -> None:
    world = linked_world()
    world.edit_member("m1", email="anne.smith@example.net", city="Hull")
    plan = world.sync(changed_only=changed_only)
    assert plan.cc_puts["email_change"].tolist() == ["anne.smith@example.net"]
    assert plan.cc_updates.empty  # the whole pair rides the PUT, the import is keyed by the old email
    _, contact = world.pair("m1")
    assert (contact["email"], contact["city"]) == ("anne.smith@example.net", "Hull")
    assert world.links["m1"] == "c1"  # the link survives the email change


def test_cc_email_change_goes_to_the_member() -> None:
    world = linked_world()
    world.edit_contact("c1", email="annie@example.com")
    plan = world.sync()
    assert plan.member_updates["email"].tolist() == ["annie@example.com"]
    assert world.members["m1"]["email"] == "annie@example.com"


def test_email_case_change_is_not_a_change() -> None:
    world = linked_world()
    world.edit_contact("c1", email="ANNE@Example.org ")
    plan = world.sync()
    assert not plan.writes_anything


@pytest.mark.parametrize("side", ["member", "cc"])
def test_email_change_colliding_with_another_person_goes_to_review(side: str) -> None:
    world = linked_world()
    if side == "member":
        world.edit_member("m1", email="BOB@example.org", city="Hull")
    else:
        world.edit_contact("c1", email="bob@example.org", city="Hull")
    plan = world.sync()
    reviews = plan.reviews
    assert reviews["kind"].tolist() == [ReviewKind.EMAIL_COLLISION.value]
    assert reviews["member_id"].tolist() == ["m1"]
    member, contact = world.pair("m1")
    assert member["city"] == contact["city"] == "Hull"  # the rest of the pair still went through
    assert world.contacts["c2"]["email"] == "bob@example.org"
    # Not written to the other side, and the next run reports it again instead of forgetting it.
    other = contact if side == "member" else member
    assert other["email"] == "anne@example.org"
    assert world.plan().reviews["kind"].tolist() == [ReviewKind.EMAIL_COLLISION.value]


def test_two_members_moving_to_one_new_email_both_go_to_review() -> None:
    world = linked_world()
    world.edit_member("m1", email="family@example.org")
    world.edit_member("m2", email="family@example.org")
    plan = world.sync()
    assert sorted(plan.reviews["member_id"]) == ["m1", "m2"]
    assert plan.cc_puts.empty


@pytest.mark.parametrize(
    ("value", "reason"),
    [("x" * 51 + "@example.org", RejectReason.TOO_LONG), ("not-an-email", RejectReason.INVALID_EMAIL)],
)
def test_bad_email_change_is_rejected_and_the_rest_goes_through(value: str, reason: RejectReason) -> None:
    world = linked_world()
    world.edit_member("m1", email=value, city="Hull")
    plan = world.sync()
    assert plan.rejected[["member_id", "field", "reason"]].values.tolist() == [["m1", "email", reason.value]]
    _, contact = world.pair("m1")
    assert (contact["email"], contact["city"]) == ("anne@example.org", "Hull")


def test_over_long_field_is_rejected_and_other_fields_still_go() -> None:
    world = linked_world()
    world.edit_member("m1", city="C" * 60, phone_home="999")
    plan = world.sync()
    assert plan.rejected[["field", "reason"]].values.tolist() == [["city", RejectReason.TOO_LONG.value]]
    _, contact = world.pair("m1")
    assert (contact["city"], contact["phone_home"]) == ("Leeds", "999")


@pytest.mark.parametrize(
    ("direction", "member_gets", "cc_gets"),
    [
        (SyncDirection.TWO_WAY, "222", "Hull"),
        (SyncDirection.TO_CC, "111", "Hull"),
        (SyncDirection.FROM_CC, "222", "Leeds"),
    ],
)
def test_sync_direction(direction: SyncDirection, member_gets: str, cc_gets: str) -> None:
    world = linked_world()
    world.edit_member("m1", city="Hull")
    world.edit_contact("c1", phone_home="222")
    plan = world.sync(direction=direction)
    member, contact = world.pair("m1")
    assert member["phone_home"] == member_gets
    assert contact["city"] == cc_gets
    if direction == SyncDirection.TO_CC:
        assert plan.member_updates.empty
    if direction == SyncDirection.FROM_CC:
        assert plan.cc_updates.empty
        assert plan.cc_puts.empty


@pytest.mark.parametrize(
    ("field_direction", "expected_city"), [(FieldDirection.TO_CC, "Hull"), (FieldDirection.FROM_CC, "Bath")]
)
def test_per_field_direction_makes_the_source_the_owner(
    field_direction: FieldDirection, expected_city: str
) -> None:
    from tests.engine.world import at

    world = linked_world()
    # The source of a one-way field wins a conflict even when the other side changed later.
    world.edit_member("m1", when=at(80 if field_direction == FieldDirection.FROM_CC else 50), city="Hull")
    world.edit_contact("c1", when=at(50 if field_direction == FieldDirection.FROM_CC else 80), city="Bath")
    policies = {f: FieldPolicy() for f in FIELDS} | {"city": FieldPolicy(direction=field_direction)}
    world.sync(policies=policies)
    member, contact = world.pair("m1")
    if field_direction == FieldDirection.TO_CC:
        assert contact["city"] == expected_city
        assert member["city"] == "Hull"
    else:
        assert member["city"] == expected_city
        assert contact["city"] == "Bath"


def test_one_way_field_ignores_edits_on_the_other_side() -> None:
    world = linked_world()
    world.edit_contact("c1", city="Bath")
    policies = {f: FieldPolicy() for f in FIELDS} | {"city": FieldPolicy(direction=FieldDirection.TO_CC)}
    plan = world.sync(policies=policies)
    assert not plan.writes_anything
    assert world.members["m1"]["city"] == "Leeds"


def test_deleted_contact_is_unlinked_and_the_member_untouched() -> None:
    world = linked_world()
    world.edit_member("m1", city="Hull")
    world.edit_contact("c1", deleted=True)
    before = dict(world.members["m1"])
    plan = world.sync()
    assert plan.unlinks[["member_id", "contact_id", "reason"]].values.tolist() == [["m1", "c1", "cc_deleted"]]
    assert plan.member_updates.empty
    assert plan.cc_puts.empty
    assert plan.cc_updates.empty
    assert "m1" not in world.links
    assert "m1" not in world.base
    assert world.members["m1"]["city"] == before["city"] == "Hull"


def test_change_log_explains_every_write() -> None:
    world = linked_world()
    world.edit_member("m1", city="Hull")
    world.edit_contact("c2", city="Bath")
    plan = world.sync()
    log = plan.changes.sort_values("member_id")[
        ["direction", "member_id", "field", "old_value", "new_value", "reason"]
    ]
    assert log.values.tolist() == [
        ["to_cc", "m1", "city", "Leeds", "Hull", "member_changed"],
        ["to_member_db", "m2", "city", "York", "Bath", "cc_changed"],
    ]


def test_import_row_is_keyed_by_the_email_cc_holds_even_when_the_base_lags() -> None:
    world = linked_world()
    world.add_member("m3", email="carol@example.org", first_name="Carol", last_name="King")
    world.edit_contact("c1", email="carol@example.org")  # collides with member m3: to review, not taken
    first = world.sync()
    assert first.summary()["review_email_collision"] == 1
    assert world.base["m1"]["email"] == "anne@example.org"
    world.edit_member("m1", city="Hull")  # the contact is unchanged since: not extracted
    plan = world.sync(changed_only=True)
    assert plan.cc_updates[["contact_id", "email"]].values.tolist() == [["c1", "carol@example.org"]]
    assert world.contacts["c1"]["city"] == "Hull"
