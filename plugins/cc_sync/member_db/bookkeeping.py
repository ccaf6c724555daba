"""The sync's own records, kept beside the member table under their own prefix (``ccsync_`` by default).

Tables (SQLAlchemy Core, created and changed only by the Alembic migrations in include/migrations):

- ``links``: member ⇄ contact, one to one, with the rule that linked them and when.
- ``base``: per link, the field values as they stood after the last successful sync (the merge base).
- ``watermarks``: per extract stream, how far the last successful run got.
- ``changes``: the change log, every field written (run, direction, ids, field, old, new, reason).
- ``reviews``: the review queue (ambiguous links, near matches, rejected rows, email collisions).
- ``consent``: the consent ledger (who opted out, on which side, when, from what source).
- ``activity``: campaign tracking events.
- ``runs``: one row per sync run (status, counts per action, API calls).
- ``planned_changes``: a dry run's plan, in the change log's shape (what it would have written).
- ``base_history``: per run and link, the base that run replaced (what an undo restores).
- ``decisions``: what a person decided about a review item (who, when, why), and the run that applied it.

Every write is an idempotent upsert keyed on a natural key, so a cleared and re-run task writes
nothing twice. :func:`upsert` is the one place that picks the dialect's ``ON CONFLICT`` /
``ON DUPLICATE KEY`` form. Text columns are ``VARCHAR(n)`` (MariaDB needs a length to index them)
and values are ``TEXT``; timestamps are stored as UTC.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from cc_sync.databases import begin_writing
from cc_sync.fields import CONTACT_ID, MEMBER_ID, OPTED_OUT

if TYPE_CHECKING:
    from cc_sync.member_db.mapping import MemberMapping

from cc_sync.member_db import schema
from cc_sync.member_db.schema import (  # noqa: F401  (re-exported: the bookkeeping's public names)
    DEFAULT_PREFIX,
    EMAIL_HINT_LENGTH,
    ID_LENGTH,
    IN_CHUNK,
    KEY_LENGTH,
    RUN_ID_LENGTH,
    UPSERT_BATCH,
    ChangeDirection,
    Decision,
    DecisionStatus,
    ReviewKind,
    ReviewStatus,
    RunKind,
    RunStatus,
    UtcDateTime,
    _id,
    build_metadata,
    utcnow,
)

# What makes a change-log row the same change: a rerun of the run logs it once.
CHANGE_IDENTITY = ("run_id", "direction", MEMBER_ID, CONTACT_ID, "field")


def natural_key(*parts: Any) -> str:
    """A fixed-length key for a tuple of values (NULLs included), to make upserts idempotent."""
    text = "\x1f".join("" if _is_missing(p) else str(p) for p in parts)
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def undo_of_step(target: str) -> str:
    """The ``load_steps`` marker of an undo of ``target`` (hashed: a run id can be 250 long)."""
    return "undo_of:" + natural_key(target)


def _is_missing(value: Any) -> bool:
    return value is None or (not isinstance(value, list | tuple | dict) and bool(pd.isna(value)))


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    key_columns: Sequence[str],
    update_columns: Sequence[str] | None = None,
    *,
    timestamps: Mapping[str, datetime] | None = None,
) -> None:
    """Insert ``rows``; where the key exists, update ``update_columns`` (or leave the row as it is).

    ``timestamps``: columns with one value for every row, written as SQL literals
    (:func:`~cc_sync.member_db.schema.timestamp_literal`) rather than bound and converted per row.

    The one place that chooses the dialect's form: ``INSERT ... ON CONFLICT`` on PostgreSQL and
    SQLite, ``INSERT ... ON DUPLICATE KEY UPDATE`` on MariaDB/MySQL (which needs no conflict target:
    the key columns must carry a unique index).
    """
    if not rows:
        return
    # One statement may not touch the same key twice (PostgreSQL refuses): the last row wins.
    rows = list({tuple(r[k] for k in key_columns): r for r in rows}.values())
    dialect = conn.dialect.name
    constants = {name: schema.timestamp_literal(value) for name, value in (timestamps or {}).items()}
    if dialect in ("postgresql", "sqlite"):
        module = postgresql if dialect == "postgresql" else sqlite
        stmt = module.insert(table).values(**constants)
        if update_columns:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(key_columns),
                set_={c: stmt.excluded[c] for c in update_columns},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(key_columns))
    elif dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(table).values(**constants)
        # With nothing to update, re-assigning the key is MySQL's no-op "do nothing".
        cols = update_columns or [key_columns[0]]
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in cols})
    else:
        raise NotImplementedError(f"upsert is not implemented for the {dialect} dialect")
    _execute_many(conn, table, stmt, rows)


def _execute_many(
    conn: sa.Connection, table: sa.Table, stmt: sa.Executable, rows: Sequence[Mapping[str, Any]]
) -> None:
    """``stmt`` (an INSERT of ``table``) once per row, in batches of ``UPSERT_BATCH``, through the
    driver's ``executemany``: compiled once, each value through its column type's bind processor.

    ``conn.execute(stmt, rows)`` builds and processes a parameter dictionary per row: half the CPU
    of a SQLite insert (2.6 vs 1.4 s per 200,000 change-log rows; PostgreSQL 4.1 vs 3.4 s), and
    ~9 s of a 100,000-member first install's change log (issue 15)."""
    keys = list(rows[0])
    compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
    names = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
    unfilled = sorted(set(names) - set(keys))
    if unfilled or compiled.escaped_bind_names:
        # Constants belong in the statement as SQL literals; a bind the rows do not fill (or a
        # column name the driver needs escaped) is a caller's mistake, not something to guess at.
        raise ValueError(
            f"cannot insert into {table.name}: binds {unfilled or sorted(compiled.escaped_bind_names)}"
            " are not plain columns of the rows"
        )
    processors = [(name, table.c[name].type.bind_processor(conn.dialect)) for name in names]
    for start in range(0, len(rows), UPSERT_BATCH):
        batch = rows[start : start + UPSERT_BATCH]
        params: list[Any]
        if compiled.positional:
            params = [tuple(proc(r[n]) if proc else r[n] for n, proc in processors) for r in batch]
        else:
            params = [{n: proc(r[n]) if proc else r[n] for n, proc in processors} for r in batch]
        conn.exec_driver_sql(compiled.string, params)


