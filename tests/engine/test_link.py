"""Linking by first name + last name + email, and everything that must go to review instead."""

from __future__ import annotations

import pandas as pd
import pytest

from cc_sync.engine import (
    MAX_HYDRATE_ROUNDS,
    LinkRule,
    RejectReason,
    ReviewKind,
    SyncPlan,
    plan_hydrated,
    plan_sync,
)
from cc_sync.policy import FieldPolicy, SyncDirection
from tests.engine.world import World


@pytest.mark.parametrize(
    ("member", "contact"),
    [
        (("Anne", "Smith", "anne@example.org"), ("Anne", "Smith", "anne@example.org")),
        (("  ANNE ", "smith", " Anne@Example.ORG "), ("anne", "SMITH", "anne@example.org")),
        (("Zoë", "Brontë", "zoe@example.org"), ("ZOË", "brontë", "ZOE@EXAMPLE.ORG")),
        (("Mary  Ann", "O'Neil", "ＭＡＲＹ@example.org"), ("mary ann", "O'NEIL", "mary@example.org")),
        (("ﬁona", "Straße", "fiona@example.org"), ("FIONA", "STRASSE", "fiona@example.org")),
    ],
    ids=["exact", "case-and-blanks", "accents", "fullwidth-and-inner-blanks", "ligature-and-eszett"],
)
def test_name_and_email_link_after_normalisation(member: tuple[str, ...], contact: tuple[str, ...]) -> None:
    world = World()
    world.add_member("m1", first_name=member[0], last_name=member[1], email=member[2])
    world.add_contact("c1", first_name=contact[0], last_name=contact[1], email=contact[2])
    plan = world.sync()
    assert plan.new_links.values.tolist() == [["m1", "c1", LinkRule.NAME_EMAIL.value]]
    assert plan.reviews.empty
    assert plan.cc_creates.empty


def test_anne_and_annabelle_is_a_near_match_not_a_link() -> None:
    world = World()
    world.add_member("m1", first_name="Anne", last_name="Smith", email="anne@example.org")
    world.add_contact("c1", first_name="Annabelle", last_name="Smith", email="anne@example.org")
    plan = world.sync()
    assert plan.new_links.empty
    assert plan.cc_creates.empty
    assert plan.reviews[["kind", "member_id", "contact_id"]].values.tolist() == [
        [ReviewKind.NEAR_MATCH.value, "m1", "c1"]
    ]
    assert "Annabelle" in plan.reviews["detail"].iloc[0]
    assert world.contacts["c1"]["first_name"] == "Annabelle"


def test_household_email_shared_by_members_goes_to_review() -> None:
    world = World()
    world.add_member("m1", first_name="Anne", last_name="Smith", email="home@example.org")
    world.add_member("m2", first_name="Tom", last_name="Smith", email="Home@example.org")
    world.add_contact("c1", first_name="Anne", last_name="Smith", email="home@example.org")
    plan = world.sync()
    assert plan.new_links.empty
    assert plan.cc_creates.empty
    assert sorted(plan.reviews["member_id"]) == ["m1", "m2"]
    assert set(plan.reviews["kind"]) == {ReviewKind.SHARED_EMAIL.value}


@pytest.mark.parametrize("contact_first", ["Anne", "Zoë"], ids=["ascii", "non-ascii"])
def test_household_of_several_members_on_one_contact_goes_to_review(contact_first: str) -> None:
    """The contact is looked up once per household member: the same contact row several times, and a
    non-ASCII name takes the slow normalisation path, which aligns on labels."""
    world = World()
    world.add_member("m1", first_name="Zoë", last_name="Smith", email="home@example.org")
    world.add_member("m2", first_name="Tom", last_name="Smith", email="home@example.org")
    world.add_member("m3", first_name="Ève", last_name="Smith", email="HOME@example.org")
    world.add_member("m4", first_name="Ana", last_name="Brontë", email="ana@example.org")
    world.add_contact("c1", first_name=contact_first, last_name="Smith", email="home@example.org")
    world.add_contact("c2", first_name="Ana", last_name="Brontë", email="ana@example.org")
    plan = world.sync()
    assert plan.new_links.values.tolist() == [["m4", "c2", LinkRule.NAME_EMAIL.value]]
    assert plan.cc_creates.empty
    assert sorted(plan.reviews["member_id"]) == ["m1", "m2", "m3"]
    assert set(plan.reviews["kind"]) == {ReviewKind.SHARED_EMAIL.value}


def test_household_without_a_contact_is_not_created_twice() -> None:
    world = World()
    world.add_member("m1", first_name="Anne", last_name="Smith", email="home@example.org")
    world.add_member("m2", first_name="Tom", last_name="Smith", email="home@example.org")
    plan = world.sync()
    assert plan.cc_creates.empty
    assert plan.summary()["review_shared_email"] == 2


