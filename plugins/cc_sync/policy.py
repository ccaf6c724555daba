"""How a field, and the sync as a whole, may flow: the settings the mapping gives and the engine obeys."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SyncDirection(StrEnum):
    """The overall direction of a sync (the mapping's top-level ``direction``)."""

    TWO_WAY = "two_way"
    TO_CC = "to_cc"  # member database -> Constant Contact only
    FROM_CC = "from_cc"  # Constant Contact -> member database only


class FieldDirection(StrEnum):
    BOTH = "both"
    TO_CC = "to_cc"
    FROM_CC = "from_cc"


class FieldOwner(StrEnum):
    """Who wins when both sides changed a field since the last sync."""

    LATEST = "latest"  # the later change, by each side's last-modified time (Realm's rule)
    MEMBER_DB = "member_db"
    CC = "cc"


@dataclass(frozen=True)
class FieldPolicy:
    direction: FieldDirection = FieldDirection.BOTH
    owner: FieldOwner = FieldOwner.LATEST
    # A blank never wipes a filled value unless this is set (PieSync's and HubSpot's rule).
    blank_overwrites: bool = False

    def flows_to_cc(self, sync: SyncDirection = SyncDirection.TWO_WAY) -> bool:
        return sync != SyncDirection.FROM_CC and self.direction != FieldDirection.FROM_CC

    def flows_to_member_db(self, sync: SyncDirection = SyncDirection.TWO_WAY) -> bool:
        return sync != SyncDirection.TO_CC and self.direction != FieldDirection.TO_CC
