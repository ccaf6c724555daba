"""Property test of the undo plan: random edits, a real sync run, random edits since, then undo.

The run is planned by the engine (``plan_sync``) and applied as the loader is specified to
(tests/engine/world.py); its change log is the plan's ``changes``, and the bases it replaced are
the bases before it. The undo is planned by ``cc_sync.undo.plan.plan_undo`` from those and from
both sides as they are now, and applied the same way. Then, for every value the run wrote:

- it is back at its value from before the run, or it is reported (an edit since, an opt-out, a
  blank the member load cannot write) and the side holds what it held before the undo;
- a field the undo restored has its base back at what it was before the run;
- nothing the undo did not mean to write changed, and no opt-out was cleared;
- with no edit since the run, nothing is reported as edited since.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cc_sync.undo.plan import SkipReason, plan_undo, same_value
from tests.engine.test_property import (
    EDITABLE,
    FIELDS,
    PEOPLE,
    Event,
    _apply_event,
    _snapshot,
    _world,
    events,
)
from tests.engine.world import World

RUN_ID = "manual__run"
# Edits after the run take values no one held before it, so each one is a real edit since.
since_events = st.builds(
    Event,
    side=st.sampled_from(["member", "cc"]),
    person=st.integers(0, PEOPLE - 1),
    kind=st.sampled_from(["edit", "edit", "edit", "blank", "opt_out"]),
    field=st.sampled_from(EDITABLE),
    value=st.integers(10, 12),
    same_instant=st.just(False),
)


def _replaced_base(before: dict[int, Any]) -> pd.DataFrame:
    rows = [{"member_id": f"m{i}", **before[i]["base"]} for i in range(PEOPLE)]
    return pd.DataFrame(rows).set_index("member_id")


def _side(world: World, direction: str, i: int) -> dict[str, Any]:
    return world.members[f"m{i}"] if direction == "to_member_db" else world.contacts[f"c{i}"]


def _undo(world: World, changes: pd.DataFrame, replaced: pd.DataFrame) -> Any:
    undo = plan_undo(
        RUN_ID,
        changes,
        members=world.member_frame(),
        contacts=world.contact_frame(),
        links=world.link_frame(),
        base=world.base_frame(),
        replaced_base=replaced,
        run_links=pd.DataFrame(columns=["member_id", "contact_id", "rule"]),
    )
    world.apply(undo.plan)
    for row in undo.restore_base.to_dict("records"):
        world.base[row["member_id"]] = {
            "contact_id": row["contact_id"],
            **{f: row.get(f) for f in FIELDS},
            "opted_out": bool(row["opted_out"]),
        }
    return undo


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before_run=st.lists(events, max_size=8), since=st.lists(since_events, max_size=4))
def test_every_field_returns_to_its_value_before_the_run_or_is_reported(
    before_run: list[Event], since: list[Event]
) -> None:
    world = _world()
    for event in before_run:
        _apply_event(world, event)
    pre_run = _snapshot(world)
    run = world.sync(changed_only=False)
    changes = run.changes.assign(run_id=RUN_ID)
    for event in since:
        _apply_event(world, event)
    pre_undo = _snapshot(world)

    undo = _undo(world, changes, _replaced_base(pre_run))
    after = _snapshot(world)

    skipped = {
        (r["direction"], r["member_id"], r["field"]): r["reason"] for r in undo.skipped.to_dict("records")
    }
    restored = {(r["direction"], r["member_id"], r["field"]) for r in undo.plan.changes.to_dict("records")}
    written = set()
    for row in changes.to_dict("records"):
        i, name, direction = int(row["member_id"][1:]), row["field"], row["direction"]
        side = "member" if direction == "to_member_db" else "cc"
        key = (direction, row["member_id"], name)
        written.add((side, i, name))
        if name == "opted_out":
            assert skipped[key] == SkipReason.OPT_OUT
            continue
        now, was = after[i][side][name], pre_run[i][side][name]
        if not same_value(name, pre_undo[i][side][name], row["new_value"]):
            # Edited since the run (or already back): the undo leaves it as it found it.
            assert now == pre_undo[i][side][name], (key, "an edit since the run was overwritten")
        if key in skipped:
            # Reported: the side keeps what it held before the undo (an edit since is never lost).
            assert now == pre_undo[i][side][name], (key, skipped[key])
            if skipped[key] == SkipReason.EDITED_SINCE:
                assert not same_value(name, pre_undo[i][side][name], row["new_value"])
        else:
            assert same_value(name, now, was), (key, now, was)
        if key in restored:
            assert same_value(name, after[i]["base"][name], pre_run[i]["base"][name]), (key, "base")
        if not since:
            assert skipped.get(key) != SkipReason.EDITED_SINCE, key

    for i in range(PEOPLE):
        for side in ("member", "cc"):
            # Never re-subscribed by an undo.
            assert after[i][side]["opted_out"] or not pre_undo[i][side]["opted_out"]
            for name in FIELDS:
                if (side, i, name) not in written:
                    assert after[i][side][name] == pre_undo[i][side][name], (side, i, name, "not the run's")