def test_new_member_sharing_email_with_a_linked_member_goes_to_review() -> None:
    world = World()
    world.add_linked("m1", "c1", first_name="Anne", last_name="Smith", email="home@example.org")
    world.add_member("m2", first_name="Anne", last_name="Smith", email="home@example.org")
    plan = world.sync()
    assert plan.new_links.empty
    assert plan.reviews[["kind", "member_id"]].values.tolist() == [[ReviewKind.SHARED_EMAIL.value, "m2"]]


def test_one_member_matching_several_contacts_is_ambiguous() -> None:
    world = World()
    world.add_member("m1", first_name="Anne", last_name="Smith", email="anne@example.org")
    world.add_contact("c1", first_name="Anne", last_name="Smith", email="anne@example.org")
    world.add_contact("c2", first_name="Anne", last_name="Smith", email="ANNE@example.org")
    plan = world.sync()
    assert plan.new_links.empty
    assert plan.reviews["kind"].tolist() == [ReviewKind.AMBIGUOUS.value]


@pytest.mark.parametrize(
    ("direction", "created"),
    [(SyncDirection.TWO_WAY, True), (SyncDirection.TO_CC, True), (SyncDirection.FROM_CC, False)],
)
def test_unmatched_member_is_created_in_cc(direction: SyncDirection, created: bool) -> None:
    world = World()
    world.add_member("m1", first_name="Cy", last_name="New", email=" cy@example.org ", city="York")
    plan = world.sync(direction=direction)
    if created:
        assert plan.cc_creates[["member_id", "email", "city"]].values.tolist() == [
            ["m1", "cy@example.org", "York"]
        ]
        assert world.contacts[world.links["m1"]]["city"] == "York"
        assert set(plan.changes.loc[plan.changes["member_id"] == "m1", "reason"]) == {"created"}
    else:
        assert plan.cc_creates.empty
        assert not world.links


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        (None, RejectReason.NO_EMAIL),
        ("  ", RejectReason.NO_EMAIL),
        ("anne.example.org", RejectReason.INVALID_EMAIL),
        ("a" * 45 + "@example.org", RejectReason.TOO_LONG),
    ],
)
def test_member_that_cannot_be_sent_is_rejected_with_a_reason(
    email: str | None, reason: RejectReason
) -> None:
    world = World()
    world.add_member("m1", first_name="Bad", last_name="Input", email=email)
    world.add_member("m2", first_name="Good", last_name="Input", email="good@example.org")
    plan = world.sync()
    assert plan.rejected[["member_id", "reason"]].values.tolist() == [["m1", reason.value]]
    assert plan.cc_creates["member_id"].tolist() == ["m2"]  # everything else still goes through


def test_cc_contact_without_a_member_creates_nothing() -> None:
    world = World()
    world.add_contact("c1", first_name="Only", last_name="InCC", email="only@example.org")
    plan = world.sync()
    assert not plan.writes_anything
    assert not world.members


def test_email_of_a_deleted_contact_is_not_revived_by_a_create() -> None:
    world = World()
    world.add_contact("c1", first_name="Gone", last_name="Away", email="gone@example.org", deleted=True)
    world.add_member("m1", first_name="Gone", last_name="Away", email="gone@example.org")
    plan = world.sync()
    assert plan.cc_creates.empty
    assert plan.new_links.empty
    assert plan.reviews["kind"].tolist() == [ReviewKind.DELETED_IN_CC.value]


def test_changed_contact_links_to_an_unlinked_member_found_by_email() -> None:
    world = World()
    world.add_member("m1", first_name="Anne", last_name="Smith", email="anne@example.org", city="Leeds")
    world.last_sync = world.now()  # the member is unchanged since the last run: not extracted
    world.add_contact("c1", first_name="Anne", last_name="Smith", email="anne@example.org", phone_home="555")
    plan = world.sync(changed_only=True, candidates=True)
    assert plan.new_links[["member_id", "contact_id"]].values.tolist() == [["m1", "c1"]]
    assert plan.cc_creates.empty
    member, contact = world.pair("m1")
    assert (member["phone_home"], contact["city"]) == ("555", "Leeds")  # a first merge fills both


