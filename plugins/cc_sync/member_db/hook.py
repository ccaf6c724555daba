"""MemberDatabaseHook: read members into DataFrames in chunks, and write updates back safely.

The hook knows the organisation's table only through the mapping (:mod:`cc_sync.member_db.mapping`):
it reads the mapped columns of in-scope rows, turns them into the canonical frame every other part
of the sync uses (member_id, the canonical fields, updated_at, opted_out, row_version), and writes
canonical values back into the mapped columns.

Why the write is optimistic: the member database stays in use while a sync runs. Every extracted
row carries a ``row_version`` (the last-modified value as text, or a hash of the mapped columns
where the table has none). A write locks its batch of rows, compares each row's current version
with the one extracted, and updates only rows that still match; the others are returned as
``skipped`` and the next run takes them up with the newer values. The sync never inserts or
deletes member rows, and never writes an opt-in.

Why extracts read through ADBC on SQLite and PostgreSQL: a DB-API cursor makes a Python object of
every value, which caps a million-member extract far below issue 3's 200,000 rows/s. ADBC drivers
put query results straight into Arrow record batches, streamed (memory holds a few chunks); two
key ranges are read side by side, in threads ahead of the conversion, which works on whole Arrow
columns. MariaDB/MySQL keeps its DB-API driver; ``read_path="dbapi"`` selects it everywhere.
"""

from __future__ import annotations

import importlib.util
import itertools
import queue
import threading
import warnings
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache, cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from airflow.sdk import BaseHook

from cc_sync.engine.normalise import normalise_email, normalise_name
from cc_sync.fields import CANONICAL_FIELDS, MEMBER_ID, OPTED_OUT, UPDATED_AT, FieldKind, is_custom_field
from cc_sync.member_db.connection import (
    MEMBER_DB_CONN_TYPE,
    MemberDbSettings,
    create_member_engine,
    explain_connect_error,
)
from cc_sync.member_db.mapping import FieldMapping, MemberMapping, NamePart, load_mapping
from cc_sync.member_db.states import convert_states
from cc_sync.settings import DEFAULT_MAPPING_PATH

ROW_VERSION = "row_version"
DEFAULT_CHUNKSIZE = 50_000
WRITE_BATCH = 2_000
_SRC = "src__"  # label prefix of raw source columns in the extract query
_PROBE = "ccsync_probe__"  # marks the type-fixing first row of an ADBC read on SQLite
_SQLITE_BUSY_TIMEOUT_MS = 30_000  # as long as create_member_engine's pysqlite timeout
_UTC_DTYPE = pd.DatetimeTZDtype("us", "UTC")
_READ_AHEAD = 2  # chunks read ahead of the conversion: overlap, and memory for a few chunks only
_READ_PARTS = 2  # key ranges an ADBC extract reads side by side (connections per extract)
_T = TypeVar("_T")


class ReadPath(StrEnum):
    """How extracts read the member database (see :func:`read_raw_tables`)."""

    # Arrow Database Connectivity: SQLite and PostgreSQL results straight into Arrow record batches.
    ADBC = "adbc"
    # The SQLAlchemy engine's own driver: its cursor (SQLite, MariaDB/MySQL) or COPY (PostgreSQL).
    DBAPI = "dbapi"


@dataclass
class MemberWriteResult:
    """What :meth:`MemberDatabaseHook.apply_member_updates` did, per member id."""

    updated: list[str] = field(default_factory=list)
    # Changed since they were read (or now out of scope / gone): the next run takes them up.
    skipped: list[str] = field(default_factory=list)
    # Values the member table cannot hold (member_id, field, reason); the rest of the row is written.
    rejected: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=[MEMBER_ID, "field", "reason"])
    )

    def counts(self) -> dict[str, int]:
        return {"updated": len(self.updated), "skipped": len(self.skipped), "rejected": len(self.rejected)}


