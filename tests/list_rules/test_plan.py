"""A list rule's plan, pure: who is added to the list and who is taken off it, and consent first."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from cc_sync.fields import CONTACT_ID, MEMBER_ID, OPTED_OUT
from cc_sync.list_rules.plan import LIST_MEMBERSHIP, RuleChange, plan_rule

LIST_ID = "list-1"


def _segment(*members: str, opted_out: tuple[str, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame({MEMBER_ID: list(members), OPTED_OUT: [m in opted_out for m in members]})


LINKS = pd.DataFrame({MEMBER_ID: ["m1", "m2", "m3", "m4"], CONTACT_ID: ["c1", "c2", "c3", "c4"]})


def _plan(segment: pd.DataFrame, on_list: list[str], **kwargs: Any):
    return plan_rule(
        segment="runners",
        list_id=LIST_ID,
        list_name="Runners",
        segment_members=segment,
        links=LINKS,
        list_contact_ids=on_list,
        **kwargs,
    )


def _changes(plan) -> set[tuple[str, str]]:
    return {(row.contact_id, row.change) for row in plan.changes.itertuples()}


ADD, REMOVE = RuleChange.ADD.value, RuleChange.REMOVE.value


@pytest.mark.parametrize(
    ("segment", "on_list", "kwargs", "expected"),
    [
        pytest.param(_segment("m1", "m2"), [], {}, {("c1", ADD), ("c2", ADD)}, id="an-empty-list-is-filled"),
        pytest.param(_segment("m1", "m2"), ["c1", "c2"], {}, set(), id="an-equal-list-is-left-alone"),
        pytest.param(
            _segment("m1"), ["c1", "c2"], {}, {("c2", REMOVE)}, id="who-left-the-segment-is-removed"
        ),
        pytest.param(
            _segment("m1"),
            ["c1", "stranger"],
            {},
            {("stranger", REMOVE)},
            id="an-unlinked-contact-is-removed",
        ),
        pytest.param(
            _segment("m1", "m2", opted_out=("m2",)), [], {}, {("c1", ADD)}, id="opted-out-member-never-added"
        ),
        pytest.param(
            _segment("m1", "m2"),
            [],
            {"opted_out_contacts": {"c2"}},
            {("c1", ADD)},
            id="unsubscribed-on-cc-never-added",
        ),
        pytest.param(
            _segment("m1", "m2"),
            [],
            {"opted_out_members": {"m1"}},
            {("c2", ADD)},
            id="opted-out-in-the-consent-ledger-never-added",
        ),
        pytest.param(
            _segment("m1", "m2", opted_out=("m2",)),
            ["c2"],
            {},
            {("c1", ADD)},
            id="an-opted-out-segment-member-on-the-list-is-neither-added-nor-removed",
        ),
        pytest.param(_segment("m1", "m9"), [], {}, {("c1", ADD)}, id="an-unlinked-member-waits-for-the-sync"),
    ],
)
def test_plan_adds_and_removes_exactly_the_segments_changes(segment, on_list, kwargs, expected) -> None:
    assert _changes(_plan(segment, on_list, **kwargs)) == expected


def test_counts_say_why_members_were_not_added() -> None:
    plan = _plan(_segment("m1", "m2", "m3", "m9", opted_out=("m2",)), ["c4"], opted_out_contacts={"c3"})
    assert plan.counts == {
        "segment_members": 4,
        "not_linked": 1,
        "opted_out_not_added": 2,
        "list_members_before": 1,
        "added": 1,
        "removed": 1,
    }
    assert plan.list_size == 1


def test_removal_is_from_that_list_only_and_never_an_unsubscribe() -> None:
    plan = _plan(_segment("m1"), ["c1", "c2", "stranger"])
    rows = plan.change_log_rows()
    # Every row is a membership of this one list: no permission, no other field, no other list.
    assert set(rows["field"]) == {LIST_MEMBERSHIP}
    assert set(rows["old_value"].dropna()) == {LIST_ID}
    assert rows["new_value"].isna().all()
    assert set(rows["direction"]) == {"to_cc"}
    assert set(rows["reason"]) == {"list_rule:runners"}
    by_contact = rows.set_index(CONTACT_ID)[MEMBER_ID]
    assert by_contact["c2"] == "m2"  # a member who left the segment keeps their member id in the log
    assert pd.isna(by_contact["stranger"])  # a contact linked to no member


def test_adds_are_logged_as_joining_the_list() -> None:
    rows = _plan(_segment("m1"), []).change_log_rows()
    assert rows[["member_id", "contact_id", "old_value", "new_value"]].to_dict("records") == [
        {"member_id": "m1", "contact_id": "c1", "old_value": None, "new_value": LIST_ID}
    ]


def test_a_member_is_added_once_even_when_listed_twice() -> None:
    plan = _plan(pd.concat([_segment("m1"), _segment("m1")]), [])
    assert len(plan.adds) == 1
