"""The engine's vocabulary: the kinds, reasons and sides a plan speaks in, and the plan itself.

Every frame of a :class:`SyncPlan` is a plain pandas DataFrame with the columns listed on the
field that holds it, so the loader, the bookkeeping tables and the tests read one definition.
Identifiers are strings; values in the change log are strings (integers are written as text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd

from cc_sync.fields import CONTACT_ID, MEMBER_ID


class Side(StrEnum):
    """Where a record, a change or an opt-out lives."""

    MEMBER_DB = "member_db"
    CC = "cc"


class WriteDirection(StrEnum):
    """Which side a planned write goes to."""

    TO_CC = "to_cc"
    TO_MEMBER_DB = "to_member_db"


class LinkRule(StrEnum):
    NAME_EMAIL = "name_email"  # first + last name + email equal after normalisation


class ReviewKind(StrEnum):
    """Why a person went to the review queue instead of being linked or written."""

    NEAR_MATCH = "near_match"  # same email, another name (Anne / Annabelle)
    SHARED_EMAIL = "shared_email"  # several members on one email (a household)
    AMBIGUOUS = "ambiguous"  # one member matching several contacts
    EMAIL_COLLISION = "email_collision"  # a changed email already belongs to someone else
    RESUBSCRIBED_IN_CC = "resubscribed_in_cc"  # CC shows a past opt-out undone (by the contact)
    RESUBSCRIBED_IN_MEMBER_DB = "resubscribed_in_member_db"  # the member flag was cleared by hand
    DELETED_IN_CC = "deleted_in_cc"  # the member's email belongs to a deleted CC contact


class RejectReason(StrEnum):
    """Why a row (or one field of it) was not sent; everything else in the run still goes through."""

    NO_EMAIL = "no_email"
    INVALID_EMAIL = "invalid_email"
    TOO_LONG = "too_long"
    DUPLICATE_ID = "duplicate_id"
    MISSING_ID = "missing_id"
    OPTED_OUT = "opted_out"  # an opted-out member is never created in CC
    REQUIRED_BLANK = "required_blank"  # a field the mapping requires is blank (and no placeholder)


class ChangeReason(StrEnum):
    """Why a field was written: the rule of the resolver that decided it."""

    MEMBER_CHANGED = "member_changed"  # changed in the member database only (or filled it first)
    CC_CHANGED = "cc_changed"  # changed in CC only
    CONFLICT_MEMBER_LATER = "conflict_member_later"  # both changed; the member record changed later
    CONFLICT_CC_LATER = "conflict_cc_later"  # both changed; the CC contact changed later
    CONFLICT_TIE_MEMBER = "conflict_tie_member_db"  # both changed at the same instant: member DB wins
    OWNER_MEMBER = "owner_member_db"  # both changed; the policy makes the member DB the owner
    OWNER_CC = "owner_cc"  # both changed; the policy makes CC the owner
    OPT_OUT = "opt_out"  # consent: an opt-out on one side applied to the other
    CREATED = "created"  # a new CC contact made from a member


class UnlinkReason(StrEnum):
    CC_DELETED = "cc_deleted"


# Column names of the plan's frames that are not canonical fields.
RULE = "rule"
KIND = "kind"
FIELD = "field"
DETAIL = "detail"
REASON = "reason"
DIRECTION = "direction"
OLD_VALUE = "old_value"
NEW_VALUE = "new_value"
ROW_VERSION = "row_version"
CLEARED_FIELDS = "cleared_fields"  # comma-separated fields to set to NULL (a blank that may wipe)
UNSUBSCRIBE = "unsubscribe"
EMAIL_CHANGE = "email_change"
SOURCE = "source"
WHEN = "opted_out_at"

NEW_LINKS_COLUMNS = (MEMBER_ID, CONTACT_ID, RULE)
REVIEWS_COLUMNS = (KIND, MEMBER_ID, CONTACT_ID, FIELD, DETAIL)
REJECTED_COLUMNS = (MEMBER_ID, CONTACT_ID, FIELD, REASON, DETAIL)
CHANGES_COLUMNS = (DIRECTION, MEMBER_ID, CONTACT_ID, FIELD, OLD_VALUE, NEW_VALUE, REASON)
UNLINKS_COLUMNS = (MEMBER_ID, CONTACT_ID, REASON)
CONSENT_COLUMNS = (MEMBER_ID, CONTACT_ID, SOURCE, WHEN, DIRECTION)
MEMBER_OPT_OUTS_COLUMNS = (MEMBER_ID, ROW_VERSION, CONTACT_ID, SOURCE, WHEN)


def empty_frame(columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="string[pyarrow]") for c in columns})


def _frame(columns: tuple[str, ...]) -> pd.DataFrame:
    return empty_frame(columns)


@dataclass(frozen=True)
class SyncPlan:
    """Everything one sync run would write, and why; computed without any I/O.

    Wide frames (``member_updates``, ``cc_updates``, ``cc_puts``, ``cc_creates``, ``new_base``)
    carry only the canonical columns that something writes; NA means "leave alone". A blank that
    a policy lets wipe a value is listed in ``cleared_fields`` instead, so NA keeps one meaning.
    """

    # member_id, contact_id, rule: pairs linked by this run.
    new_links: pd.DataFrame = field(default_factory=lambda: _frame(NEW_LINKS_COLUMNS))
    # kind, member_id, contact_id, field, detail: for a person to decide; nothing written for them.
    reviews: pd.DataFrame = field(default_factory=lambda: _frame(REVIEWS_COLUMNS))
    # member_id, row_version, contact_id, <changed fields>, cleared_fields: member writes. row_version
    # is NA when the member was not extracted this run (so unchanged since the base, unless the
    # base carries a row_version): the loader's optimistic check then compares with the base values.
    member_updates: pd.DataFrame = field(default_factory=lambda: _frame((MEMBER_ID, ROW_VERSION, CONTACT_ID)))
    # member_id, row_version, contact_id, source, opted_out_at: set the member's opt-out flag.
    member_opt_outs: pd.DataFrame = field(default_factory=lambda: _frame(MEMBER_OPT_OUTS_COLUMNS))
    # contact_id, member_id, email (CC's current email: the import's key), <changed fields>: bulk import.
    cc_updates: pd.DataFrame = field(default_factory=lambda: _frame((CONTACT_ID, MEMBER_ID, "email")))
    # contact_id, member_id, email_change, unsubscribe, <changed fields>, cleared_fields: GET, merge, PUT.
    cc_puts: pd.DataFrame = field(
        default_factory=lambda: _frame((CONTACT_ID, MEMBER_ID, EMAIL_CHANGE, UNSUBSCRIBE, CLEARED_FIELDS))
    )
    # member_id, email, <fields>: members to import as new contacts (then link them by email).
    cc_creates: pd.DataFrame = field(default_factory=lambda: _frame((MEMBER_ID, "email")))
    # member_id, contact_id, source (side the opt-out came from), opted_out_at, direction (written to).
    consent: pd.DataFrame = field(default_factory=lambda: _frame(CONSENT_COLUMNS))
    # member_id, contact_id, reason: links to drop (their base goes with them); members untouched.
    unlinks: pd.DataFrame = field(default_factory=lambda: _frame(UNLINKS_COLUMNS))
    # member_id, contact_id, field, reason, detail: input not sent.
    rejected: pd.DataFrame = field(default_factory=lambda: _frame(REJECTED_COLUMNS))
    # direction, member_id, contact_id, field, old_value, new_value, reason: one row per value written.
    changes: pd.DataFrame = field(default_factory=lambda: _frame(CHANGES_COLUMNS))
    # member_id, contact_id, <all synced fields>, opted_out: the base after this plan, for touched links.
    new_base: pd.DataFrame = field(default_factory=lambda: _frame((MEMBER_ID, CONTACT_ID)))
    # contact_id: linked this run but not in ``contacts``: fetch them and plan again to merge them.
    hydrate: pd.DataFrame = field(default_factory=lambda: _frame((CONTACT_ID,)))
    # Linked pairs compared this run (both sides known).
    pairs_compared: int = 0

    def summary(self) -> dict[str, int]:
        """Counts per action, for the task log, the runs table and the guard rails."""
        puts = self.cc_puts
        counts = {
            "pairs_compared": self.pairs_compared,
            "new_links": len(self.new_links),
            "reviews": len(self.reviews),
            "member_updates": len(self.member_updates),
            "member_opt_outs": len(self.member_opt_outs),
            "cc_updates": len(self.cc_updates),
            "cc_puts": len(puts),
            "cc_email_changes": int(puts[EMAIL_CHANGE].notna().sum()) if len(puts) else 0,
            "cc_unsubscribes": int(puts[UNSUBSCRIBE].fillna(False).astype(bool).sum()) if len(puts) else 0,
            "cc_creates": len(self.cc_creates),
            "consent": len(self.consent),
            "unlinks": len(self.unlinks),
            "rejected": len(self.rejected),
            "changes": len(self.changes),
            "changed_people": self.changed_people(),
            "hydrate": len(self.hydrate),
        }
        for kind in ReviewKind:
            counts[f"review_{kind.value}"] = int((self.reviews[KIND] == kind.value).sum())
        for reason in RejectReason:
            counts[f"rejected_{reason.value}"] = int((self.rejected[REASON] == reason.value).sum())
        return counts

    def changed_people(self) -> int:
        """Linked people who get any field or consent write on either side (creates excluded)."""
        ids = pd.concat(
            [
                self.member_updates[MEMBER_ID],
                self.member_opt_outs[MEMBER_ID],
                self.cc_updates[MEMBER_ID],
                self.cc_puts[MEMBER_ID],
            ],
            ignore_index=True,
        )
        return int(ids.dropna().nunique())

    @property
    def writes_anything(self) -> bool:
        return any(
            len(frame)
            for frame in (
                self.new_links,
                self.member_updates,
                self.member_opt_outs,
                self.cc_updates,
                self.cc_puts,
                self.cc_creates,
                self.unlinks,
            )
        )
