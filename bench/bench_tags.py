"""Tags: the sync's tags step over 100,000 linked members (SQLite and the emulator, rate limit off)
with a two-way ``membership_type`` column (Gold, Silver, Bronze) kept as CC tags, on the day 1% of
the members changed type in the member database and nothing changed in CC; then the same again.

The world starts as the previous day's run left it: every contact tagged with its member's type,
the links and the tags' base stored. The step runs on its own (cc_sync.tags.step.sync_tags, the
function the DAG's ``tags`` task calls), so the figures are the tags' alone, not the sync's.

The minimum number of calls: the tag list (one page), then per tag one ``contacts_taggings_add``
for the members who moved to it and one ``contacts_taggings_remove`` for those who left it (500
contacts each), each activity polled once; the rerun reads the tag list and writes nothing.

Run alone: ``python -m bench.bench_tags [--quick]``.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]

TYPES = ("Gold", "Silver", "Bronze")
PREFIX = "Member: "
CHANGE_SHARE = 0.01
IDS_PER_ACTIVITY = 500  # cc_sync.constant_contact.hook.MAX_IDS_PER_TAGGING_ACTIVITY
SEED_CHUNK = 20_000
TAGS_MAPPING = """
tags:
  membership_type: {prefix: "Member: ", direction: two_way}
"""


def tags_scenario(work: Path, members: int) -> dict[str, Any]:
    import pandas as pd
    import sqlalchemy as sa

    from cc_sync.engine.normalise import is_valid_email
    from cc_sync.member_db.bookkeeping import Bookkeeping, upsert
    from cc_sync.settings import DEFAULT_MAPPING_PATH
    from cc_sync.sync.resources import SyncResources
    from cc_sync.tags.step import sync_tags, tag_base_table
    from cc_sync.timeutil import utcnow
    from include import sync_world
    from include.cc_emulator.testing import run_emulator

    work.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{work / 'members.db'}"
    sync_world.create_members(db_url, members)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE members ADD membership_type VARCHAR(40)"))
        conn.execute(
            sa.text(
                "UPDATE members SET membership_type = CASE member_id % 3 "
                "WHEN 0 THEN 'Gold' WHEN 1 THEN 'Silver' ELSE 'Bronze' END"
            )
        )
        rows = conn.execute(
            sa.text(
                "SELECT member_id, email, membership_type FROM members WHERE membership_status = 'active' "
                "AND deleted_at IS NULL AND email IS NOT NULL ORDER BY member_id"
            )
        ).all()
    mapping = work / "member_mapping.yaml"
    mapping.write_text(DEFAULT_MAPPING_PATH.read_text(encoding="utf-8") + TAGS_MAPPING, encoding="utf-8")
    settings = {"rate_limit_per_second": None, "daily_quota": None, "activity_processing_seconds": 0.0}
    with run_emulator(**settings) as emulator:
        for key, value in sync_world.connection_env(emulator, db_url, f"sqlite:///{work / 'cc.db'}").items():
            os.environ[key] = value
        res = SyncResources(mapping_path=mapping)
        tags = res.cc.get_or_create_tags([f"{PREFIX}{t}" for t in TYPES], known={})
        # Yesterday's state: every member with a unique email a contact tagged with its type.
        seen: set[str] = set()
        people = []
        valid = is_valid_email(pd.Series([r[1] for r in rows], dtype="string"))
        for (member_id, email, kind), ok in zip(rows, valid, strict=True):
            key = email.strip().lower()
            if ok and key not in seen:
                seen.add(key)
                people.append((str(member_id), email.strip(), kind))
        contact_ids: list[str] = []
        for start in range(0, len(people), SEED_CHUNK):
            chunk = people[start : start + SEED_CHUNK]
            contact_ids += emulator.admin.seed_contacts(
                contacts=[
                    {
                        "email_address": {"address": email, "permission_to_send": "implicit"},
                        "taggings": [tags[f"{PREFIX}{kind}"].tag_id],
                    }
                    for _, email, kind in chunk
                ]
            )
        bookkeeping = Bookkeeping(engine)
        links = pd.DataFrame(
            {
                "member_id": [p[0] for p in people],
                "contact_id": contact_ids,
                "rule": "name_email",
                "linked_at": utcnow(),
            }
        )
        bookkeeping.upsert_links(links)
        now = utcnow()
        with engine.begin() as conn:
            upsert(
                conn,
                tag_base_table(bookkeeping),
                [
                    {
                        "member_id": p[0],
                        "tag_column": "membership_type",
                        "contact_id": cid,
                        "value": p[2],
                        "run_id": "yesterday",
                        "saved_at": now,
                    }
                    for p, cid in zip(people, contact_ids, strict=True)
                ],
                ["member_id", "tag_column"],
            )
            # Today: 1% of the linked members changed type (each to the next one).
            changed = people[:: int(1 / CHANGE_SHARE)]
            for member_id, _, kind in changed:
                new = TYPES[(TYPES.index(kind) + 1) % len(TYPES)]
                conn.execute(
                    sa.text("UPDATE members SET membership_type = :t WHERE member_id = :m"),
                    {"t": new, "m": int(member_id)},
                )
        moves: dict[tuple[str, str], int] = {}
        for _, _, kind in changed:
            new = TYPES[(TYPES.index(kind) + 1) % len(TYPES)]
            moves[("add", new)] = moves.get(("add", new), 0) + 1
            moves[("remove", kind)] = moves.get(("remove", kind), 0) + 1
        activities = sum(math.ceil(n / IDS_PER_ACTIVITY) for n in moves.values())

        runs = []
        for run in ("today", "again"):
            before = emulator.admin.counters()["api_calls"]
            started = time.perf_counter()
            step_resources = SyncResources(mapping_path=mapping)
            try:
                result = sync_tags(step_resources, None, run_id=f"bench-tags-{run}")
            finally:
                step_resources.close()
            runs.append(
                {
                    "seconds": round(time.perf_counter() - started, 1),
                    "api_calls": emulator.admin.counters()["api_calls"] - before,
                    "counts": result["counts"],
                }
            )
        res.close()
    engine.dispose()
    today, again = runs
    return {
        "linked_members": len(people),
        "changed": len(changed),
        "activities_needed": activities,
        "minimum_calls": 1 + 2 * activities,
        "today": today,
        "again": again,
    }


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    members = 20_000 if quick else 100_000
    scenario = tags_scenario(Path(tempfile.mkdtemp(prefix="ccsync-bench-tags-")), members)
    today, again = scenario["today"], scenario["again"]
    figures = {
        "linked_members": scenario["linked_members"],
        "members_changed": scenario["changed"],
        "tags_added": today["counts"].get("tags_added"),
        "tags_removed": today["counts"].get("tags_removed"),
        "api_calls": today["api_calls"],
        "minimum_calls": scenario["minimum_calls"],
        "seconds": today["seconds"],
        "rerun_api_calls": again["api_calls"],
        "rerun_tags_added": again["counts"].get("tags_added"),
        "rerun_tags_removed": again["counts"].get("tags_removed"),
        "rerun_seconds": again["seconds"],
    }
    results.update({f"tags_{members}_{name}": value for name, value in figures.items()})


if __name__ == "__main__":
    import json

    out: dict[str, Any] = {}
    run(out, quick="--quick" in sys.argv)
    print(json.dumps(out, indent=2))
