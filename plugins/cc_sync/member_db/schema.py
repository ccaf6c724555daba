"""The bookkeeping tables' schema, the statuses and kinds stored in them, and the two small reads a
DAG file makes when it is parsed (the undo's list of recent runs).

Kept apart from :mod:`cc_sync.member_db.bookkeeping` (which needs pandas) so that a DAG file can
read a few rows of the bookkeeping with SQLAlchemy alone: a parse must stay light.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

DEFAULT_PREFIX = "ccsync_"
ID_LENGTH = 64  # member ids (as text) and CC contact ids (UUIDs, 36)
RUN_ID_LENGTH = 250  # Airflow run ids are at most 250 characters
KEY_LENGTH = 40  # sha1 hex of a natural key
EMAIL_HINT_LENGTH = 100
TAG_COLUMN_LENGTH = 100  # a member column's name
TAG_NAME_LENGTH = 255  # CC's limit on a tag name, so on any value a tag is named from
UPSERT_BATCH = 5_000


class ReviewKind(StrEnum):
    AMBIGUOUS_LINK = "ambiguous_link"
    NEAR_MATCH = "near_match"
    REJECTED_ROW = "rejected_row"
    EMAIL_COLLISION = "email_collision"
    SHARED_EMAIL = "shared_email"
    EVENT_REGISTRANT = "event_registrant"  # registered for an event, matches no member
    TAG_CONFLICT = "tag_conflict"  # a two-way tag column changed in both places since the last run


class ReviewStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    DRY_RUN = "dry_run"


class RunKind(StrEnum):
    """What a run did; the sync's own kinds are its window modes (initial, incremental, full)."""

    DRY_RUN = "dry_run"


class ChangeDirection(StrEnum):
    TO_CC = "to_cc"
    TO_MEMBER_DB = "to_member_db"
    LINK = "link"
    DECISION = "decision"  # a person's decision on a review item, as the run that applied it logs it


class Decision(StrEnum):
    """What a person may decide about a review item in the sync console."""

    LINK = "link"  # link these two (with a base of the values both sides agree on)
    KEEP_APART = "keep_apart"  # never suggest this pair again
    TAKE_MEMBER = "take_member"  # a conflict: the member database's value wins
    TAKE_CC = "take_cc"  # a conflict: Constant Contact's value wins
    RETRY = "retry"  # the row was fixed: send it again on the next run
    DISMISS = "dismiss"  # close the item, nothing to do


class DecisionStatus(StrEnum):
    PENDING = "pending"  # recorded; the next sync run applies it
    APPLIED = "applied"
    FAILED = "failed"  # could not be applied (the outcome says why); the item stays open


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC on every dialect and read back tz-aware (UTC)."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        # MariaDB's DATETIME drops microseconds unless asked to keep them.
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None or type(value).__name__ == "NaTType":  # pandas' NaT, without importing pandas
            return None
        if hasattr(value, "to_pydatetime"):  # a pandas Timestamp
            value = value.to_pydatetime()
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: bookkeeping timestamps must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def timestamp_literal(value: datetime) -> sa.ColumnElement[Any]:
    """``value`` as SQL text, naive UTC as :class:`UtcDateTime` stores it, for a column that holds
    one value in every row of a bulk insert: the database writes it, where a bound value is
    converted per row (seconds for the million rows of a first sync's change log)."""
    naive = UtcDateTime().process_bind_param(value, dialect=None)  # refuses a naive datetime
    return sa.literal_column(f"'{naive.strftime('%Y-%m-%d %H:%M:%S.%f')}'", type_=UtcDateTime())


def _id(name: str, nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.String(ID_LENGTH), nullable=nullable, **kw)