def _records(frame: pd.DataFrame, columns: Iterable[str]) -> list[dict[str, Any]]:
    """Rows as dicts with None for every kind of missing value (NaN, NA, NaT).

    Column by column as Python objects, then zipped: ``DataFrame.to_dict`` boxes every value on
    its own, which cost seconds for the change log of a first sync.
    """
    cols = list(columns)
    sub = frame.reindex(columns=cols)
    arrays = [sub[name].astype(object).to_numpy(dtype=object, na_value=None) for name in cols]
    return [dict(zip(cols, row, strict=True)) for row in zip(*arrays, strict=True)]


def _texts(values: pd.Series) -> pd.Series:
    """Each value as ``str()`` writes it, None where missing (NaN, NA, NaT)."""
    objects = values.astype(object)
    missing = objects.isna().to_numpy()
    text = pd.Series(
        [None if gone else str(v) for v, gone in zip(objects, missing, strict=True)], dtype=object
    )
    return text.set_axis(values.index)


def _json_value(value: Any) -> Any:
    if _is_missing(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _base_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Stored base rows (member_id, contact_id, field_values JSON, opted_out, member_hash) as one
    frame indexed by member_id, a column per field."""
    if raw.empty:
        return pd.DataFrame(
            columns=[CONTACT_ID, OPTED_OUT, "member_hash"], index=pd.Index([], name=MEMBER_ID)
        )
    values = pd.DataFrame.from_records([json.loads(v) for v in raw["field_values"]], index=raw.index)
    result = pd.concat([raw[[MEMBER_ID, CONTACT_ID]], values, raw[[OPTED_OUT, "member_hash"]]], axis=1)
    result[OPTED_OUT] = result[OPTED_OUT].astype(bool)
    return result.set_index(MEMBER_ID)


class Bookkeeping:
    """Reads and writes the sync's bookkeeping tables through one engine."""

    def __init__(self, engine: sa.Engine, prefix: str = DEFAULT_PREFIX) -> None:
        self.engine = engine
        self.prefix = prefix
        self.metadata = build_metadata(prefix)
        t = self.metadata.tables
        self.links = t[f"{prefix}links"]
        self.base = t[f"{prefix}base"]
        self.watermarks = t[f"{prefix}watermarks"]
        self.changes = t[f"{prefix}changes"]
        self.planned_changes = t[f"{prefix}planned_changes"]
        self.reviews = t[f"{prefix}reviews"]
        self.consent = t[f"{prefix}consent"]
        self.activity = t[f"{prefix}activity"]
        self.runs = t[f"{prefix}runs"]
        self.cc_directory = t[f"{prefix}cc_directory"]
        self.lease = t[f"{prefix}lease"]
        self.load_steps = t[f"{prefix}load_steps"]
        self.base_history = t[f"{prefix}base_history"]
        self.decisions = t[f"{prefix}decisions"]

    @classmethod
    def for_mapping(cls, mapping: MemberMapping, member_engine: sa.Engine) -> Bookkeeping:
        """The bookkeeping the mapping asks for: beside the members, or in its own database."""
        settings = mapping.bookkeeping
        if settings.database_url:
            from cc_sync.member_db.connection import create_member_engine

            return cls(create_member_engine(settings.database_url), prefix=settings.table_prefix)
        return cls(member_engine, prefix=settings.table_prefix)

    # ---- schema ------------------------------------------------------------------------------

    def schema_is_current(self) -> bool:
        from cc_sync.member_db.migrate import schema_is_current

        return schema_is_current(self.engine, prefix=self.prefix)

    # ---- links -------------------------------------------------------------------------------

    def upsert_links(self, frame: pd.DataFrame) -> int:
        """Link members to contacts (columns member_id, contact_id, rule, linked_at?, run_id?).

        Only for links whose base is already stored (a rule change, say): a new link is made with
        :meth:`link_with_base`, so that the first three-way merge after it has a base.
        """
        if frame.empty:
            return 0
        with begin_writing(self.engine) as conn:
            return self._upsert_links(conn, frame)

    def link_with_base(self, links: pd.DataFrame, base: pd.DataFrame, run_id: str | None = None) -> int:
        """Link members to contacts together with each link's base, in one transaction.

        Every path that creates a link (the sync's linker, the send-list, a review decision) comes
        here: a link without a base would make the next run see every differing field as changed
        on both sides and let the later side overwrite the other's edits. ``base`` holds, per
        member, the values both sides agree on at the moment of linking (NA where they do not).
        """
        if links.empty:
            return 0
        base_ids = set((base.reset_index() if base.index.name == MEMBER_ID else base)[MEMBER_ID].astype(str))
        missing = sorted(set(links[MEMBER_ID].astype(str)) - base_ids)
        if missing:
            raise ValueError(f"{len(missing)} link(s) without a base, e.g. member {missing[0]}")
        with begin_writing(self.engine) as conn:
            count = self._upsert_links(conn, links.assign(run_id=run_id) if "run_id" not in links else links)
            self._save_base(conn, base, run_id)
        return count

    def _upsert_links(self, conn: sa.Connection, frame: pd.DataFrame) -> int:
        data = frame.copy()
        data[MEMBER_ID] = data[MEMBER_ID].astype(str)
        data[CONTACT_ID] = data[CONTACT_ID].astype(str)
        timestamps = {} if "linked_at" in data else {"linked_at": utcnow()}
        columns = [MEMBER_ID, CONTACT_ID, "rule", "run_id", *([] if timestamps else ["linked_at"])]
        rows = _records(data, columns)
        new_member_of = dict(zip(data[CONTACT_ID], data[MEMBER_ID], strict=True))
        contact_ids = list(new_member_of)
        # A contact moving to another member: drop its old link first (the contact id is unique).
        # In chunks: SQLite and the drivers cap the number of bound values in one statement.
        for start in range(0, len(contact_ids), IN_CHUNK):
            chunk = contact_ids[start : start + IN_CHUNK]
            held = conn.execute(
                sa.select(self.links.c.member_id, self.links.c.contact_id).where(
                    self.links.c.contact_id.in_(chunk)
                )
            ).all()
            stale = [member for member, contact in held if new_member_of[contact] != member]
            if stale:
                conn.execute(self.links.delete().where(self.links.c.member_id.in_(stale)))
        updated = [CONTACT_ID, "rule", "linked_at", "run_id"]
        upsert(conn, self.links, rows, [MEMBER_ID], updated, timestamps=timestamps)
        return len(rows)

    def get_links(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            frame = pd.read_sql(sa.select(self.links), conn)
        frame["linked_at"] = pd.to_datetime(frame["linked_at"], utc=True)
        return frame

    def unlink(self, contact_ids: Iterable[str], reason: str, run_id: str | None = None) -> int:
        """Remove links (and their base) for ``contact_ids``, recording each in the change log."""
        ids = [str(c) for c in contact_ids]
        if not ids:
            return 0
        with begin_writing(self.engine) as conn:
            found = []
            for start in range(0, len(ids), IN_CHUNK):
                chunk = ids[start : start + IN_CHUNK]
                held = conn.execute(
                    sa.select(self.links.c.member_id, self.links.c.contact_id).where(
                        self.links.c.contact_id.in_(chunk)
                    )
                ).all()
                if held:
                    conn.execute(self.base.delete().where(self.base.c.member_id.in_([m for m, _ in held])))
                    conn.execute(self.links.delete().where(self.links.c.contact_id.in_(chunk)))
                found += held
            if not found:
                return 0
            members = [m for m, _ in found]
            changes = pd.DataFrame(
                {
                    "run_id": run_id or "unlink",
                    "direction": ChangeDirection.LINK.value,
                    MEMBER_ID: members,
                    CONTACT_ID: [c for _, c in found],
                    "field": "link",
                    "old_value": [c for _, c in found],
                    "new_value": None,
                    "reason": reason,
                }
            )
            self._append_changes(conn, changes)
        return len(found)

    # ---- base snapshots ------------------------------------------------------------------------

    def save_base(self, frame: pd.DataFrame, run_id: str | None = None) -> int:
        """Store the merge base: ``frame`` indexed by member_id, canonical columns + opted_out + contact_id.

        An optional ``member_hash`` column is kept for hash-based change detection.
        """
        if frame.empty:
            return 0
        with begin_writing(self.engine) as conn:
            return self._save_base(conn, frame, run_id)

    def _save_base(self, conn: sa.Connection, frame: pd.DataFrame, run_id: str | None) -> int:
        if frame.empty:
            return 0
        data = frame.reset_index() if frame.index.name == MEMBER_ID else frame.copy()
        value_cols = [c for c in data.columns if c not in (MEMBER_ID, CONTACT_ID, OPTED_OUT, "member_hash")]
        values = data[value_cols].astype(object)
        values = values.where(values.notna(), None)
        payload = [
            json.dumps(
                {k: _json_value(v) for k, v in zip(value_cols, row, strict=True)},
                ensure_ascii=False,
                sort_keys=True,
            )
            for row in values.itertuples(index=False, name=None)
        ]
        now = utcnow()
        if run_id is not None:
            self._keep_replaced_base(conn, data[MEMBER_ID].astype(str).tolist(), run_id)
        out = pd.DataFrame(
            {
                MEMBER_ID: data[MEMBER_ID].astype(str).to_numpy(),
                CONTACT_ID: data[CONTACT_ID].to_numpy() if CONTACT_ID in data else None,
                "field_values": payload,
                OPTED_OUT: data[OPTED_OUT].fillna(False).astype(bool).to_numpy()
                if OPTED_OUT in data
                else False,
                "member_hash": data["member_hash"].to_numpy() if "member_hash" in data else None,
                "run_id": run_id,
            }
        )
        rows = _records(out, out.columns)
        upsert(
            conn,
            self.base,
            rows,
            [MEMBER_ID],
            [CONTACT_ID, "field_values", OPTED_OUT, "member_hash", "saved_at", "run_id"],
            timestamps={"saved_at": now},
        )
        return len(rows)

    def _keep_replaced_base(self, conn: sa.Connection, member_ids: list[str], run_id: str) -> None:
        """Copy the bases ``run_id`` is about to replace into ``base_history``, once per run.

        The first save of a run wins (an insert that leaves an existing row alone): a retried
        record task, or a second save in the same run, must not file the run's own base as the
        one it replaced. Members without a base have nothing to keep (their link is new).
        """
        b = self.base.c
        for start in range(0, len(member_ids), IN_CHUNK):
            chunk = member_ids[start : start + IN_CHUNK]
            rows = conn.execute(
                sa.select(b.member_id, b.contact_id, b.field_values, b.opted_out, b.member_hash).where(
                    b.member_id.in_(chunk)
                )
            ).all()
            if rows:
                upsert(
                    conn,
                    self.base_history,
                    [
                        {
                            "run_id": run_id,
                            MEMBER_ID: r[0],
                            CONTACT_ID: r[1],
                            "field_values": r[2],
                            OPTED_OUT: bool(r[3]),
                            "member_hash": r[4],
                            "saved_at": utcnow(),
                        }
                        for r in rows
                    ],
                    ["run_id", MEMBER_ID],
                )

    def keep_replaced_base(self, member_ids: Iterable[str], run_id: str) -> None:
        """File the current base of ``member_ids`` as replaced by ``run_id`` (before an unlink)."""
        with begin_writing(self.engine) as conn:
            self._keep_replaced_base(conn, [str(m) for m in member_ids], run_id)

    def load_base_history(self, run_id: str, member_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """The bases ``run_id`` replaced, indexed by member_id, in :meth:`load_base`'s shape."""
        h = self.base_history.c
        query = sa.select(h.member_id, h.contact_id, h.field_values, h.opted_out, h.member_hash).where(
            h.run_id == run_id
        )
        with self.engine.connect() as conn:
            if member_ids is None:
                raw = pd.read_sql(query, conn)
            else:
                ids = [str(m) for m in member_ids]
                parts = [
                    pd.read_sql(query.where(h.member_id.in_(ids[start : start + IN_CHUNK])), conn)
                    for start in range(0, len(ids), IN_CHUNK)
                ]
                raw = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        return _base_frame(raw)

    def restore_base(self, frame: pd.DataFrame, run_id: str) -> int:
        """Put bases back (an undo): like :meth:`save_base`, the replaced ones kept under ``run_id``."""
        return self.save_base(frame, run_id=run_id)

    def load_base(self, member_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """The merge base indexed by member_id: canonical columns + opted_out + contact_id + member_hash."""
        query = sa.select(
            self.base.c.member_id, self.base.c.contact_id, self.base.c.field_values, self.base.c.opted_out,
            self.base.c.member_hash,
        )  # fmt: skip
        frames = []
        with self.engine.connect() as conn:
            if member_ids is None:
                frames.append(pd.read_sql(query, conn))
            else:
                ids = [str(m) for m in member_ids]
                for start in range(0, len(ids), 10_000):
                    chunk = ids[start : start + 10_000]
                    frames.append(pd.read_sql(query.where(self.base.c.member_id.in_(chunk)), conn))
        raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return _base_frame(raw)

    def load_member_hashes(self) -> pd.Series:
        """member_id -> the row hash stored with the base (for tables without a last-modified column)."""
        with self.engine.connect() as conn:
            raw = pd.read_sql(
                sa.select(self.base.c.member_id, self.base.c.member_hash).where(
                    self.base.c.member_hash.is_not(None)
                ),
                conn,
            )
        return raw.set_index(MEMBER_ID)["member_hash"]

    # ---- watermarks ----------------------------------------------------------------------------

    def get_watermark(self, stream: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(self.watermarks.c.watermark).where(self.watermarks.c.stream == stream)
            ).scalar_one_or_none()

    def set_watermarks(self, marks: Mapping[str, datetime]) -> None:
        """Advance several streams' watermarks in one transaction (after a load has succeeded)."""
        naive = [s for s, w in marks.items() if w.tzinfo is None]
        if naive:
            raise ValueError(f"watermarks for {naive} are naive datetimes; they must be timezone-aware (UTC)")
        now = utcnow()
        rows = [{"stream": s, "watermark": w, "updated_at": now} for s, w in marks.items()]
        with begin_writing(self.engine) as conn:
            upsert(conn, self.watermarks, rows, ["stream"], ["watermark", "updated_at"])

    # ---- change log ----------------------------------------------------------------------------

    def append_changes(self, frame: pd.DataFrame) -> int:
        """Log changes (run_id, direction, member_id, contact_id, field, old_value, new_value, reason).

        Idempotent: the same (run, direction, member, contact, field) is logged once.
        """
        if frame.empty:
            return 0
        with begin_writing(self.engine) as conn:
            return self._append_changes(conn, frame)

    def _append_changes(self, conn: sa.Connection, frame: pd.DataFrame) -> int:
        """The rows of ``frame`` not yet logged, inserted; how many ``frame`` held (each once).

        A change's identity is its run, direction, member, contact and field. Only the rows the
        same run logged for the same fields are looked up (a retried task, an earlier step of the
        run): no unique index over the whole log, whose random keys cost ~40% of a first
        install's change-log insert (772,016 rows: 7.9 -> 4.7 CPU s on SQLite)."""
        data = frame.copy()
        for col in ("old_value", "new_value"):
            if col in data:
                data[col] = _texts(data[col])
        data = data.reindex(columns=[*CHANGE_IDENTITY, "old_value", "new_value", "reason"])
        data = data[~data.duplicated(subset=list(CHANGE_IDENTITY), keep="last").to_numpy()]
        logged = self._logged_changes(
            conn,
            [str(r) for r in data["run_id"].dropna().unique()],
            [str(f) for f in data["field"].dropna().unique()],
        )
        if logged:
            identities = zip(*(_texts(data[c]).fillna("") for c in CHANGE_IDENTITY), strict=True)
            rows = _records(data[[key not in logged for key in identities]], data.columns)
        else:
            rows = _records(data, data.columns)
        if rows:
            insert = self.changes.insert().values(changed_at=schema.timestamp_literal(utcnow()))
            _execute_many(conn, self.changes, insert, rows)
        return len(data)

    def _logged_changes(
        self, conn: sa.Connection, run_ids: list[str], fields: list[str]
    ) -> set[tuple[str, ...]]:
        """The identities of the changes to ``fields`` these runs logged already: for a run that
        logged none of them (the usual case), one empty range of ``ix_changes_run_field``."""
        c = self.changes.c
        found: set[tuple[str, ...]] = set()
        for run_id in run_ids:  # a frame's fields are a few dozen names at most: one IN list
            query = sa.select(*(c[name] for name in CHANGE_IDENTITY)).where(
                c.run_id == run_id, c.field.in_(fields)
            )
            found.update(tuple("" if v is None else str(v) for v in row) for row in conn.execute(query))
        return found

    def save_planned_changes(self, run_id: str, frame: pd.DataFrame) -> int:
        """Keep a dry run's plan (direction, member_id, contact_id, field, old_value, new_value,
        reason); a rerun of the same run replaces what it planned before."""
        data = frame.reindex(
            columns=["direction", MEMBER_ID, CONTACT_ID, "field", "old_value", "new_value", "reason"]
        ).copy()
        for col in ("old_value", "new_value"):
            data[col] = data[col].map(lambda v: None if _is_missing(v) else str(v))
        data["run_id"] = run_id
        rows = _records(data, data.columns)
        insert = self.planned_changes.insert().values(planned_at=schema.timestamp_literal(utcnow()))
        with begin_writing(self.engine) as conn:
            conn.execute(self.planned_changes.delete().where(self.planned_changes.c.run_id == run_id))
            if rows:
                _execute_many(conn, self.planned_changes, insert, rows)
        return len(rows)

    def get_planned_changes(self, run_id: str) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(
                sa.select(self.planned_changes)
                .where(self.planned_changes.c.run_id == run_id)
                .order_by(self.planned_changes.c.id),
                conn,
            )

    def get_changes(self, run_id: str | None = None) -> pd.DataFrame:
        query = sa.select(self.changes).order_by(self.changes.c.id)
        if run_id is not None:
            query = query.where(self.changes.c.run_id == run_id)
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn)

    # ---- review queue --------------------------------------------------------------------------

    def add_review_items(self, frame: pd.DataFrame, run_id: str | None = None) -> int:
        """Queue items (kind, member_id, contact_id, email_hint, detail); one open item per key.
        Returns how many were new (an item already open is left as it is)."""
        if frame.empty:
            return 0
        data = frame.rename(columns={"email_hash": "email_hint", "masked_email": "email_hint"}).copy()
        data = data.reindex(columns=["kind", MEMBER_ID, CONTACT_ID, "email_hint", "detail"])
        data["open_key"] = [
            natural_key(*row)
            for row in data[["kind", MEMBER_ID, CONTACT_ID]].itertuples(index=False, name=None)
        ]
        data["detail"] = data["detail"].map(
            lambda v: None if _is_missing(v) else v if isinstance(v, str) else json.dumps(v, default=str)
        )
        # A masked email keeps its whole domain, which may be longer than the column.
        data["email_hint"] = data["email_hint"].map(
            lambda hint: hint[:EMAIL_HINT_LENGTH] if isinstance(hint, str) else hint
        )
        data["status"] = ReviewStatus.OPEN.value
        data["created_at"] = utcnow()
        data["run_id"] = run_id
        data = data.drop_duplicates("open_key")
        rows = _records(data, data.columns)
        keys = data["open_key"].tolist()
        with begin_writing(self.engine) as conn:
            already = sum(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(self.reviews)
                    .where(self.reviews.c.open_key.in_(keys[start : start + UPSERT_BATCH]))
                ).scalar_one()
                for start in range(0, len(keys), UPSERT_BATCH)
            )
            upsert(conn, self.reviews, rows, ["open_key"])
        return len(rows) - already

    def list_open_reviews(self, kind: str | None = None) -> pd.DataFrame:
        query = sa.select(self.reviews).where(self.reviews.c.status == ReviewStatus.OPEN.value)
        if kind:
            query = query.where(self.reviews.c.kind == kind)
        with self.engine.connect() as conn:
            return pd.read_sql(query.order_by(self.reviews.c.id), conn)

    def close_reviews(self, ids: Iterable[int], status: ReviewStatus = ReviewStatus.RESOLVED) -> int:
        with begin_writing(self.engine) as conn:
            result = conn.execute(
                self.reviews.update()
                .where(self.reviews.c.id.in_([int(i) for i in ids]))
                .values(status=status.value, open_key=None, resolved_at=utcnow())
            )
        return result.rowcount

    # ---- consent ledger ------------------------------------------------------------------------

    def record_opt_outs(self, frame: pd.DataFrame) -> int:
        """Record opt-outs (member_id, contact_id, side, source, opted_out_at, run_id); idempotent."""
        if frame.empty:
            return 0
        data = frame.reindex(
            columns=[MEMBER_ID, CONTACT_ID, "side", "source", "opted_out_at", "run_id"]
        ).copy()
        data["opted_out_at"] = pd.to_datetime(data["opted_out_at"], utc=True, format="ISO8601")
        data["consent_key"] = [
            natural_key(side, member, contact, None if pd.isna(at) else at.isoformat())
            for side, member, contact, at in data[["side", MEMBER_ID, CONTACT_ID, "opted_out_at"]].itertuples(
                index=False, name=None
            )
        ]
        data["recorded_at"] = utcnow()
        rows = _records(data, data.columns)
        with begin_writing(self.engine) as conn:
            upsert(conn, self.consent, rows, ["consent_key"])
        return len(rows)

    def get_opt_outs(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(self.consent).order_by(self.consent.c.id), conn)

    # ---- activity ------------------------------------------------------------------------------

    def insert_activity(self, frame: pd.DataFrame) -> int:
        """Store tracking events (contact_id, member_id, campaign_id, campaign_activity_id, event_type,
        occurred_at, detail, run_id); idempotent on contact, activity, type, time and detail."""
        if frame.empty:
            return 0
        cols = [CONTACT_ID, MEMBER_ID, "campaign_id", "campaign_activity_id", "event_type", "occurred_at"]
        data = frame.reindex(columns=[*cols, "detail", "run_id"]).copy()
        data["occurred_at"] = pd.to_datetime(data["occurred_at"], utc=True, format="ISO8601")
        key_cols = [CONTACT_ID, "campaign_activity_id", "event_type", "occurred_at", "detail"]
        data["event_key"] = [
            natural_key(*(v.isoformat() if isinstance(v, pd.Timestamp) else v for v in row))
            for row in data[key_cols].itertuples(index=False, name=None)
        ]
        rows = _records(data, data.columns)
        with begin_writing(self.engine) as conn:
            upsert(conn, self.activity, rows, ["event_key"])
        return len(rows)

    def get_activity(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(self.activity).order_by(self.activity.c.id), conn)

    # ---- runs ----------------------------------------------------------------------------------

    def start_run(self, run_id: str, dag_id: str | None, kind: str) -> None:
        row = {
            "run_id": run_id,
            "dag_id": dag_id,
            "kind": kind,
            "status": RunStatus.RUNNING.value,
            "started_at": utcnow(),
            "finished_at": None,
            "counts": None,
            "api_calls": 0,
        }
        with begin_writing(self.engine) as conn:
            upsert(
                conn, self.runs, [row], ["run_id"], ["dag_id", "kind", "status", "started_at", "finished_at"]
            )

    def finish_run(
        self, run_id: str, status: RunStatus | str, counts: Mapping[str, int], api_calls: int = 0
    ) -> None:
        with begin_writing(self.engine) as conn:
            result = conn.execute(
                self.runs.update()
                .where(self.runs.c.run_id == run_id)
                .values(
                    status=RunStatus(status).value,
                    finished_at=utcnow(),
                    counts=json.dumps({k: int(v) for k, v in counts.items()}, sort_keys=True),
                    api_calls=int(api_calls),
                )
            )
            if result.rowcount == 0:
                raise KeyError(f"run {run_id!r} was never started")

    def set_run_counts(self, run_id: str, counts: Mapping[str, int]) -> None:
        """The counts of a run still going (a dry run's plan, before ``finish_run``)."""
        with begin_writing(self.engine) as conn:
            conn.execute(
                self.runs.update()
                .where(self.runs.c.run_id == run_id)
                .values(counts=json.dumps({k: int(v) for k, v in counts.items()}, sort_keys=True))
            )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(self.runs).where(self.runs.c.run_id == run_id))
                .mappings()
                .one_or_none()
            )
        if row is None:
            return None
        result = dict(row)
        result["counts"] = json.loads(result["counts"]) if result["counts"] else {}
        return result

    # ---- CC directory --------------------------------------------------------------------------

    def upsert_directory(self, contacts: pd.DataFrame) -> int:
        """Remember the contacts a run read (contact_id, email, names, opted_out, deleted, updated_at)."""
        if contacts.empty:
            return 0
        from cc_sync.engine.normalise import normalise_email

        data = pd.DataFrame(
            {
                CONTACT_ID: contacts[CONTACT_ID].astype(str).to_numpy(),
                "email_key": normalise_email(contacts["email"]).to_numpy() if "email" in contacts else None,
            }
        )
        for col in ("email", "first_name", "last_name"):
            data[col] = contacts[col].to_numpy() if col in contacts else None
        for col in (OPTED_OUT, "deleted"):
            data[col] = contacts[col].fillna(False).astype(bool).to_numpy() if col in contacts else False
        data["updated_at"] = (
            pd.to_datetime(contacts["updated_at"], utc=True).to_numpy() if "updated_at" in contacts else None
        )
        rows = _records(data, data.columns)
        with begin_writing(self.engine) as conn:
            upsert(
                conn,
                self.cc_directory,
                rows,
                [CONTACT_ID],
                [
                    "email_key",
                    "email",
                    "first_name",
                    "last_name",
                    OPTED_OUT,
                    "deleted",
                    "updated_at",
                    "seen_at",
                ],
                timestamps={"seen_at": utcnow()},
            )
        return len(rows)

    def load_directory(self, email_keys: Iterable[str]) -> pd.DataFrame:
        """Directory entries whose normalised email is one of ``email_keys``."""
        keys = sorted({k for k in email_keys if k})
        columns = [CONTACT_ID, "email", "first_name", "last_name", OPTED_OUT, "deleted"]
        query = sa.select(*(self.cc_directory.c[c] for c in columns))
        frames = []
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 5_000):
                chunk = keys[start : start + 5_000]
                frames.append(pd.read_sql(query.where(self.cc_directory.c.email_key.in_(chunk)), conn))
        if not frames:
            return pd.DataFrame({c: pd.Series([], dtype="string") for c in columns})
        frame = pd.concat(frames, ignore_index=True)
        for col in (OPTED_OUT, "deleted"):
            frame[col] = frame[col].astype(bool)
        return frame

    def load_directory_entries(self, email_keys: Iterable[str]) -> pd.DataFrame:
        """Like :meth:`load_directory`, with each entry's ``email_key`` and ``seen_at`` (when a run
        last recorded it): what a send needs to decide whether it may rely on a contact id."""
        keys = sorted({k for k in email_keys if k})
        columns = [CONTACT_ID, "email_key", OPTED_OUT, "deleted", "seen_at"]
        query = sa.select(*(self.cc_directory.c[c] for c in columns))
        rows: list[Any] = []
        with self.engine.connect() as conn:
            for start in range(0, len(keys), IN_CHUNK):
                chunk = keys[start : start + IN_CHUNK]
                rows.extend(conn.execute(query.where(self.cc_directory.c.email_key.in_(chunk))).all())
        frame = pd.DataFrame(
            {
                CONTACT_ID: pd.array([r[0] for r in rows], dtype="string"),
                "email_key": pd.array([r[1] for r in rows], dtype="string"),
                OPTED_OUT: pd.array([bool(r[2]) for r in rows], dtype="bool"),
                "deleted": pd.array([bool(r[3]) for r in rows], dtype="bool"),
                "seen_at": pd.to_datetime([r[4] for r in rows], utc=True),
            }
        )
        return frame

    # ---- load journal --------------------------------------------------------------------------

    def done_steps(self, run_id: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    sa.select(self.load_steps.c.step).where(self.load_steps.c.run_id == run_id)
                ).scalars()
            )

    def mark_step_done(self, run_id: str, step: str, detail: Mapping[str, Any] | None = None) -> None:
        self._mark_steps(run_id, {step: json.dumps(detail, default=str) if detail is not None else None})

    def mark_steps_done(self, run_id: str, steps: Sequence[str]) -> None:
        """Several steps without detail done, in one transaction (:meth:`mark_step_done` of each)."""
        self._mark_steps(run_id, dict.fromkeys(steps))

    def _mark_steps(self, run_id: str, details: Mapping[str, str | None]) -> None:
        if not details:
            return
        rows = [{"run_id": run_id, "step": step, "detail": detail} for step, detail in details.items()]
        with begin_writing(self.engine) as conn:
            key, updated = ["run_id", "step"], ["detail", "done_at"]
            upsert(conn, self.load_steps, rows, key, updated, timestamps={"done_at": utcnow()})

    def step_detail(self, run_id: str, step: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            raw = conn.execute(
                sa.select(self.load_steps.c.detail).where(
                    self.load_steps.c.run_id == run_id, self.load_steps.c.step == step
                )
            ).scalar_one_or_none()
        return json.loads(raw) if raw else None

    def planned_summary(self, run_id: str) -> list[dict[str, Any]]:
        """A dry run's plan counted by direction, field and reason (what goes where, what is
        left alone and why): one GROUP BY on the indexed run_id."""
        p = self.planned_changes.c
        query = (
            sa.select(p.direction, p.field, p.reason, sa.func.count().label("count"))
            .where(p.run_id == run_id)
            .group_by(p.direction, p.field, p.reason)
            .order_by(p.reason, p.direction, p.field)
        )
        return self._rows(query)

    def planned_rows(self, run_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The first ``limit`` rows of a dry run's plan."""
        p = self.planned_changes
        return self._rows(sa.select(p).where(p.c.run_id == run_id).order_by(p.c.id).limit(limit))

    def mark_undo_of(self, run_id: str, target: str) -> None:
        """File undo run ``run_id`` under the run it undoes, so the target's page can find its
        undos and their plans (a skip-only plan has no row naming the target)."""
        self.mark_step_done(run_id, undo_of_step(target), {"target": target})

    def undos_of(self, target: str, limit: int = 20) -> list[dict[str, Any]]:
        """The undo runs (dry or not) of ``target``, newest first."""
        s, r = self.load_steps.c, self.runs.c
        query = (
            sa.select(self.runs)
            .join(self.load_steps, s.run_id == r.run_id)
            .where(s.step == undo_of_step(target))
            .order_by(r.started_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [self._run_row(row) for row in rows]

    # ---- the sync console's reads (bounded: a page, a person, a window of days) ---------------

    def recent_runs(self, dag_id: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """The latest runs (of one DAG, or all), newest first, with their counts parsed."""
        query = sa.select(self.runs).order_by(self.runs.c.started_at.desc()).limit(limit)
        if dag_id is not None:
            query = query.where(self.runs.c.dag_id == dag_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [self._run_row(r) for r in rows]

    def finished_runs(self, exclude_kinds: Iterable[str] = (), limit: int = 50) -> list[dict[str, Any]]:
        """The latest finished runs (success or failed), newest first, but those of ``exclude_kinds``."""
        return schema.finished_runs(self.engine, self.runs, exclude_kinds, limit)

    def runs_since(self, since: datetime) -> list[dict[str, Any]]:
        """Every run started since ``since``, oldest first (the console's 30-day plots)."""
        query = sa.select(self.runs).where(self.runs.c.started_at >= since).order_by(self.runs.c.started_at)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [self._run_row(r) for r in rows]

    @staticmethod
    def _run_row(row: Mapping[str, Any]) -> dict[str, Any]:
        return schema.run_row(row)

    def change_counts_by_run(self, run_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """run_id -> direction -> change-log rows (one GROUP BY on the indexed run_id)."""
        return schema.change_counts_by_run(self.engine, self.changes, run_ids)

    def get_watermarks(self) -> dict[str, datetime]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.watermarks.c.stream, self.watermarks.c.watermark)).all()
        return {stream: mark for stream, mark in rows}

    def open_review_counts(self) -> dict[str, int]:
        """kind -> open items."""
        r = self.reviews.c
        query = (
            sa.select(r.kind, sa.func.count())
            .where(r.status == ReviewStatus.OPEN.value)
            .group_by(r.kind)
            .order_by(r.kind)
        )
        with self.engine.connect() as conn:
            return {kind: int(count) for kind, count in conn.execute(query)}

    def _open_reviews_query(
        self, kind: str | None, created_before: datetime | None, created_after: datetime | None
    ) -> Any:
        r = self.reviews.c
        conditions = [r.status == ReviewStatus.OPEN.value]
        if kind:
            conditions.append(r.kind == kind)
        if created_before is not None:
            conditions.append(r.created_at < created_before)
        if created_after is not None:
            conditions.append(r.created_at >= created_after)
        return sa.and_(*conditions)

    def page_open_reviews(
        self,
        *,
        kind: str | None = None,
        created_before: datetime | None = None,
        created_after: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of open review items, oldest first, and how many match in all."""
        where = self._open_reviews_query(kind, created_before, created_after)
        r = self.reviews.c
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(self.reviews).where(where)
            ).scalar_one()
            rows = conn.execute(
                sa.select(self.reviews).where(where).order_by(r.created_at, r.id).limit(limit).offset(offset)
            ).mappings()
            items = [dict(row) for row in rows]
        return items, int(total)

    def get_review(self, review_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(self.reviews).where(self.reviews.c.id == int(review_id)))
                .mappings()
                .one_or_none()
            )
        return dict(row) if row is not None else None

    def link_of(self, member_id: str | None = None, contact_id: str | None = None) -> dict[str, Any] | None:
        """The link of this member or contact, if any."""
        if member_id is None and contact_id is None:
            return None
        column = self.links.c.member_id if member_id is not None else self.links.c.contact_id
        value = member_id if member_id is not None else contact_id
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.links).where(column == str(value))).mappings().one_or_none()
        return dict(row) if row is not None else None

    def base_of(self, member_id: str) -> dict[str, Any] | None:
        """One member's base: its values (decoded), opted_out, saved_at, run_id."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(self.base).where(self.base.c.member_id == str(member_id)))
                .mappings()
                .one_or_none()
            )
        if row is None:
            return None
        result = dict(row)
        result["field_values"] = json.loads(result["field_values"])
        return result

    def _person_where(self, table: sa.Table, member_id: str | None, contact_id: str | None) -> Any:
        conditions = []
        if member_id is not None:
            conditions.append(table.c.member_id == str(member_id))
        if contact_id is not None:
            conditions.append(table.c.contact_id == str(contact_id))
        return sa.or_(*conditions) if conditions else sa.false()

    def _rows(self, query: sa.Select[Any]) -> list[dict[str, Any]]:
        """A bounded read (a page, a person) as plain dicts, for the console."""
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def person_changes(
        self, member_id: str | None, contact_id: str | None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Change-log rows that touched this member or contact, newest first."""
        query = (
            sa.select(self.changes)
            .where(self._person_where(self.changes, member_id, contact_id))
            .order_by(self.changes.c.id.desc())
            .limit(limit)
        )
        return self._rows(query)

    def person_consent(self, member_id: str | None, contact_id: str | None) -> list[dict[str, Any]]:
        query = (
            sa.select(self.consent)
            .where(self._person_where(self.consent, member_id, contact_id))
            .order_by(self.consent.c.id)
        )
        return self._rows(query)

    def person_activity(
        self, member_id: str | None, contact_id: str | None, limit: int = 200
    ) -> list[dict[str, Any]]:
        query = (
            sa.select(self.activity)
            .where(self._person_where(self.activity, member_id, contact_id))
            .order_by(self.activity.c.occurred_at.desc())
            .limit(limit)
        )
        return self._rows(query)

    def person_open_reviews(self, member_id: str | None, contact_id: str | None) -> list[dict[str, Any]]:
        query = (
            sa.select(self.reviews)
            .where(
                self.reviews.c.status == ReviewStatus.OPEN.value,
                self._person_where(self.reviews, member_id, contact_id),
            )
            .order_by(self.reviews.c.id)
        )
        return self._rows(query)

    def directory_entry(self, contact_id: str) -> dict[str, Any] | None:
        """What the sync last read of one CC contact (email, names, consent), without an API call."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(self.cc_directory).where(self.cc_directory.c.contact_id == str(contact_id))
                )
                .mappings()
                .one_or_none()
            )
        return dict(row) if row is not None else None

    def directory_contact_ids(self, email: str) -> list[str]:
        """Contacts the sync has seen with this (normalised) email."""
        from cc_sync.engine.normalise import normalise_email

        key = normalise_email(pd.Series([email], dtype="string")).iloc[0]
        if pd.isna(key):
            return []
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(self.cc_directory.c.contact_id).where(self.cc_directory.c.email_key == key)
                ).scalars()
            )

    # ---- decisions on review items -------------------------------------------------------------

    def record_decision(
        self,
        *,
        review_id: int | None,
        decision: Decision | str,
        member_id: str | None,
        contact_id: str | None,
        decided_by: str,
        why: str | None = None,
        field: str | None = None,
    ) -> int:
        """Store a person's decision (pending until the next sync run applies it); returns its id.

        A review item takes one pending decision at a time: a second one replaces the first, so the
        run applies what the person decided last.
        """
        row = {
            "review_id": review_id,
            "decision": Decision(decision).value,
            "member_id": None if member_id is None else str(member_id),
            "contact_id": None if contact_id is None else str(contact_id),
            "field": field,
            "why": why,
            "decided_by": decided_by,
            "decided_at": utcnow(),
            "status": DecisionStatus.PENDING.value,
        }
        d = self.decisions.c
        with begin_writing(self.engine) as conn:
            if review_id is not None:
                conn.execute(
                    self.decisions.delete().where(
                        d.review_id == int(review_id), d.status == DecisionStatus.PENDING.value
                    )
                )
            result = conn.execute(self.decisions.insert().values(**row))
            return int(result.inserted_primary_key[0])

    def pending_decisions(self) -> list[dict[str, Any]]:
        """Decisions the next sync run must apply, in the order they were made."""
        query = (
            sa.select(self.decisions)
            .where(self.decisions.c.status == DecisionStatus.PENDING.value)
            .order_by(self.decisions.c.id)
        )
        return self._rows(query)

    def decisions_for_run(self, run_id: str) -> list[dict[str, Any]]:
        """Decisions a run applied (a retried task finds them again and repeats nothing)."""
        query = (
            sa.select(self.decisions)
            .where(self.decisions.c.applied_run_id == run_id)
            .order_by(self.decisions.c.id)
        )
        return self._rows(query)

    def pending_decision_by_review(self, review_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        ids = [int(i) for i in review_ids]
        if not ids:
            return {}
        d = self.decisions.c
        query = sa.select(self.decisions).where(
            d.review_id.in_(ids), d.status == DecisionStatus.PENDING.value
        )
        with self.engine.connect() as conn:
            return {int(r["review_id"]): dict(r) for r in conn.execute(query).mappings()}

    def finish_decision(
        self, decision_id: int, status: DecisionStatus, *, run_id: str | None, outcome: str
    ) -> None:
        with begin_writing(self.engine) as conn:
            conn.execute(
                self.decisions.update()
                .where(self.decisions.c.id == int(decision_id))
                .values(status=status.value, applied_run_id=run_id, applied_at=utcnow(), outcome=outcome)
            )

    def kept_apart_pairs(self, member_ids: Iterable[Any]) -> set[tuple[str, str]]:
        """(member_id, contact_id) pairs a person decided to keep apart, among these members."""
        ids = sorted({str(m) for m in member_ids if not _is_missing(m)})
        d = self.decisions.c
        pairs: set[tuple[str, str]] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), IN_CHUNK):
                query = sa.select(d.member_id, d.contact_id).where(
                    d.decision == Decision.KEEP_APART.value,
                    d.status == DecisionStatus.APPLIED.value,
                    d.member_id.in_(ids[start : start + IN_CHUNK]),
                )
                pairs.update((str(m), str(c)) for m, c in conn.execute(query) if c is not None)
        return pairs
