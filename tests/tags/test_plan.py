"""The tags' three-way merge (cc_sync.tags.plan) and the value readings (cc_sync.tags.rules), pure:
per member and tag column, which contacts are tagged and untagged, what a two-way column takes
back, what becomes a conflict, and what the base becomes."""

from __future__ import annotations

import pandas as pd
import pytest

from cc_sync.fields import CONTACT_ID, DELETED, MEMBER_ID, TAG_IDS
from cc_sync.member_db.mapping import TagDirection, TagRule
from cc_sync.tags.plan import grouped_by_tag, plan_tags
from cc_sync.tags.rules import CC_VALUES, TAG_COLUMN, VALUE, cc_values, clean_value, member_values

TYPE = TagRule("membership_type", "Member: ", TagDirection.TWO_WAY)
CHAPTER = TagRule("chapter", "Chapter: ", TagDirection.TO_CC)
RULES = {r.column: r for r in (TYPE, CHAPTER)}
NOT_SEEN = object()  # the contact was not in this run's extract


def _plan(column: str, mine: str | None, base: object, held: object):
    """One member (m1, contact c1) and one tag column: member value, base (NOT_SEEN: no base row)
    and the rule's values CC holds (NOT_SEEN: the contact was not read this run)."""
    members = pd.DataFrame({MEMBER_ID: ["m1"], CONTACT_ID: ["c1"], TAG_COLUMN: [column], VALUE: [mine]})
    base_rows = [] if base is NOT_SEEN else [("m1", column, base)]
    bases = pd.DataFrame(base_rows, columns=[MEMBER_ID, TAG_COLUMN, VALUE])
    cc_rows = [] if held is NOT_SEEN else [("c1", column, tuple(held))]
    cc = pd.DataFrame(cc_rows, columns=[CONTACT_ID, TAG_COLUMN, CC_VALUES])
    return plan_tags(members, cc, bases, RULES)


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(frame.itertuples(index=False, name=None))


T, C = "membership_type", "chapter"
GOLD, SILVER, NORTH, SOUTH = "Member: Gold", "Member: Silver", "Chapter: North", "Chapter: South"


@pytest.mark.parametrize(
    ("column", "mine", "base", "held", "added", "removed", "written", "final"),
    [
        pytest.param(T, "Gold", NOT_SEEN, (), [GOLD], [], None, "Gold", id="first run tags the value"),
        pytest.param(T, "Gold", "Silver", NOT_SEEN, [GOLD], [SILVER], None, "Gold", id="member changed"),
        pytest.param(T, None, "Silver", ("Silver",), [], [SILVER], None, None, id="member cleared"),
        pytest.param(T, "Silver", "Silver", ("Gold",), [], [], "Gold", "Gold", id="CC changed: write back"),
        pytest.param(
            T, "Silver", "Silver", ("Gold", "Silver"), [], [SILVER], "Gold", "Gold", id="CC added, kept old"
        ),
        pytest.param(T, "Silver", "Silver", (), [], [], "", None, id="CC removed: column cleared"),
        pytest.param(T, "Gold", "Silver", ("Gold",), [], [], None, "Gold", id="both changed alike"),
        pytest.param(C, "North", "North", ("South",), [NORTH], [SOUTH], None, NOT_SEEN, id="to_cc put back"),
        pytest.param(T, "Gold", "Gold", ("Gold",), [], [], None, NOT_SEEN, id="nothing changed"),
        pytest.param(C, "North", "North", NOT_SEEN, [], [], None, NOT_SEEN, id="unchanged, not read"),
    ],
)
def test_one_member_one_column(column, mine, base, held, added, removed, written, final) -> None:
    plan = _plan(column, mine, base, held)
    case = (column, mine, base, held)
    assert plan.conflicts.empty, case
    assert _pairs(plan.add) == [(name, "c1") for name in added], case
    assert _pairs(plan.remove) == [(name, "c1") for name in removed], case
    if written is None:
        assert plan.to_member_db.empty, case
    else:
        assert plan.to_member_db["new_value"].tolist() == [written or None], case
    if final is NOT_SEEN:
        assert plan.base.empty, "an unchanged row keeps its base: a rerun writes nothing"
    else:
        assert plan.base[VALUE].tolist() == [final], case


@pytest.mark.parametrize(
    ("mine", "base", "held"),
    [("Gold", "Silver", ("Bronze",)), ("Gold", "Silver", ()), (None, "Silver", ("Bronze",))],
)
def test_both_sides_changed_a_two_way_column_differently_is_a_conflict(mine, base, held) -> None:
    plan = _plan("membership_type", mine, base, held)
    assert len(plan.conflicts) == 1
    assert plan.add.empty
    assert plan.remove.empty
    assert plan.to_member_db.empty
    assert plan.base.empty, "the base stays, so the next run asks again"


def test_a_to_cc_column_never_conflicts_the_member_wins() -> None:
    plan = _plan("chapter", "North", "East", ("South",))
    assert plan.conflicts.empty
    assert _pairs(plan.add) == [("Chapter: North", "c1")]
    assert _pairs(plan.remove) == [("Chapter: South", "c1")]
    assert plan.to_member_db.empty


def test_a_tag_name_over_255_characters_is_refused_not_sent() -> None:
    plan = _plan("chapter", "x" * 250, NOT_SEEN, ())
    assert plan.add.empty
    assert plan.base.empty
    assert plan.refused[MEMBER_ID].tolist() == ["m1"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" Gold ", "Gold"), ("", None), ("   ", None), (None, None), (pd.NA, None), (3, "3")],
)
def test_member_values_are_stripped_text(raw, expected) -> None:
    assert clean_value(raw) == expected


def test_cc_values_read_the_rules_tags_and_skip_deleted_contacts() -> None:
    names = {"t1": "Member: Gold", "t2": "Chapter: North", "t3": "VIP", "t4": "Member: Silver"}
    contacts = pd.DataFrame(
        {
            CONTACT_ID: ["c1", "c2", "c3"],
            TAG_IDS: ["t1,t2,t3", "", "t4"],
            DELETED: [False, False, True],
        }
    )
    found = cc_values(contacts, RULES, names).set_index([CONTACT_ID, TAG_COLUMN])[CC_VALUES]
    assert found[("c1", "membership_type")] == ("Gold",)
    assert found[("c1", "chapter")] == ("North",)
    assert found[("c2", "membership_type")] == ()
    assert "c3" not in found.index.get_level_values(0)


def test_many_members_group_into_one_activity_per_tag() -> None:
    members = member_values(
        pd.DataFrame(
            {
                MEMBER_ID: [1, 2, 3],
                CONTACT_ID: ["c1", "c2", "c3"],
                "membership_type": ["Gold", "Gold", "Silver"],
                "chapter": ["North", None, "North"],
            }
        ),
        RULES,
    )
    empty_base = pd.DataFrame(columns=[MEMBER_ID, TAG_COLUMN, VALUE])
    empty_cc = pd.DataFrame(columns=[CONTACT_ID, TAG_COLUMN, CC_VALUES])
    plan = plan_tags(members, empty_cc, empty_base, RULES)
    assert grouped_by_tag(plan.add) == {
        "Chapter: North": ["c1", "c3"],
        "Member: Gold": ["c1", "c2"],
        "Member: Silver": ["c3"],
    }
    assert plan.tags_needed() == ["Chapter: North", "Member: Gold", "Member: Silver"]
    assert len(plan.base) == 6, "every (member, column) gets a base, None included"