class MemberDatabaseHook(BaseHook):
    """Reads and writes the organisation's member table through the mapping.

    :param member_db_conn_id: Airflow connection whose URI (or ``extra.sqlalchemy_url``) is the
        member database's SQLAlchemy URL.
    :param mapping: a :class:`MemberMapping`, or the path of its YAML file.
    :param read_path: how extracts read SQLite and PostgreSQL: ``adbc`` (Arrow-native, the default)
        or ``dbapi`` (the SQLAlchemy driver's cursor, and COPY on PostgreSQL). MariaDB/MySQL always
        reads through its DB-API driver; both paths give the same frames.
    """

    conn_name_attr = "member_db_conn_id"
    default_conn_name = "member_db_default"
    conn_type = MEMBER_DB_CONN_TYPE
    hook_name = "Member database"

    def __init__(
        self,
        member_db_conn_id: str = default_conn_name,
        mapping: MemberMapping | str | Path | None = None,
        *,
        sqlalchemy_url: str | None = None,
        read_path: ReadPath | str = ReadPath.ADBC,
    ) -> None:
        super().__init__()
        self.member_db_conn_id = member_db_conn_id
        # None: the connection's mapping_path, else the project's (Airflow's Test builds the hook
        # from the connection id alone).
        self._mapping: MemberMapping | None = (
            load_mapping(mapping) if isinstance(mapping, str | Path) else mapping
        )
        self._sqlalchemy_url = sqlalchemy_url
        self.read_path = ReadPath(read_path)

    @classmethod
    def from_url(
        cls,
        url: str | sa.URL,
        mapping: MemberMapping | str | Path,
        *,
        read_path: ReadPath | str = ReadPath.ADBC,
    ) -> MemberDatabaseHook:
        """A hook on a database URL directly, without an Airflow connection (tests, benchmarks, CLI)."""
        if isinstance(url, sa.URL):
            url = url.render_as_string(hide_password=False)
        return cls(mapping=mapping, sqlalchemy_url=url, read_path=read_path)

    @property
    def mapping(self) -> MemberMapping:
        if self._mapping is None:
            self._mapping = load_mapping(self.connection_settings.mapping_path or DEFAULT_MAPPING_PATH)
        return self._mapping

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's Test button: connect, check the mapped table and columns and the bookkeeping
        schema, and count the members in scope; a failure says which setting to fix."""
        from cc_sync.errors import NotRetryableError
        from cc_sync.member_db.preflight import check_member_database

        try:
            report = check_member_database(self.connection_settings, self.mapping, count_members=True)
        except (NotRetryableError, OSError) as exc:
            return False, str(exc)
        return True, report.describe()

    # ---- engine and table --------------------------------------------------------------------

    @cached_property
    def connection_settings(self) -> MemberDbSettings:
        """The URL (and the Test's mapping path) the connection holds; a configuration error names it."""
        if self._sqlalchemy_url:
            return MemberDbSettings.from_url(self._sqlalchemy_url)
        return MemberDbSettings.from_connection(self.get_connection(self.member_db_conn_id))

    def get_uri(self) -> str:
        return self.connection_settings.url.render_as_string(hide_password=False)

    def get_conn(self) -> sa.Engine:
        return self.get_engine()

    def get_engine(self) -> sa.Engine:
        return self._engine

    @cached_property
    def _engine(self) -> sa.Engine:
        return create_member_engine(self.connection_settings.url)

    @cached_property
    def table(self) -> sa.Table:
        """The member table, reflected once; the mapping is checked against it first."""
        try:
            self.mapping.validate_against(self._engine)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            # The first query of a task: a refused login or no server fails it at once, saying so.
            raise explain_connect_error(exc, self.connection_settings) from None
        with warnings.catch_warnings():
            # Functional indexes (lower(email)) cannot be reflected; the sync does not need them to be.
            warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
            return sa.Table(
                self.mapping.table, sa.MetaData(), autoload_with=self._engine, schema=self.mapping.schema
            )

    def dispose(self) -> None:
        if "_engine" in self.__dict__:
            self._engine.dispose()

    # ---- extract -----------------------------------------------------------------------------

    def _select(self) -> sa.Select[Any]:
        t, m = self.table, self.mapping
        columns: list[sa.ColumnElement[Any]] = [t.c[m.member_id_column].label(MEMBER_ID)]
        for c in m.source_columns():
            if c == m.member_id_column:
                continue
            # Booleans read as 0/1 on every dialect (PostgreSQL's COPY would spell them t/f).
            col = sa.cast(t.c[c], sa.Integer) if isinstance(t.c[c].type, sa.Boolean) else t.c[c]
            columns.append(col.label(_SRC + c))
        if m.last_modified_column:
            columns.append(sa.cast(t.c[m.last_modified_column], sa.String(64)).label(ROW_VERSION))
        return sa.select(*columns).where(m.where_in_scope(t))

    def extract_members(
        self,
        *,
        since: datetime | None = None,
        chunksize: int = DEFAULT_CHUNKSIZE,
        segment: str | None = None,
        member_ids: Iterable[str] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """In-scope members, optionally only those modified at or after ``since``, in chunks.

        Each frame has member_id (str), the mapped canonical fields, updated_at (UTC), opted_out
        (bool) and row_version. ``since`` needs a last-modified column (see
        :meth:`extract_changed_by_hash` for tables without one).
        """
        stmt = self._select()
        if since is not None:
            lm = self.mapping.last_modified_column
            if not lm:
                raise ValueError(
                    "extract by timestamp needs last_modified in the mapping; use extract_changed_by_hash"
                )
            stmt = stmt.where(self.table.c[lm] >= self._bind_time(since, self.table.c[lm]))
        if segment is not None:
            stmt = stmt.where(self.mapping.where_segment(self.table, segment))
        if member_ids is not None:
            ids = self._pk_values(member_ids)
            if not ids:
                return
            stmt = stmt.where(self.table.c[self.mapping.member_id_column].in_(ids))
        yield from self._read_chunks(stmt, chunksize)

    def _read_chunks(self, stmt: sa.Select[Any], chunksize: int) -> Iterator[pd.DataFrame]:
        page_key = self.table.c[self.mapping.member_id_column]
        for raw in read_raw_tables(
            self._engine, stmt, chunksize, page_key=page_key, read_path=self.read_path
        ):
            yield self._to_canonical(raw)

    def extract_changed_by_hash(
        self, known_hashes: pd.Series, *, chunksize: int = DEFAULT_CHUNKSIZE
    ) -> Iterator[pd.DataFrame]:
        """In-scope members whose mapped values hash differently from ``known_hashes`` (member_id -> hash),
        or that are not in it: the change detection for tables without a last-modified column."""
        known = known_hashes.copy()
        known.index = known.index.astype(str)
        for chunk in self.extract_members(chunksize=chunksize):
            hashes = self.hash_members(chunk)
            stored = chunk[MEMBER_ID].astype(object).map(known)
            changed = stored.isna().to_numpy() | (
                stored.fillna("").to_numpy(object) != hashes.to_numpy(object)
            )
            if changed.any():
                yield chunk.loc[changed].reset_index(drop=True)

    def hash_members(self, frame: pd.DataFrame) -> pd.Series:
        """A stable hash (16 hex digits) of each member's mapped values and opt-out, vectorised."""
        cols = [c for c in (*self.mapping.fields, OPTED_OUT) if c in frame.columns]
        return hash_frame(frame, cols)

    def _to_canonical(self, raw: pd.DataFrame | pa.Table) -> pd.DataFrame:
        """Raw labelled source columns (an Arrow table, or a frame of driver values) -> the canonical frame.

        Every column is converted whole, in Arrow: no value becomes a Python object on the way.
        """
        table = raw if isinstance(raw, pa.Table) else _frame_to_arrow(raw)
        m = self.mapping
        out: dict[str, pd.Series] = {MEMBER_ID: _string_series(_text(table[MEMBER_ID]))}
        parsed: dict[str, Any] = {}  # a source column feeding two fields (full name, birthday) is parsed once
        for name, fm in m.fields.items():
            out[name] = _canonical_values(name, fm, table[_SRC + fm.column], m, parsed)
        if m.last_modified_column:
            out[UPDATED_AT] = _utc_series(table[_SRC + m.last_modified_column])
        else:
            out[UPDATED_AT] = pd.Series(pd.NaT, index=pd.RangeIndex(table.num_rows), dtype=_UTC_DTYPE)
        if m.opt_out:
            out[OPTED_OUT] = _is_opted_out(table[_SRC + m.opt_out.column], m.opt_out.opted_out_values)
        else:
            out[OPTED_OUT] = pd.Series(np.zeros(table.num_rows, dtype=bool))
        frame = pd.DataFrame(out, copy=False)
        if m.last_modified_column:
            frame[ROW_VERSION] = _string_series(_text(table[ROW_VERSION]))
        else:
            frame[ROW_VERSION] = self.hash_members(frame).astype("string")
        return frame

    # ---- lookups -------------------------------------------------------------------------------

    def lookup_by_email(self, emails: Iterable[str]) -> pd.DataFrame:
        """In-scope members whose normalised email is one of ``emails`` (normalised the same way).

        The query uses ``lower(trim(email))`` (what the sample data's functional index covers) on
        SQLite and PostgreSQL, and the column itself on MariaDB, whose default collation ignores case
        and trailing spaces (an address stored with leading spaces is not found there).
        """
        wanted = normalise_email(pd.Series(list(emails), dtype="string")).dropna().unique().tolist()
        if not wanted:
            return self.empty_frame()
        col = self.table.c[self.mapping.fields["email"].column]
        key = col if self._engine.dialect.name in ("mysql", "mariadb") else sa.func.lower(sa.func.trim(col))
        frames = [
            self._read_all(self._select().where(key.in_(wanted[i : i + 5_000])))
            for i in range(0, len(wanted), 5_000)
        ]
        found = pd.concat(frames, ignore_index=True)
        return found.loc[normalise_email(found["email"]).isin(wanted)].reset_index(drop=True)

    def opted_out_emails(self) -> pd.DataFrame:
        """member_id and normalised email (``email_key``) of every row flagged opted out, in scope
        or not, soft-deleted or not: an address someone asked not to mail stays unmailed whoever
        else shares it. One query, filtered on the opt-out column in SQL (the flag compared as text,
        booleans as 0/1, exactly as the extract decides ``opted_out``); only those rows are read."""
        m = self.mapping
        empty = pd.DataFrame(
            {MEMBER_ID: pd.Series([], dtype="string"), "email_key": pd.Series([], dtype="string")}
        )
        if m.opt_out is None:
            return empty
        t = self.table
        flag: sa.ColumnElement[Any] = t.c[m.opt_out.column]
        if isinstance(t.c[m.opt_out.column].type, sa.Boolean):
            flag = sa.cast(flag, sa.Integer)
        wanted: set[str] = set()
        for v in m.opt_out.opted_out_values:
            wanted.add(str(v))
            if isinstance(v, bool):
                wanted.add(str(int(v)))
        email = t.c[m.fields["email"].column]
        stmt = sa.select(t.c[m.member_id_column], email).where(
            sa.cast(flag, sa.String(64)).in_(sorted(wanted)), email.is_not(None)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            return empty
        frame = pd.DataFrame(
            {
                MEMBER_ID: pd.array([str(r[0]) for r in rows], dtype="string"),
                "email_key": normalise_email(pd.Series([r[1] for r in rows], dtype="string")).to_numpy(),
            }
        ).astype("string")
        return frame.loc[frame["email_key"].notna()].reset_index(drop=True)

    def lookup_by_name(
        self, first_names: Iterable[str | None], last_names: Iterable[str | None]
    ) -> pd.DataFrame:
        """In-scope members with one of the given (first name, last name) pairs, compared after
        Unicode normalisation and case folding."""
        pairs = pd.DataFrame({"first_name": list(first_names), "last_name": list(last_names)}, dtype="string")
        wanted = set(
            zip(normalise_name(pairs["first_name"]), normalise_name(pairs["last_name"]), strict=True)
        )  # fmt: skip
        if not wanted:
            return self.empty_frame()
        fields = self.mapping.fields
        mysql_like = self._engine.dialect.name in ("mysql", "mariadb")

        def key(name: str) -> sa.ColumnElement[Any]:
            col = self.table.c[fields[name].column]
            return col if mysql_like else sa.func.lower(sa.func.trim(col))

        # Narrow in SQL by one indexed column, then compare the normalised pairs in pandas.
        # (SQLite's lower() folds ASCII only: a name differing from the query in the case of an
        # accented letter is not found there.)
        narrowing: list[tuple[sa.ColumnElement[Any], list[str]]] = []
        if fields["last_name"].part == NamePart.LAST_NAME:  # one full-name column
            names = {join_full_name(f, last) for f, last in pairs.itertuples(index=False, name=None)}
            narrowing.append((key("last_name"), sorted(n.lower() for n in names if n)))
        else:
            has_last = pairs["last_name"].notna()
            narrowing.append(
                (key("last_name"), sorted({v.strip().lower() for v in pairs.loc[has_last, "last_name"]}))
            )
            firsts = {v.strip().lower() for v in pairs.loc[~has_last, "first_name"].dropna()}
            narrowing.append((key("first_name"), sorted(firsts)))
        frames = [
            self._read_all(self._select().where(col.in_(values[i : i + 5_000])))
            for col, values in narrowing
            for i in range(0, len(values), 5_000)
        ]
        if not frames:
            return self.empty_frame()
        found = pd.concat(frames, ignore_index=True).drop_duplicates(MEMBER_ID)
        keys = list(zip(normalise_name(found["first_name"]), normalise_name(found["last_name"]), strict=True))
        return found.loc[[k in wanted for k in keys]].reset_index(drop=True)

    def get_members(self, member_ids: Iterable[Any]) -> pd.DataFrame:
        """In-scope members by id, for a person looking a few up (the sync console).

        Read through the engine's own driver: for a handful of rows, the extract's ADBC path costs
        more than the rows (a connection of its own, and a key-range query that scans the table).
        """
        ids = self._pk_values(member_ids)
        if not ids:
            return self.empty_frame()
        stmt = self._select().where(self.table.c[self.mapping.member_id_column].in_(ids))
        page_key = self.table.c[self.mapping.member_id_column]
        frames = [
            self._to_canonical(raw)
            for raw in read_raw_tables(
                self._engine, stmt, DEFAULT_CHUNKSIZE, page_key, read_path=ReadPath.DBAPI
            )
        ]
        return pd.concat(frames, ignore_index=True) if frames else self.empty_frame()

    def _read_all(self, stmt: sa.Select[Any]) -> pd.DataFrame:
        frames = list(self._read_chunks(stmt, DEFAULT_CHUNKSIZE))
        return pd.concat(frames, ignore_index=True) if frames else self.empty_frame()

    def empty_frame(self) -> pd.DataFrame:
        """A frame with the extract's columns and no rows."""
        empty = pd.DataFrame({MEMBER_ID: pd.Series([], dtype=object)})
        for c in self._select().selected_columns.keys():  # noqa: SIM118 (a ColumnCollection, not a dict)
            if c != MEMBER_ID:
                empty[c] = pd.Series([], dtype=object)
        return self._to_canonical(empty)

    # ---- write ---------------------------------------------------------------------------------

    def writable_fields(self) -> list[str]:
        """Canonical fields the sync may write into the member table under the mapping's policies."""
        return [
            name
            for name, fm in self.mapping.fields.items()
            if fm.policy.flows_to_member_db(self.mapping.direction)
            and fm.part not in (NamePart.MONTH, NamePart.DAY)
        ]

    def apply_member_updates(
        self, updates: pd.DataFrame, *, batch_size: int = WRITE_BATCH
    ) -> MemberWriteResult:
        """Write ``updates`` (member_id, row_version, canonical columns; NA = leave alone).

        One transaction per batch: the batch's rows are locked, rows whose version changed since
        extract are skipped, the rest are updated and their last-modified column set to now.
        ``opted_out`` True writes the mapping's opted-out value; False is ignored (the sync never
        re-subscribes anyone). Values the column cannot hold are rejected, with a reason.
        """
        result = MemberWriteResult()
        if updates.empty:
            return result
        for col in (MEMBER_ID, ROW_VERSION):
            if col not in updates:
                raise ValueError(f"updates need a {col} column")
        value_cols = [c for c in updates.columns if c not in (MEMBER_ID, ROW_VERSION, UPDATED_AT)]
        allowed = set(self.writable_fields()) | ({OPTED_OUT} if self.mapping.opt_out else set())
        refused = [c for c in value_cols if c not in allowed]
        if refused:
            raise ValueError(
                f"cannot write {refused} into the member table: not mapped, or the mapping's direction "
                f"or policy keeps them from flowing to the member database (writable: {sorted(allowed)})"
            )
        data = updates.copy()
        data[MEMBER_ID] = data[MEMBER_ID].astype(str)
        data = data.drop_duplicates(MEMBER_ID, keep="last").reset_index(drop=True)
        data, rejected = self._reject_unfit(data, value_cols)
        result.rejected = rejected
        for start in range(0, len(data), batch_size):
            self._write_batch(data.iloc[start : start + batch_size], value_cols, result)
        self.log.info(
            "Member updates: %d updated, %d skipped (changed since read), %d values rejected",
            len(result.updated),
            len(result.skipped),
            len(result.rejected),
        )
        return result

    def _reject_unfit(self, data: pd.DataFrame, value_cols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Blank out (and report) values longer than their VARCHAR column; the rest of the row is kept."""
        rejected = []
        for name in value_cols:
            if name == OPTED_OUT:
                continue
            fm = self.mapping.fields[name]
            length = getattr(self.table.c[fm.column].type, "length", None)
            if not length or fm.part != NamePart.WHOLE:
                continue
            too_long = data[name].astype("string").str.len().gt(length).fillna(False).to_numpy(bool)
            if too_long.any():
                rejected.append(
                    pd.DataFrame(
                        {
                            MEMBER_ID: data.loc[too_long, MEMBER_ID].to_numpy(),
                            "field": name,
                            "reason": f"longer than the {length} characters column {fm.column!r} holds",
                        }
                    )
                )
                data.loc[too_long, name] = pd.NA
        frame = pd.concat(rejected, ignore_index=True) if rejected else MemberWriteResult().rejected
        return data, frame

    def _write_batch(self, batch: pd.DataFrame, value_cols: list[str], result: MemberWriteResult) -> None:
        m, t = self.mapping, self.table
        pk = t.c[m.member_id_column]
        ids = self._pk_values(batch[MEMBER_ID])
        with self._engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                current_rows = conn.execute(self._select().where(pk.in_(ids)).with_for_update()).all()
                current = self._to_canonical(
                    pd.DataFrame(
                        [tuple(r) for r in current_rows],
                        columns=list(self._select().selected_columns.keys()),
                        dtype=object,
                    )
                ).set_index(MEMBER_ID)
                versions = batch[MEMBER_ID].map(current[ROW_VERSION])
                fresh = (
                    (versions.astype("string") == batch[ROW_VERSION].astype("string"))
                    .fillna(False)
                    .to_numpy(bool)
                )
                result.skipped.extend(batch.loc[~fresh, MEMBER_ID].tolist())
                todo = batch.loc[fresh]
                if todo.empty:
                    return
                assignments = self._assignments(todo, value_cols, current)
                lm = m.last_modified_column
                stamp = {"_now": self._bind_time(datetime.now(UTC), t.c[lm])} if lm else {}
                groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
                for member_id, values in assignments:
                    if values:  # nothing to set: leave the row (and its last-modified time) alone
                        groups.setdefault(tuple(sorted(values)), []).append({"_pk": member_id, **values})
                for columns, params in groups.items():
                    set_: dict[str, Any] = {c: sa.bindparam(f"v_{c}", type_=t.c[c].type) for c in columns}
                    if lm:
                        set_[lm] = sa.bindparam("_now", type_=t.c[lm].type)
                    stmt = sa.update(t).where(pk == sa.bindparam("_pk", type_=pk.type)).values(set_)
                    rows = [{"_pk": p["_pk"], **stamp, **{f"v_{c}": p[c] for c in columns}} for p in params]
                    conn.execute(stmt, rows)
                result.updated.extend(str(p["_pk"]) for params in groups.values() for p in params)

    def _assignments(
        self, todo: pd.DataFrame, value_cols: list[str], current: pd.DataFrame
    ) -> list[tuple[Any, dict[str, Any]]]:
        """Per row, the member-table column -> value to set (NA values leave the column alone)."""
        m = self.mapping
        pk_type = self.table.c[m.member_id_column].type
        out = []
        for row in todo.to_dict(orient="records"):
            values: dict[str, Any] = {}
            for name in value_cols:
                value = row[name]
                if _missing(value):
                    continue
                if name == OPTED_OUT:
                    if bool(value) and m.opt_out:  # opt-outs only: nothing re-subscribes
                        values[m.opt_out.column] = m.opt_out.opted_out_values[0]
                    continue
                fm = m.fields[name]
                if fm.part in (NamePart.FIRST_NAME, NamePart.LAST_NAME):
                    continue  # joined below
                if name == "state" and fm.holds and fm.holds != m.state_format:
                    value = convert_states(pd.Series([value]), fm.holds).iloc[0]
                values[fm.column] = value.item() if hasattr(value, "item") else value
            if m.full_name_column and ({"first_name", "last_name"} & set(value_cols)):
                first, last = row.get("first_name"), row.get("last_name")
                if not (_missing(first) and _missing(last)):
                    cur = current.loc[row[MEMBER_ID]]
                    first = cur["first_name"] if _missing(first) else first
                    last = cur["last_name"] if _missing(last) else last
                    values[m.full_name_column] = join_full_name(first, last)
            out.append((_pk_value(row[MEMBER_ID], pk_type), values))
        return out

    # ---- helpers -------------------------------------------------------------------------------

    def _pk_values(self, member_ids: Iterable[Any]) -> list[Any]:
        pk_type = self.table.c[self.mapping.member_id_column].type
        return [_pk_value(v, pk_type) for v in member_ids]

    @staticmethod
    def _bind_time(moment: datetime, column: sa.ColumnElement[Any]) -> datetime:
        """A UTC moment as the column wants it: aware for TIMESTAMP WITH TIME ZONE, else naive UTC."""
        if isinstance(moment, pd.Timestamp):
            moment = moment.to_pydatetime()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if getattr(column.type, "timezone", False):
            return moment.astimezone(UTC)
        return moment.astimezone(UTC).replace(tzinfo=None)


# ---- reading rows fast -----------------------------------------------------------------------------


def _literal_sql(stmt: sa.Select[Any] | sa.CompoundSelect[Any], dialect: sa.Dialect) -> str:
    # Values here come from the mapping and the sync itself, and SQLAlchemy quotes them per dialect.
    return str(
        stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True, "render_postcompile": True})
    )


def read_raw_tables(
    engine: sa.Engine,
    stmt: sa.Select[Any],
    chunksize: int,
    page_key: sa.ColumnElement[Any] | None = None,
    *,
    read_path: ReadPath | str = ReadPath.ADBC,
) -> Iterator[pa.Table]:
    """Run ``stmt`` and yield its rows as Arrow tables of at most ``chunksize`` rows.

    Rows never become one Python object each on SQLite and PostgreSQL. ADBC (the default there, for
    database files and servers; in-memory and ``file:`` URI SQLite take the DB-API path) streams the
    result as Arrow record batches, two key ranges at once, each read at most a couple of chunks
    ahead of the consumer, so memory holds a few chunks whatever the table's size.

    The DB-API path: on PostgreSQL ``COPY (query) TO STDOUT`` as CSV parsed by pyarrow, one keyset
    page on ``page_key`` (the primary key) at a time, because libpq buffers whatever the server sends
    faster than it is read; on SQLite the plain cursor, on MariaDB an unbuffered server-side cursor,
    their tuples typed by pyarrow.
    """
    if ReadPath(read_path) == ReadPath.ADBC and _adbc_can_read(engine.url):
        parts = _key_range_parts(engine, stmt, page_key, chunksize)
        yield from _read_ahead([_read_adbc(engine.url, engine.dialect, part, chunksize) for part in parts])
        return
    keys = list(stmt.selected_columns.keys())
    dialect = engine.dialect.name
    with engine.connect() as conn:
        dbapi_conn = conn.connection.driver_connection
        if dialect == "postgresql":
            yield from _read_postgres_pages(dbapi_conn, engine.dialect, stmt, keys, chunksize, page_key)
            return
        if dialect in ("mysql", "mariadb"):
            import pymysql.cursors

            cursor = dbapi_conn.cursor(pymysql.cursors.SSCursor)
        else:
            cursor = dbapi_conn.cursor()
        try:
            cursor.execute(_literal_sql(stmt, engine.dialect))
            while rows := cursor.fetchmany(chunksize):
                yield _frame_to_arrow(pd.DataFrame(rows, columns=keys, dtype=object))
        finally:
            cursor.close()
        conn.rollback()


def _adbc_can_read(url: sa.URL) -> bool:
    """ADBC reads SQLite database files and PostgreSQL, when its driver is installed."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        # An in-memory database lives in the SQLAlchemy connection's process-private handle.
        database = url.database or ""
        return database not in ("", ":memory:") and not database.startswith("file:") and _has_adbc(backend)
    return backend == "postgresql" and _has_adbc(backend)


@cache
def _has_adbc(backend: str) -> bool:
    return importlib.util.find_spec(f"adbc_driver_{backend}") is not None


def libpq_uri(url: sa.URL) -> str:
    """The libpq connection URI of a SQLAlchemy PostgreSQL URL (any driver), its password included."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _adbc_connect(url: sa.URL) -> Any:
    if url.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi

        return adbc_driver_sqlite.dbapi.connect(url.database, autocommit=True)
    import adbc_driver_postgresql.dbapi

    return adbc_driver_postgresql.dbapi.connect(libpq_uri(url), autocommit=True)


def _read_adbc(url: sa.URL, dialect: sa.Dialect, stmt: sa.Select[Any], chunksize: int) -> Iterator[pa.Table]:
    sqlite = dialect.name == "sqlite"
    query = _literal_sql(_sqlite_read_as_text(stmt) if sqlite else stmt, dialect)
    with _adbc_connect(url) as conn, conn.cursor() as cursor:
        if sqlite:
            cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
            cursor.fetchall()
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(chunksize)})
        cursor.execute(query)
        reader = cursor.fetch_record_batch()
        try:
            batches: Iterator[pa.RecordBatch] = _without_probe(reader) if sqlite else iter(reader)
            yield from _rechunk(batches, chunksize)
        finally:
            reader.close()


def _key_range_parts(
    engine: sa.Engine, stmt: sa.Select[Any], page_key: sa.ColumnElement[Any] | None, chunksize: int
) -> list[sa.Select[Any]]:
    """``stmt`` split into :data:`_READ_PARTS` ranges of an integer ``page_key``, read side by side.

    Reading is most of an extract's time (the database's scan and the driver's decoding, both in C
    without the GIL); parts on their own connections use the database's and the worker's cores at
    once, like connectorx's partitioned reads. The split is by the key's span (its index's min and
    max, one cheap query), not by counted rows; a table smaller than a few chunks is read whole.
    """
    if page_key is None or not isinstance(page_key.type, sa.Integer) or _READ_PARTS < 2:
        return [stmt]
    with engine.connect() as conn:
        low, high = conn.execute(sa.select(sa.func.min(page_key), sa.func.max(page_key))).one()
    if low is None or high - low < _READ_PARTS * chunksize:
        return [stmt]
    bounds = [low + (high - low + 1) * i // _READ_PARTS for i in range(_READ_PARTS)] + [high + 1]
    return [stmt.where(page_key >= start, page_key < end) for start, end in itertools.pairwise(bounds)]


def _read_ahead(sources: Sequence[Iterator[_T]], depth: int = _READ_AHEAD) -> Iterator[_T]:
    """The items of ``sources``, each produced by a thread of its own, up to ``depth`` ahead.

    Reading a chunk (SQLite's virtual machine, libpq's COPY decoding, building Arrow arrays) runs in
    C without the GIL, so it overlaps the conversion of the chunk before. Each source is run, and
    closed, entirely in its thread; a consumer that stops early stops them after their current chunk,
    and an error in one is raised in the consumer.
    """
    handoff: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    finished = object()

    def offer(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce(items: Iterator[_T]) -> None:
        error: BaseException | None = None
        try:
            for item in items:
                if not offer((item, None)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            error = exc
        finally:
            if isinstance(items, Generator):
                items.close()
            offer((finished, error))

    workers = [
        threading.Thread(target=produce, args=(items,), name=f"member-db-read-{i}", daemon=True)
        for i, items in enumerate(sources)
    ]
    for worker in workers:
        worker.start()
    try:
        running = len(workers)
        while running:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is finished:
                running -= 1
                continue
            yield item
    finally:
        stop.set()
        for worker in workers:
            worker.join()


def _sqlite_read_as_text(stmt: sa.Select[Any]) -> sa.CompoundSelect[Any]:
    """``stmt`` with every column read as TEXT, behind one probe row of empty strings.

    SQLite's ADBC driver gives each result column the Arrow type of the values in its first batch,
    and fails when a later value does not fit: a column NULL throughout the first batch is typed
    int64 and breaks at the first text after it, and SQLite lets any column hold any type. As TEXT,
    behind a probe row that is text in every column, each column is a string column whatever it
    holds; the canonical conversion parses numbers and dates from text anyway.
    """
    rows = stmt.subquery("extract_rows")
    probe = sa.select(sa.literal(1).label(_PROBE), *(sa.literal("", sa.Text).label(c.key) for c in rows.c))
    return sa.union_all(
        probe, sa.select(sa.literal(0).label(_PROBE), *(sa.cast(c, sa.Text).label(c.key) for c in rows.c))
    )


def _without_probe(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        marker = batch.column(_PROBE)
        if pc.max(marker).as_py() == 1:
            batch = batch.filter(pc.equal(marker, 0))
        yield batch.drop_columns([_PROBE])


def _rechunk(batches: Iterable[pa.RecordBatch], chunksize: int) -> Iterator[pa.Table]:
    """Record batches of any size -> tables of ``chunksize`` rows (the last one fewer), without copying."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch.num_rows, chunksize - held)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == chunksize:
                yield pa.Table.from_batches(pending)
                pending, held = [], 0
    if held:
        yield pa.Table.from_batches(pending)


def _read_postgres_pages(
    dbapi_conn: Any,
    dialect: sa.Dialect,
    stmt: sa.Select[Any],
    keys: list[str],
    chunksize: int,
    page_key: sa.ColumnElement[Any] | None,
) -> Iterator[pa.Table]:
    if page_key is None:
        yield from _read_postgres_copy(dbapi_conn, _literal_sql(stmt, dialect), keys, chunksize)
        return
    label = keys[0]  # the page key is selected first (member_id)
    last: Any = None
    while True:
        page = stmt.order_by(page_key).limit(chunksize)
        if last is not None:
            page = page.where(page_key > last)
        tables = list(_read_postgres_copy(dbapi_conn, _literal_sql(page, dialect), keys, chunksize))
        if not tables:
            return
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        yield table
        if table.num_rows < chunksize:
            return
        tail = table[label][-1].as_py()
        last = int(tail) if isinstance(page_key.type, sa.Integer) else str(tail)


def _read_postgres_copy(dbapi_conn: Any, sql: str, keys: list[str], chunksize: int) -> Iterator[pa.Table]:
    import pyarrow.csv as pa_csv

    read_options = pa_csv.ReadOptions(column_names=keys)
    # Unquoted empty is NULL in PostgreSQL's CSV, a quoted "" is an empty string.
    convert_options = pa_csv.ConvertOptions(
        column_types={k: pa.string() for k in keys},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )

    def parse(blocks: list[bytes]) -> pa.Table:
        data = pa.py_buffer(b"".join(blocks))
        return pa_csv.read_csv(
            pa.BufferReader(data), read_options=read_options, convert_options=convert_options
        )

    with dbapi_conn.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
        # PostgreSQL sends each row in its own CopyData message, so a group of messages is whole rows.
        blocks: list[bytes] = []
        for block in copy:
            blocks.append(bytes(block))
            if len(blocks) >= chunksize:
                yield parse(blocks)
                blocks = []
        if blocks:
            yield parse(blocks)
    dbapi_conn.rollback()


# ---- pure helpers (no database) -------------------------------------------------------------------


def _field_kind(name: str) -> FieldKind:
    return FieldKind.TEXT if is_custom_field(name) else CANONICAL_FIELDS[name].kind


def _missing(value: Any) -> bool:
    return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))


def _pk_value(member_id: Any, pk_type: sa.types.TypeEngine[Any]) -> Any:
    return int(member_id) if isinstance(pk_type, sa.Integer) else str(member_id)


def _frame_to_arrow(raw: pd.DataFrame) -> pa.Table:
    """A frame of driver values (Python objects) as an Arrow table, each column typed by its values."""
    return pa.table({str(c): _column_to_arrow(raw[c]) for c in raw.columns})


def _column_to_arrow(values: pd.Series) -> pa.Array:
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types (SQLite lets a column hold any)
        return pa.array(values.astype("string"), type=pa.large_string(), from_pandas=True)


def _text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Any column as large strings; numbers and dates in Arrow's text form, booleans as 1/0."""
    if pa.types.is_large_string(values.type):
        return values
    if pa.types.is_boolean(values.type):
        values = values.cast(pa.int8())
    return values.cast(pa.large_string())


def _blank_to_null(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trimmed, with blanks as nulls."""
    trimmed = pc.utf8_trim_whitespace(text)
    blank = pc.equal(trimmed, "")
    if not pc.any(blank).as_py():  # the usual case; if_else would copy every string
        return trimmed
    return pc.if_else(blank, pa.scalar(None, pa.large_string()), trimmed)


def _string_series(text: pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(text), copy=False)


def _int_series(values: pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.Int64Dtype().__from_arrow__(values.cast(pa.int64())), copy=False)


def _arrow_text(values: pd.Series) -> pa.ChunkedArray:
    return pa.chunked_array([_column_to_arrow(values)])


def _blank_to_na(values: pd.Series) -> pd.Series:
    """Text, trimmed, with blanks as NA, computed in Arrow."""
    return pd.Series(
        pd.arrays.ArrowStringArray(_blank_to_null(_text(_arrow_text(values)))), index=values.index, copy=False
    )


def split_full_name(full: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split on the first space: "Maria de la Cruz" -> ("Maria", "de la Cruz"); one word is a first name."""
    text = _blank_to_na(full)
    parts = text.str.split(" ", n=1, expand=True).reindex(columns=[0, 1])
    first = _blank_to_na(parts[0])
    last = _blank_to_na(parts[1].astype("string"))
    return first, last


def join_full_name(first: Any, last: Any) -> str | None:
    parts = [str(p).strip() for p in (first, last) if not _missing(p) and str(p).strip()]
    return " ".join(parts) or None


def _canonical_values(
    name: str, fm: FieldMapping, raw: pa.ChunkedArray, mapping: MemberMapping, parsed: dict[str, Any]
) -> pd.Series:
    """One canonical field from its source column; ``parsed`` keeps splits and dates for the sibling field."""
    if fm.part in (NamePart.FIRST_NAME, NamePart.LAST_NAME):
        key = f"name:{fm.column}"
        if key not in parsed:
            parsed[key] = split_full_name(_string_series(_text(raw)))
        first, last = parsed[key]
        return first if fm.part == NamePart.FIRST_NAME else last
    if fm.part in (NamePart.MONTH, NamePart.DAY):
        key = f"date:{fm.column}"
        if key not in parsed:
            parsed[key] = _month_and_day(raw)
        month, day = parsed[key]
        return month if fm.part == NamePart.MONTH else day
    if _field_kind(name) == FieldKind.INTEGER:
        if pa.types.is_integer(raw.type):
            return _int_series(raw)
        return pd.to_numeric(_string_series(_text(raw)), errors="coerce").astype("Int64")
    values = _string_series(_blank_to_null(_text(raw)))
    if name == "state" and fm.holds and fm.holds != mapping.state_format:
        values = convert_states(values, mapping.state_format)
    return values


def _month_and_day(raw: pa.ChunkedArray) -> tuple[pd.Series, pd.Series]:
    """Month and day of a date column; text dates are ISO (YYYY-MM-DD) in Arrow, anything else by pandas."""
    if pa.types.is_null(raw.type):
        raw = raw.cast(pa.date32())
    if pa.types.is_date(raw.type) or pa.types.is_timestamp(raw.type):
        return _int_series(pc.month(raw)), _int_series(pc.day(raw))
    text = _blank_to_null(_text(raw))
    dates = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    month, day = _int_series(pc.month(dates)), _int_series(pc.day(dates))
    other = pc.and_(pc.is_valid(text), pc.is_null(dates)).to_numpy(zero_copy_only=False)
    if other.any():  # another format, or not a date (NA, as pandas' errors="coerce" makes it)
        slow = pd.to_datetime(_string_series(text).loc[other], errors="coerce", format="mixed")
        month.loc[other] = slow.dt.month.astype("Int64")
        day.loc[other] = slow.dt.day.astype("Int64")
    return month, day


def _utc_series(raw: pa.ChunkedArray) -> pd.Series:
    """Timestamps in UTC (microseconds); naive values are taken as UTC (how the sync and most member
    systems store them), text is ISO 8601."""
    utc = pa.timestamp("us", tz="UTC")
    if pa.types.is_timestamp(raw.type) or pa.types.is_date(raw.type) or pa.types.is_null(raw.type):
        return raw.cast(utc, safe=False).to_pandas()
    text = _text(raw)
    try:
        return text.cast(pa.timestamp("us")).cast(utc).to_pandas()
    except pa.ArrowInvalid:  # offsets, odd spacing, or not a time: pandas parses or gives NaT
        parsed = pd.to_datetime(_string_series(text), utc=True, format="ISO8601", errors="coerce")
        return parsed.astype(_UTC_DTYPE)


def _is_opted_out(values: pa.ChunkedArray, opted_out_values: tuple[Any, ...]) -> pd.Series:
    # Compared as text: booleans arrive as 0/1 (SQLite, MariaDB, the extract's cast) or true/false.
    wanted: set[str] = set()
    for v in opted_out_values:
        wanted.add(str(v))
        if isinstance(v, bool):
            wanted.add(str(int(v)))
    hits = pc.is_in(_text(values), value_set=pa.array(sorted(wanted), pa.large_string()))
    return pd.Series(pc.fill_null(hits, False).to_numpy(zero_copy_only=False), dtype=bool)


def hash_frame(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """A stable 64-bit hash per row of ``columns`` as text (16 hex digits); NA hashes apart from ""."""
    text = pd.DataFrame(
        {c: frame[c].astype("string").fillna("\x00").astype(object) for c in columns}, index=frame.index
    )
    hashed = pd.util.hash_pandas_object(text, index=False, categorize=False).to_numpy(np.uint64)
    return pd.Series(np.char.mod("%016x", hashed), index=frame.index, dtype=object)