@functools.cache
def build_metadata(prefix: str = DEFAULT_PREFIX) -> sa.MetaData:
    """The bookkeeping tables under ``prefix``; the migrations create exactly these.

    Built once per prefix and process (read only afterwards): a task opens several
    :class:`~cc_sync.member_db.bookkeeping.Bookkeeping`, and building the tables costs ~15 ms each."""
    md = sa.MetaData()
    sa.Table(
        f"{prefix}links",
        md,
        _id("member_id", primary_key=True),
        _id("contact_id"),
        sa.Column("rule", sa.String(50), nullable=False),
        sa.Column("linked_at", UtcDateTime(), nullable=False),
        sa.Column("run_id", sa.String(RUN_ID_LENGTH)),
        sa.Index(f"{prefix}ix_links_contact", "contact_id", unique=True),
    )
    sa.Table(
        f"{prefix}base",
        md,
        _id("member_id", primary_key=True),
        _id("contact_id", nullable=True),
        sa.Column("field_values", sa.Text(), nullable=False),  # JSON object of canonical fields
        sa.Column("opted_out", sa.Boolean(), nullable=False, default=False),
        sa.Column("member_hash", sa.String(KEY_LENGTH)),
        sa.Column("saved_at", UtcDateTime(), nullable=False),
        sa.Column("run_id", sa.String(RUN_ID_LENGTH)),
    )
    sa.Table(
        f"{prefix}watermarks",
        md,
        sa.Column("stream", sa.String(100), primary_key=True),
        sa.Column("watermark", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    sa.Table(
        f"{prefix}changes",
        md,
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("run_id", sa.String(RUN_ID_LENGTH), nullable=False),
        sa.Column("direction", sa.String(20), nullable=False),
        _id("member_id", nullable=True),
        _id("contact_id", nullable=True),
        sa.Column("field", sa.String(100), nullable=False),
        sa.Column("old_value", sa.Text()),
        sa.Column("new_value", sa.Text()),
        sa.Column("reason", sa.String(255)),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        # A run's changes, by field: how a rerun finds what it logged (member_db.bookkeeping).
        sa.Index(f"{prefix}ix_changes_run_field", "run_id", "field"),
        sa.Index(f"{prefix}ix_changes_member", "member_id"),
        sa.Index(f"{prefix}ix_changes_contact", "contact_id"),
    )
    sa.Table(
        f"{prefix}reviews",
        md,
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        # Set while the item is open and NULL once closed: unique, so one open item per natural key.
        sa.Column("open_key", sa.String(KEY_LENGTH)),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _id("member_id", nullable=True),
        _id("contact_id", nullable=True),
        sa.Column("email_hint", sa.String(EMAIL_HINT_LENGTH)),  # masked email or its hash, never the address
        sa.Column("detail", sa.Text()),
        sa.Column("run_id", sa.String(RUN_ID_LENGTH)),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("resolved_at", UtcDateTime()),
        sa.Index(f"{prefix}ix_reviews_open", "open_key", unique=True),
        sa.Index(f"{prefix}ix_reviews_status", "status", "kind"),
        sa.Index(f"{prefix}ix_reviews_status_created", "status", "created_at"),
        sa.Index(f"{prefix}ix_reviews_member", "member_id"),
        sa.Index(f"{prefix}ix_reviews_contact", "contact_id"),
    )
    sa.Table(
        f"{prefix}consent",
        md,
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("consent_key", sa.String(KEY_LENGTH), nullable=False),
        _id("member_id", nullable=True),
        _id("contact_id", nullable=True),
        sa.Column("side", sa.String(20), nullable=False),
        sa.Column("source", sa.String(100)),
        sa.Column("opted_out_at", UtcDateTime()),
        sa.Column("run_id", sa.String(RUN_ID_LENGTH)),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Index(f"{prefix}ix_consent_key", "consent_key", unique=True),
        sa.Index(f"{prefix}ix_consent_member", "member_id"),
        sa.Index(f"{prefix}ix_consent_contact", "contact_id"),
    )
    sa.Table(
        f"{prefix}activity",
        md,
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("event_key", sa.String(KEY_LENGTH), nullable=False),
        _id("contact_id", nullable=True),
        _id("member_id", nullable=True),
        sa.Column("campaign_id", sa.String(ID_LENGTH)),
        sa.Column("campaign_activity_id", sa.String(ID_LENGTH)),
        sa.Column("event_type", sa.String(30), nullable=False),
        sa.Column("occurred_at", UtcDateTime()),
        sa.Column("detail", sa.Text()),
        sa.Column("run_id", sa.String(RUN_ID_LENGTH)),
        sa.Index(f"{prefix}ix_activity_key", "event_key", unique=True),
        sa.Index(f"{prefix}ix_activity_member", "member_id"),
    )
    sa.Table(
        f"{prefix}runs",
        md,
        sa.Column("run_id", sa.String(RUN_ID_LENGTH), primary_key=True),
        sa.Column("dag_id", sa.String(250)),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime()),
        sa.Column("counts", sa.Text()),  # JSON object: action -> count
        sa.Column("api_calls", sa.Integer(), nullable=False, default=0),
        sa.Index(f"{prefix}ix_runs_dag_started", "dag_id", "started_at"),
        sa.Index(f"{prefix}ix_runs_started", "started_at"),
    )
    # Every CC contact the sync has seen, by normalised email: links a new member without an API call.
    sa.Table(
        f"{prefix}cc_directory",
        md,
        _id("contact_id", primary_key=True),
        sa.Column("email_key", sa.String(100)),
        sa.Column("email", sa.String(100)),
        sa.Column("first_name", sa.String(100)),
        sa.Column("last_name", sa.String(100)),
        sa.Column("opted_out", sa.Boolean(), nullable=False, default=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, default=False),
        sa.Column("updated_at", UtcDateTime()),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.Index(f"{prefix}ix_cc_directory_email", "email_key"),
    )
    # One sync at a time, whatever started it: a named lease with a holder and an expiry
    # (read and written by cc_sync.sync.lease only).
    sa.Table(
        f"{prefix}lease",
        md,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(RUN_ID_LENGTH)),
        sa.Column("acquired_at", UtcDateTime()),
        sa.Column("expires_at", UtcDateTime()),
    )
    # A dry run's plan, in the change log's shape: what it would write where, old -> new, and why.
    sa.Table(
        f"{prefix}planned_changes",
        md,
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("run_id", sa.String(RUN_ID_LENGTH), nullable=False),
        sa.Column("direction", sa.String(20), nullable=False),
        _id("member_id", nullable=True),
        _id("contact_id", nullable=True),
        sa.Column("field", sa.String(100), nullable=False),
        sa.Column("old_value", sa.Text()),
        sa.Column("new_value", sa.Text()),
        sa.Column("reason", sa.String(255)),
        sa.Column("planned_at", UtcDateTime(), nullable=False),
        sa.Index(f"{prefix}ix_planned_changes_run", "run_id"),
    )
    # The base each run replaced, per link: an undo restores a link's base to what it was before.
    sa.Table(
        f"{prefix}base_history",
        md,
        sa.Column("run_id", sa.String(RUN_ID_LENGTH), primary_key=True),
        _id("member_id", primary_key=True),
        _id("contact_id", nullable=True),
        sa.Column("field_values", sa.Text(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False, default=False),
        sa.Column("member_hash", sa.String(KEY_LENGTH)),
        sa.Column("saved_at", UtcDateTime(), nullable=False),
    )
    # A person's decisions on review items (the sync console): applied by the next sync run.
    sa.Table(
        f"{prefix}decisions",
        md,
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("review_id", sa.BigInteger(), nullable=True),
        sa.Column("decision", sa.String(30), nullable=False),
        _id("member_id", nullable=True),
        _id("contact_id", nullable=True),
        sa.Column("field", sa.String(100)),
        sa.Column("why", sa.Text()),
        sa.Column("decided_by", sa.String(250), nullable=False),
        sa.Column("decided_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("applied_run_id", sa.String(RUN_ID_LENGTH)),
        sa.Column("applied_at", UtcDateTime()),
        sa.Column("outcome", sa.Text()),
        sa.Index(f"{prefix}ix_decisions_status", "status"),
        sa.Index(f"{prefix}ix_decisions_pair", "member_id", "contact_id"),
        sa.Index(f"{prefix}ix_decisions_review", "review_id"),
    )
    # The load steps a run has finished, so a retried load resumes instead of writing twice.
    sa.Table(
        f"{prefix}load_steps",
        md,
        sa.Column("run_id", sa.String(RUN_ID_LENGTH), primary_key=True),
        sa.Column("step", sa.String(200), primary_key=True),
        sa.Column("detail", sa.Text()),
        sa.Column("done_at", UtcDateTime(), nullable=False),
    )
    # Event registrations per member (cc_sync.events): one row per CC registration id, its current
    # statuses; member_id NULL for a registrant who is no member (counted and queued for review).
    sa.Table(
        f"{prefix}event_registrations",
        md,
        sa.Column("registration_id", sa.String(ID_LENGTH), primary_key=True),
        sa.Column("event_id", sa.String(ID_LENGTH), nullable=False),
        sa.Column("track_id", sa.String(ID_LENGTH), nullable=False),
        _id("member_id", nullable=True),
        _id("contact_id", nullable=True),
        sa.Column("matched_by", sa.String(30), nullable=False),
        sa.Column("email", sa.Text()),
        sa.Column("registration_status", sa.String(30)),
        sa.Column("payment_status", sa.String(30)),
        sa.Column("checkin_status", sa.String(30)),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.Column("checked_in_tickets", sa.Integer(), nullable=False),
        sa.Column("total", sa.Numeric(12, 2)),
        sa.Column("registered_at", UtcDateTime()),
        sa.Column("first_run_id", sa.String(RUN_ID_LENGTH)),
        sa.Column("run_id", sa.String(RUN_ID_LENGTH)),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Index(f"{prefix}ix_event_registrations_event", "event_id"),
        sa.Index(f"{prefix}ix_event_registrations_member", "member_id"),
    )
    # The tags' base (cc_sync.tags): per linked member and tag column, the value both sides agreed
    # on after the last tags run (NULL: no tag). The three-way merge of a two-way column reads it.
    sa.Table(
        f"{prefix}tag_base",
        md,
        _id("member_id", primary_key=True),
        sa.Column("tag_column", sa.String(TAG_COLUMN_LENGTH), primary_key=True),
        _id("contact_id"),
        sa.Column("value", sa.String(TAG_NAME_LENGTH)),
        sa.Column("run_id", sa.String(RUN_ID_LENGTH)),
        sa.Column("saved_at", UtcDateTime(), nullable=False),
    )
    return md


# Ids per IN (...) list: well under every dialect's cap on bound values in one statement.
IN_CHUNK = 5_000


def run_row(row: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(row)
    result["counts"] = json.loads(result["counts"]) if result["counts"] else {}
    return result


def finished_runs(
    engine: sa.Engine, runs: sa.Table, exclude_kinds: Iterable[str] = (), limit: int = 50
) -> list[dict[str, Any]]:
    """The latest finished runs (success or failed) in ``runs``, newest first, but those of
    ``exclude_kinds``: one indexed read, cheap enough for a DAG file's parse."""
    r = runs.c
    query = (
        sa.select(runs)
        .where(r.status.in_([RunStatus.SUCCESS.value, RunStatus.FAILED.value]))
        .order_by(r.started_at.desc())
        .limit(limit)
    )
    excluded = list(exclude_kinds)
    if excluded:
        query = query.where(r.kind.not_in(excluded))
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [run_row(row) for row in rows]


def change_counts_by_run(
    engine: sa.Engine, changes: sa.Table, run_ids: Iterable[str]
) -> dict[str, dict[str, int]]:
    """run_id -> direction -> rows of the change log ``changes`` (one GROUP BY on the indexed run_id)."""
    c = changes.c
    ids = sorted(set(run_ids))
    result: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), IN_CHUNK):
            query = (
                sa.select(c.run_id, c.direction, sa.func.count())
                .where(c.run_id.in_(ids[start : start + IN_CHUNK]))
                .group_by(c.run_id, c.direction)
            )
            for run_id, direction, count in conn.execute(query):
                result.setdefault(run_id, {})[direction] = int(count)
    return result
