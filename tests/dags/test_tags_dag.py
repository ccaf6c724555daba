"""The sync DAG's tags task with dag.test(), the emulator and real databases: a member column kept
as Constant Contact tags (``membership_type``, two-way). Tags follow a changed membership type, a
rerun writes nothing, an opted-out member's tags change without re-subscribing anyone, a tag
changed in CC is written back to the member, and both sides changing it is a review item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cc_sync.settings import DEFAULT_MAPPING_PATH
from tests.dags.conftest import SyncWorld
from tests.emulator.conftest import ApiClient

TYPES = ("Gold", "Silver", "Bronze")
TAGS_MAPPING = """
tags:
  membership_type: {prefix: "Member: ", direction: two_way}
"""


@pytest.fixture
def tagged(world_factory, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SyncWorld:
    """The synced world with a ``membership_type`` column (Gold, Silver, Bronze by member id) and
    the demo mapping plus a two-way tag rule for it."""
    world = world_factory(database_url, synced=True)
    with world.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE members ADD membership_type VARCHAR(40)"))
        conn.execute(
            sa.text(
                "UPDATE members SET membership_type = CASE member_id % 3 "
                "WHEN 0 THEN 'Gold' WHEN 1 THEN 'Silver' ELSE 'Bronze' END"
            )
        )
    mapping = tmp_path / "member_mapping.yaml"
    mapping.write_text(DEFAULT_MAPPING_PATH.read_text(encoding="utf-8") + TAGS_MAPPING, encoding="utf-8")
    monkeypatch.setenv("CC_SYNC_MAPPING", str(mapping))
    return world


def _tag_ids(world: SyncWorld) -> dict[str, str]:
    api = ApiClient(world.emulator, world.emulator.admin.issue_access_token())
    answer = api.get("/contact_tags", params={"limit": 500})
    assert answer.ok, answer.text
    return {tag["name"]: tag["tag_id"] for tag in answer.json()["tags"]}


def _tags_of(world: SyncWorld, member_id: int) -> set[str]:
    names = {tag_id: name for name, tag_id in _tag_ids(world).items()}
    return {names[t] for t in world.contact_of(member_id).get("taggings", [])}


def _in_scope_linked(world: SyncWorld) -> list[dict[str, Any]]:
    linked = set(world.linked_member_ids())
    members = world.members("membership_status = 'active' AND deleted_at IS NULL")
    return [row for row in members.to_dict("records") if int(row["member_id"]) in linked]


def _tagging_calls(world: SyncWorld) -> int:
    endpoints = world.emulator.admin.counters()["endpoints"]
    return sum(n for name, n in endpoints.items() if "contacts_taggings" in name or "contact_tags" in name)


def test_tags_follow_the_membership_type_and_a_rerun_writes_nothing(tagged: SyncWorld) -> None:
    world, admin = tagged, tagged.emulator.admin
    people = _in_scope_linked(world)
    changed, opted_out = int(people[0]["member_id"]), int(people[1]["member_id"])
    # An opted-out member: unsubscribed in CC (the sync carries it over to the member).
    admin.opt_out(world.contact_of(opted_out)["contact_id"])
    resubscribes_before = admin.counters()["resubscribes"]

    first = world.sync()
    assert first["state"] == "success", first["tasks"]
    assert first["counts"]["tags_added"] == len(people), "every linked member in scope gets its tag"
    assert set(_tag_ids(world)) == {f"Member: {t}" for t in TYPES}
    for row in people[:5]:
        assert _tags_of(world, int(row["member_id"])) == {f"Member: {row['membership_type']}"}
    assert world.contact_of(opted_out)["email_address"]["permission_to_send"] == "unsubscribed"

    # The membership type changes for a member and for the opted-out member.
    old_type = world.member(changed)["membership_type"]
    new_type = next(t for t in TYPES if t != old_type)
    world.edit_member(changed, membership_type=new_type)
    opted_old = world.member(opted_out)["membership_type"]
    opted_new = next(t for t in TYPES if t != opted_old)
    world.edit_member(opted_out, membership_type=opted_new)
    second = world.sync()
    assert second["state"] == "success", second["tasks"]
    assert (second["counts"]["tags_added"], second["counts"]["tags_removed"]) == (2, 2)
    assert _tags_of(world, changed) == {f"Member: {new_type}"}
    assert _tags_of(world, opted_out) == {f"Member: {opted_new}"}
    contact = world.contact_of(opted_out)
    assert contact["email_address"]["permission_to_send"] == "unsubscribed", "tagging never re-subscribes"
    assert admin.counters()["resubscribes"] == resubscribes_before
    assert admin.counters()["sign_up_form_calls"] == 0
    changes = world.bookkeeping.get_changes(second["run_id"])
    tag_changes = changes.loc[changes["field"] == "tag:membership_type"]
    assert sorted(tag_changes["new_value"]) == sorted([new_type, opted_new])

    # The same again: nothing to tag, untag or write; the tags task reads the tag list only.
    calls_before, all_before = _tagging_calls(world), admin.counters()["api_calls"]
    third = world.sync()
    assert third["state"] == "success", third["tasks"]
    assert third["api_calls"] == admin.counters()["api_calls"] - all_before, "the tags' call is counted"
    counts = third["counts"]
    assert (counts["tags_added"], counts["tags_removed"], counts["member_columns_written"]) == (0, 0, 0)
    assert _tagging_calls(world) - calls_before == 1, "one GET /contact_tags, no tagging activity"
    assert world.bookkeeping.get_changes(third["run_id"]).empty


@pytest.mark.all_dialects
def test_a_tag_changed_in_cc_is_written_back_and_both_changed_is_a_conflict(tagged: SyncWorld) -> None:
    world, admin = tagged, tagged.emulator.admin
    first = world.sync()
    assert first["state"] == "success", first["tasks"]
    people = _in_scope_linked(world)
    from_cc, both = int(people[2]["member_id"]), int(people[3]["member_id"])
    tag_ids = _tag_ids(world)

    # In CC (the UI): one member's tag becomes another type; another's too, while the member
    # database changes that one differently.
    cc_type = next(t for t in TYPES if t != world.member(from_cc)["membership_type"])
    admin.edit_contact(world.contact_of(from_cc)["contact_id"], {"taggings": [tag_ids[f"Member: {cc_type}"]]})
    member_type, cc_other = [t for t in TYPES if t != world.member(both)["membership_type"]]
    admin.edit_contact(world.contact_of(both)["contact_id"], {"taggings": [tag_ids[f"Member: {cc_other}"]]})
    world.edit_member(both, membership_type=member_type)
    # A type too long for the member column (VARCHAR(40)): not written, said in the counts.
    too_long = int(people[4]["member_id"])
    too_long_type = world.member(too_long)["membership_type"]
    api = ApiClient(world.emulator, admin.issue_access_token())
    long_tag = api.post("/contact_tags", json={"name": "Member: " + "x" * 41}).json()["tag_id"]
    admin.edit_contact(world.contact_of(too_long)["contact_id"], {"taggings": [long_tag]})

    second = world.sync()
    assert second["state"] == "success", second["tasks"]
    assert second["counts"]["member_columns_written"] == 1
    assert second["counts"]["tag_conflicts"] == 1
    assert second["counts"]["member_columns_stale"] == 1
    assert world.member(too_long)["membership_type"] == too_long_type
    assert world.member(from_cc)["membership_type"] == cc_type
    assert _tags_of(world, from_cc) == {f"Member: {cc_type}"}
    assert _tags_of(world, both) == {f"Member: {cc_other}"}, "a conflict writes nothing"
    assert world.member(both)["membership_type"] == member_type
    reviews = world.reviews("tag_conflict")
    assert reviews["member_id"].tolist() == [str(both)]


def test_a_dry_run_reports_the_tags_it_would_write_and_writes_none(tagged: SyncWorld) -> None:
    world = tagged
    people = _in_scope_linked(world)
    dry = world.sync(dry_run=True)
    assert dry["state"] == "success", dry["tasks"]
    assert dry["status"] == "dry_run"
    assert dry["tasks"]["tags"] == "success"
    assert dry["counts"]["tags_added"] == len(people)
    assert _tag_ids(world) == {}, "no tag created"
    assert not any(c.get("taggings") for c in world.emulator.admin.all_contacts())
    with world.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM ccsync_tag_base")).scalar_one() == 0
