"""A list rule's daily run (issue 18, part 2): 100,000 members in SQLite, each linked to its contact
in the emulator (rate limit off, activities processed at once), and a rule binding the segment "has
an email" to the list "Daily". The list holds the segment but for 1% changes: 0.5% of the segment
joined it since (to add) and 0.5% of the list are contacts no longer in it (to remove).

Measured: the ``list_rules`` step (``cc_sync.list_rules.steps.apply_list_rules``) once, its API
calls against the minimum, and its wall time; then a rerun (nothing to change). The minimum: the
account's lists (1 call, with their sizes), the list's members (a contact export: its POST, one
poll, one file read), and each 500 adds or removes one membership activity and one poll.

Set-up outside the measure: the member table, the contacts (seeded through the emulator's admin,
no API call) and the links (recorded in the bookkeeping as a sync leaves them).

Run alone: ``python -m bench.bench_list_rules [--quick]``.
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

LIST_NAME = "Daily"
SEGMENT = "with_email"
CHANGE_SHARE = 0.01  # half joiners, half leavers
MEMBERSHIP_BATCH = 500
SEED_BATCH = 20_000


def _mapping(work: Path) -> Path:
    from cc_sync.sync.resources import DEFAULT_MAPPING_PATH

    text = DEFAULT_MAPPING_PATH.read_text(encoding="utf-8")
    text = text.replace("\nsegments:\n", f"\nsegments:\n  {SEGMENT}: [{{field: email, op: not_null}}]\n", 1)
    text += f"\nlist_rules:\n  - {{segment: {SEGMENT}, list: {LIST_NAME}}}\n"
    path = work / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _seed_world(emulator: Any, resources: Any) -> dict[str, int]:
    """Contacts and links for the segment's members with an email of their own, a list holding them
    less the joiners plus the leavers. Returns the planted changes."""
    import pandas as pd

    from cc_sync.engine.normalise import normalise_email
    from cc_sync.fields import CONTACT_ID, MEMBER_ID, OPTED_OUT

    members = pd.concat(list(resources.members.extract_members(segment=SEGMENT)), ignore_index=True)
    members = members.loc[~members[OPTED_OUT].astype(bool)].copy()
    members["key"] = normalise_email(members["email"])
    members = members.dropna(subset=["key"]).drop_duplicates("key", keep=False)
    admin = emulator.admin
    list_id = admin.create_list(LIST_NAME)
    changes = round(len(members) * CHANGE_SHARE)
    joiners, leavers = changes // 2, changes - changes // 2
    contacts = [
        {"email": email, "first_name": "Member", "last_name": str(member_id)}
        for email, member_id in zip(members["email"].str.strip(), members[MEMBER_ID], strict=True)
    ]
    ids: list[str] = []
    for start in range(0, len(contacts), SEED_BATCH):
        batch = contacts[start : start + SEED_BATCH]
        on_list = [] if start + len(batch) <= joiners else [list_id]
        if start < joiners < start + len(batch):  # the first `joiners` are not on the list yet
            ids += admin.seed_contacts(contacts=batch[: joiners - start])
            ids += admin.seed_contacts(contacts=batch[joiners - start :], list_ids=[list_id])
        else:
            ids += admin.seed_contacts(contacts=batch, list_ids=on_list)
    strangers = [{"email": f"former.{n}@example.net", "last_name": "Former"} for n in range(leavers)]
    admin.seed_contacts(contacts=strangers, list_ids=[list_id])
    links = pd.DataFrame({MEMBER_ID: members[MEMBER_ID].astype(str).to_numpy(), CONTACT_ID: ids})
    resources.bookkeeping.upsert_links(links.assign(rule="bench"))
    return {"segment_linked": len(links), "joiners": joiners, "leavers": leavers}


def _measure(emulator: Any, resources: Any, run_id: str) -> tuple[dict[str, Any], int, float]:
    from cc_sync.list_rules.steps import apply_list_rules

    before = emulator.admin.counters()["api_calls"]
    started = time.perf_counter()
    counts = apply_list_rules(
        resources, run_id=run_id, dry_run=False, allow_mass_change=False, max_share=0.25
    )
    seconds = time.perf_counter() - started
    return counts, emulator.admin.counters()["api_calls"] - before, seconds


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    from cc_sync.sync.resources import SyncResources
    from include import sync_world
    from include.cc_emulator.testing import run_emulator

    members = 10_000 if quick else 100_000
    work = Path(tempfile.mkdtemp(prefix="ccsync-bench-rules-"))
    db_url = f"sqlite:///{work / 'members.db'}"
    sync_world.create_members(db_url, members)
    unlimited = {"rate_limit_per_second": None, "daily_quota": None, "activity_processing_seconds": 0.0}
    with run_emulator(**unlimited) as emulator:
        env = sync_world.connection_env(emulator, db_url, f"sqlite:///{work / 'cc-state.db'}")
        os.environ.update(env)
        resources = SyncResources(mapping_path=_mapping(work))
        try:
            planted = _seed_world(emulator, resources)
            counts, calls, seconds = _measure(emulator, resources, "bench-list-rules-1")
            rerun_counts, rerun_calls, rerun_seconds = _measure(emulator, resources, "bench-list-rules-2")
        finally:
            resources.close()
    batches = math.ceil(planted["joiners"] / MEMBERSHIP_BATCH) + math.ceil(
        planted["leavers"] / MEMBERSHIP_BATCH
    )
    minimum = 1 + 3 + 2 * batches
    prefix = f"list_rules_{members}"
    results[f"{prefix}_segment_linked"] = planted["segment_linked"]
    results[f"{prefix}_planted_adds"] = planted["joiners"]
    results[f"{prefix}_planted_removes"] = planted["leavers"]
    results[f"{prefix}_added"] = counts["list_rule_added"]
    results[f"{prefix}_removed"] = counts["list_rule_removed"]
    results[f"{prefix}_api_calls"] = calls
    results[f"{prefix}_minimum_calls"] = minimum
    results[f"{prefix}_calls_over_minimum"] = calls - minimum
    results[f"{prefix}_seconds"] = round(seconds, 1)
    results[f"{prefix}_rerun_api_calls"] = rerun_calls
    results[f"{prefix}_rerun_changes"] = rerun_counts["list_rule_added"] + rerun_counts["list_rule_removed"]
    results[f"{prefix}_rerun_seconds"] = round(rerun_seconds, 1)
    if (counts["list_rule_added"], counts["list_rule_removed"]) != (planted["joiners"], planted["leavers"]):
        raise RuntimeError(f"the rule changed {counts}, not the planted {planted}")


if __name__ == "__main__":
    import json

    out: dict[str, Any] = {}
    run(out, quick="--quick" in sys.argv)
    print(json.dumps(out, indent=2))
