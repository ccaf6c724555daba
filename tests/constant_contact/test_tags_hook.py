"""The hook's tags over real HTTP: the tag list, tags created once (a name taken meanwhile is found,
not an error), and the bulk tagging activities in batches of 500 that leave consent alone."""

from __future__ import annotations

import pytest

from cc_sync.constant_contact.hook import TAGGINGS_ADD_PATH, TAGGINGS_REMOVE_PATH
from cc_sync.constant_contact.models import ActivityState
from tests.emulator.conftest import ApiClient


def test_get_or_create_tags_creates_only_the_missing_ones(emulator, hook):
    made = hook.get_or_create_tags(["Member: Gold", "Member: Silver"])
    again = hook.get_or_create_tags(["Member: Silver", "Chapter: North"])
    assert again["Member: Silver"] == made["Member: Silver"]
    assert sorted(t.name for t in hook.iter_tags()) == ["Chapter: North", "Member: Gold", "Member: Silver"]
    assert emulator.admin.counters()["endpoints"]["POST /v3/contact_tags"] == 3


def test_a_tag_made_by_someone_else_meanwhile_is_found_after_the_409(emulator, hook):
    api = ApiClient(emulator, emulator.admin.issue_access_token())
    made = api.post("/contact_tags", json={"name": "Committee: Finance"}).json()
    # The caller's view of the account is stale: it does not know the tag exists.
    found = hook.get_or_create_tags(["Committee: Finance"], known={})
    assert found["Committee: Finance"].tag_id == made["tag_id"]


@pytest.mark.parametrize(("contacts", "activities"), [(3, 1), (501, 2)])
def test_tagging_goes_in_batches_of_500_and_untagging_undoes_it(emulator, hook, contacts, activities):
    ids = emulator.admin.seed_contacts(count=contacts, seed=5)
    emulator.admin.opt_out(ids[0])
    tag = hook.get_or_create_tags(["Member: Gold"])["Member: Gold"]
    added = hook.run_activities(hook.tagging_requests(TAGGINGS_ADD_PATH, ids, [tag.tag_id]))
    assert len(added) == activities
    assert {a.state for a in added} == {ActivityState.COMPLETED}
    assert all(tag.tag_id in emulator.admin.get_contact(c)["taggings"] for c in ids)
    opted_out = emulator.admin.get_contact(ids[0])
    assert opted_out["email_address"]["permission_to_send"] == "unsubscribed", "tagging keeps consent"
    assert emulator.admin.counters()["resubscribes"] == 0
    removed = hook.run_activities(hook.tagging_requests(TAGGINGS_REMOVE_PATH, ids, [tag.tag_id]))
    assert len(removed) == activities
    assert not any(tag.tag_id in emulator.admin.get_contact(c)["taggings"] for c in ids[:5])


def test_contacts_are_read_with_their_taggings(emulator, hook):
    tag = hook.get_or_create_tags(["Chapter: North"])["Chapter: North"]
    (contact_id,) = emulator.admin.seed_contacts(count=1, seed=9)
    hook.run_activities(hook.tagging_requests(TAGGINGS_ADD_PATH, [contact_id], [tag.tag_id]))
    (contact,) = [c for c in hook.iter_contacts() if c["contact_id"] == contact_id]
    assert contact["taggings"] == [tag.tag_id]
