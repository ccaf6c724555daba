"""Benchmark of the sync engine alone (compare + link + resolve) against a bare pandas outer merge.

Frames as a real incremental-or-full run sees them at scale: N members (sorted by member_id, as a
database extract comes), N CC contacts (in CC's own order, unrelated to the members'), N links and
N base rows, everyone linked, a realistic 1% of people changed (member edits, CC edits, edits of the
same person on both sides, opt-outs on each side, email changes, a few deletions). The baseline is
the least any engine must do: one pandas outer merge lining up the same two frames on one key
(the contacts' member_id is attached before the clock starts, so the baseline is not charged for
the link lookup the engine does). Peak memory is the process's resident-set high-water mark
sampled during the engine call (pyarrow's buffers are invisible to tracemalloc). A second figure
times a first sync (nobody linked yet) of 100,000 people, the size of the end-to-end benchmark.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(ROOT / "plugins")):
    if path not in sys.path:
        sys.path.insert(0, path)

from cc_sync.engine import default_policies, plan_sync  # noqa: E402

TEXT_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "company_name",
    "job_title",
    "phone_home",
    "phone_work",
    "phone_mobile",
    "street",
    "city",
    "state",
    "postal_code",
    "country",
    "cf:membership_level",
)
INT_FIELDS = ("birthday_month", "birthday_day")
FIELDS = TEXT_FIELDS + INT_FIELDS
STRING = "string[pyarrow]"


def _text(prefix: str, numbers: np.ndarray) -> pd.Series:
    array = pc.binary_join_element_wise(prefix, pa.array(numbers).cast(pa.string()), "")
    return pd.Series(pd.arrays.ArrowStringArray(array))


def make_frames(n: int, change_share: float = 0.01, seed: int = 7) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    member_ids = _text("m", ids + 10_000_000)
    contact_ids = _text("c-", rng.permutation(n) + 50_000_000)
    values: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if name == "email":
            values[name] = _text("person", ids) + "@example.org"
        else:
            values[name] = _text(name[:4], rng.integers(0, 5_000, n))
    values["birthday_month"] = pd.array(rng.integers(1, 13, n), dtype="Int64")
    values["birthday_day"] = pd.array(rng.integers(1, 29, n), dtype="Int64")
    long_ago = pd.Timestamp("2026-01-01", tz="UTC")

    base = pd.DataFrame({"member_id": member_ids, "contact_id": contact_ids, **values, "opted_out": False})
    links = base[["member_id", "contact_id"]]
    members = base.drop(columns="contact_id").assign(updated_at=long_ago, row_version=_text("v", ids))
    contacts = base.drop(columns="member_id").assign(updated_at=long_ago, opted_out_at=pd.NaT, deleted=False)

    k = max(1, int(n * change_share))
    edited = rng.choice(n, size=k, replace=False)
    quarter = k // 4
    member_edits, cc_edits, both = (
        edited[:quarter],
        edited[quarter : 2 * quarter],
        edited[2 * quarter : 3 * quarter],
    )
    rest = edited[3 * quarter :]
    city = members.columns.get_loc("city")
    members.iloc[np.concatenate([member_edits, both]), city] = "Member City"
    members.loc[members.index[np.concatenate([member_edits, both])], "updated_at"] = pd.Timestamp(
        "2026-02-02", tz="UTC"
    )
    contacts.loc[contacts.index[np.concatenate([cc_edits, both])], "job_title"] = "CC Title"
    contacts.loc[contacts.index[np.concatenate([cc_edits, both])], "updated_at"] = pd.Timestamp(
        "2026-02-03", tz="UTC"
    )
    third = len(rest) // 3
    members.loc[members.index[rest[:third]], "opted_out"] = True
    contacts.loc[contacts.index[rest[third : 2 * third]], "opted_out"] = True
    email_moves = rest[2 * third :]
    members.loc[members.index[email_moves], "email"] = _text("moved", email_moves).to_numpy() + "@example.net"
    contacts.loc[contacts.index[email_moves[:5]], "deleted"] = True
    # CC returns contacts in its own order, not the member database's.
    contacts = contacts.iloc[rng.permutation(n)].reset_index(drop=True)
    directory = contacts[["contact_id", "email", "first_name", "last_name", "opted_out", "deleted"]]
    return {
        "members": members,
        "contacts": contacts,
        "links": links,
        "base": base,
        "directory": directory,
        "contacts_keyed": contacts.merge(links, on="contact_id"),
    }


class PeakRss:
    """Sample the process's resident set every few milliseconds; ``peak`` is the high-water mark."""

    def __init__(self, interval: float = 0.005) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _best_of(repeats: int, action: Any) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def _measure_first_sync(results: dict[str, Any], policies: dict[str, Any]) -> None:
    """A first sync: nobody linked yet, so every member goes through normalisation and linking."""
    people = 100_000
    first = make_frames(people, change_share=0.0001)
    no_links, no_base = first["links"].iloc[:0], first["base"].iloc[:0]
    seconds, plan = _best_of(
        1,
        lambda: plan_sync(
            first["members"], first["contacts"], no_links, no_base, first["directory"], policies=policies
        ),
    )
    results["initial_link_people"] = people
    results["initial_link_seconds"] = round(seconds, 2)
    results["initial_link_new_links"] = len(plan.new_links)


def run(results: dict[str, Any], *, quick: bool = False) -> None:
    n = 100_000 if quick else 1_000_000
    repeats = 3
    frames = make_frames(n)
    policies = default_policies(FIELDS)
    results["people"] = n
    results["fields"] = len(FIELDS)
    results["changed_share"] = "1%"

    baseline_s, merged = _best_of(
        repeats, lambda: frames["members"].merge(frames["contacts_keyed"], on="member_id", how="outer")
    )
    del merged

    def engine() -> Any:
        return plan_sync(
            frames["members"],
            frames["contacts"],
            frames["links"],
            frames["base"],
            frames["directory"],
            policies=policies,
        )

    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    with PeakRss() as peak:
        engine_s, plan = _best_of(repeats, engine)
    summary = plan.summary()
    results["baseline_outer_merge_seconds"] = round(baseline_s, 3)
    results["engine_seconds"] = round(engine_s, 3)
    results["engine_to_merge_ratio"] = round(engine_s / baseline_s, 2)
    results["target_ratio"] = "<= 2"
    results["peak_rss_mib"] = round(peak.peak / 2**20)
    results["rss_before_engine_mib"] = round(rss_before / 2**20)
    results["target_peak"] = "<= 4096 MiB"
    for key in ("pairs_compared", "changed_people", "member_updates", "cc_updates", "cc_puts", "unlinks"):
        results[f"plan_{key}"] = summary[key]
    results["plan_changes_logged"] = summary["changes"]
    _measure_first_sync(results, policies)


if __name__ == "__main__":
    figures: dict[str, Any] = {}
    run(figures, quick="--quick" in sys.argv)
    for key, value in figures.items():
        print(f"{key}: {value}")