def test_new_link_to_a_contact_not_extracted_asks_for_hydration() -> None:
    world = World()
    world.add_contact("c1", first_name="Anne", last_name="Smith", email="anne@example.org", city="Bath")
    world.last_sync = world.now()
    world.add_member("m1", first_name="Anne", last_name="Smith", email="anne@example.org")
    plan = world.plan(changed_only=True, hydrate=False)
    assert plan.new_links["contact_id"].tolist() == ["c1"]
    assert plan.hydrate["contact_id"].tolist() == ["c1"]
    assert plan.member_updates.empty  # merged only once the contact is fetched
    assert plan.new_base.empty  # so the link cannot be stored yet (sync/recording.py)
    hydrated = world.plan(changed_only=True)  # the contact read, the run planned again
    assert hydrated.hydrate.empty
    assert hydrated.member_updates["city"].tolist() == ["Bath"]
    assert hydrated.new_base["member_id"].tolist() == ["m1"]


def test_hydration_gives_up_after_its_rounds_when_a_contact_cannot_be_read() -> None:
    """A linked contact that vanished before it could be read: planned again a bounded number of
    times, then the plan still lists it (the link is not stored without its base)."""
    world = World()
    world.add_contact("c1", first_name="Anne", last_name="Smith", email="anne@example.org")
    world.last_sync = world.now()
    world.add_member("m1", first_name="Anne", last_name="Smith", email="anne@example.org")
    members, contacts = world.member_frame(changed_only=True), world.contact_frame(changed_only=True)
    plans: list[int] = []
    reads: list[list[str]] = []

    def plan(contacts: pd.DataFrame) -> SyncPlan:
        plans.append(len(contacts))
        return plan_sync(
            members, contacts, world.link_frame(), world.base_frame(), world.directory_frame(),
            policies={f: FieldPolicy() for f in world.fields},
        )  # fmt: skip

    def read_nothing(ids: list[str]) -> pd.DataFrame:
        reads.append(ids)
        return contacts.iloc[0:0]

    planned, used = plan_hydrated(plan, contacts, read_nothing)
    assert reads == [["c1"]] * MAX_HYDRATE_ROUNDS
    assert len(plans) == MAX_HYDRATE_ROUNDS + 1
    assert planned.hydrate["contact_id"].tolist() == ["c1"]
    assert planned.new_base.empty
    assert used.empty


def test_link_survives_an_email_change_on_the_next_run() -> None:
    world = World()
    world.add_member("m1", first_name="Anne", last_name="Smith", email="anne@example.org")
    world.add_contact("c1", first_name="Anne", last_name="Smith", email="anne@example.org")
    world.sync()
    world.edit_contact("c1", email="anne@new.example.org")
    plan = world.sync()
    assert plan.new_links.empty
    assert plan.reviews.empty
    assert world.links == {"m1": "c1"}
    assert world.members["m1"]["email"] == "anne@new.example.org"


@pytest.mark.parametrize("contact_first", ["Annabelle", "Anne"], ids=["near-match", "exact-match"])
def test_a_pair_kept_apart_is_neither_linked_nor_queued(contact_first: str) -> None:
    world = World()
    world.add_member("m1", first_name="Anne", last_name="Smith", email="anne@example.org")
    world.add_contact("c1", first_name=contact_first, last_name="Smith", email="anne@example.org")
    plan = plan_sync(
        world.member_frame(),
        world.contact_frame(),
        world.link_frame(),
        world.base_frame(),
        world.directory_frame(),
        policies={f: FieldPolicy() for f in world.fields},
        kept_apart=frozenset({("m1", "c1")}),
    )
    assert plan.new_links.empty
    assert plan.reviews.empty
    assert plan.cc_creates.empty  # nor created as a second contact on the same email


def test_a_created_contact_logs_each_value_it_is_created_with_and_leaves_out_an_over_long_one() -> None:
    world = World()
    world.add_member(
        "m1", first_name="Cy", last_name="New", email="cy@example.org", city="  ", phone_home="5" * 30
    )
    world.add_member("m2", first_name="Di", last_name="Old", email="di@example.org", city="Hull")
    plan = world.sync()
    logged = plan.changes[plan.changes["reason"] == "created"]
    # Field by field in the mapping's order, members in their order within each; blanks not logged.
    assert logged[["field", "member_id", "new_value"]].values.tolist() == [
        ["email", "m1", "cy@example.org"],
        ["email", "m2", "di@example.org"],
        ["first_name", "m1", "Cy"],
        ["first_name", "m2", "Di"],
        ["last_name", "m1", "New"],
        ["last_name", "m2", "Old"],
        ["city", "m2", "Hull"],
    ]
    assert logged["old_value"].isna().all()
    assert logged["contact_id"].isna().all()
    assert plan.rejected[["member_id", "field", "reason"]].values.tolist() == [
        ["m1", "phone_home", RejectReason.TOO_LONG.value]
    ]
    assert plan.cc_creates.set_index("member_id").loc["m1", "phone_home"] is pd.NA
