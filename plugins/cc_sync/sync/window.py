"""What one run reads: everything (the initial sync, a full reconcile) or what changed since the
watermarks, less a small overlap so a change committed while the last run was reading is not missed.

Watermarks move only in :mod:`.recording`, after the load succeeded, so a failed run is read again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cc_sync import settings
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.timeutil import iso, parse_utc

# Reads overlap the previous window by this much: CC indexes changes with a short lag, and a member
# row may commit with an updated_at just before the last read finished. (Benchmarks shorten it.)
# A full reconcile this often catches what incremental reads cannot see (e.g. list-only changes).
RECONCILE_EVERY = timedelta(days=7)


class Stream(StrEnum):
    """Watermark names in the bookkeeping."""

    MEMBERS = "members"
    CC_CONTACTS = "cc_contacts"
    FULL_RECONCILE = "full_reconcile"


class ReadMode(StrEnum):
    INITIAL = "initial"  # nothing synced yet
    FULL_RECONCILE = "full_reconcile"  # asked for, or due
    INCREMENTAL = "incremental"


@dataclass(frozen=True)
class SyncWindow:
    mode: ReadMode
    started_at: str  # when this run began reading: the next watermark of both streams
    members_since: str | None
    cc_since: str | None

    @property
    def full(self) -> bool:
        return self.mode != ReadMode.INCREMENTAL

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "full": self.full}


def plan_window(
    bookkeeping: Bookkeeping,
    *,
    now: datetime,
    full_reconcile: bool = False,
    reset_watermark_to: str | datetime | None = None,
    reconcile_every: timedelta = RECONCILE_EVERY,
) -> SyncWindow:
    """Decide what this run reads.

    :param full_reconcile: read both sides whole (the trigger form's switch).
    :param reset_watermark_to: read changes since this time instead of the stored watermarks
        (Membrain's "update sync timestamp"); stored once the run succeeds.
    """
    members_mark = bookkeeping.get_watermark(Stream.MEMBERS)
    cc_mark = bookkeeping.get_watermark(Stream.CC_CONTACTS)
    reset = parse_utc(reset_watermark_to)
    if reset is not None:
        members_mark = cc_mark = reset
    last_reconcile = bookkeeping.get_watermark(Stream.FULL_RECONCILE)

    if members_mark is None or cc_mark is None:
        mode = ReadMode.INITIAL
    elif full_reconcile or last_reconcile is None or now - last_reconcile >= reconcile_every:
        mode = ReadMode.FULL_RECONCILE
    else:
        mode = ReadMode.INCREMENTAL
    if mode != ReadMode.INCREMENTAL:
        return SyncWindow(mode, iso(now) or "", None, None)
    overlap = settings.read_overlap()
    return SyncWindow(mode, iso(now) or "", iso(members_mark - overlap), iso(cc_mark - overlap))
