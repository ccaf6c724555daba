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

How rows are read fast is :mod:`cc_sync.member_db.reading`; how they become the canonical frame,
:mod:`cc_sync.member_db.canonical`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from airflow.sdk import BaseHook

from cc_sync.databases import begin_writing
from cc_sync.engine.normalise import normalise_email, normalise_name
from cc_sync.fields import MEMBER_ID, OPTED_OUT, UPDATED_AT
from cc_sync.member_db.canonical import (
    UTC_DTYPE,
    as_text,
    canonical_values,
    frame_to_arrow,
    hash_frame,
    is_missing,
    join_full_name,
    opted_out_flags,
    pk_value,
    string_series,
    utc_series,
)
from cc_sync.member_db.connection import (
    MEMBER_DB_CONN_TYPE,
    MemberDbSettings,
    create_member_engine,
    explain_connect_error,
)
from cc_sync.member_db.mapping import MemberMapping, NamePart, load_mapping
from cc_sync.member_db.reading import (
    ReadPath,
    read_raw_tables,
)
from cc_sync.member_db.states import convert_states
from cc_sync.settings import DEFAULT_MAPPING_PATH

ROW_VERSION = "row_version"
DEFAULT_CHUNKSIZE = 50_000
WRITE_BATCH = 2_000
_SRC = "src__"  # label prefix of raw source columns in the extract query


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
        table = raw if isinstance(raw, pa.Table) else frame_to_arrow(raw)
        m = self.mapping
        out: dict[str, pd.Series] = {MEMBER_ID: string_series(as_text(table[MEMBER_ID]))}
        parsed: dict[str, Any] = {}  # a source column feeding two fields (full name, birthday) is parsed once
        for name, fm in m.fields.items():
            out[name] = canonical_values(name, fm, table[_SRC + fm.column], m, parsed)
        if m.last_modified_column:
            out[UPDATED_AT] = utc_series(table[_SRC + m.last_modified_column])
        else:
            out[UPDATED_AT] = pd.Series(pd.NaT, index=pd.RangeIndex(table.num_rows), dtype=UTC_DTYPE)
        if m.opt_out:
            out[OPTED_OUT] = opted_out_flags(table[_SRC + m.opt_out.column], m.opt_out.opted_out_values)
        else:
            out[OPTED_OUT] = pd.Series(np.zeros(table.num_rows, dtype=bool))
        frame = pd.DataFrame(out, copy=False)
        if m.last_modified_column:
            frame[ROW_VERSION] = string_series(as_text(table[ROW_VERSION]))
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
        with begin_writing(self._engine) as conn:
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
                if is_missing(value):
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
                if not (is_missing(first) and is_missing(last)):
                    cur = current.loc[row[MEMBER_ID]]
                    first = cur["first_name"] if is_missing(first) else first
                    last = cur["last_name"] if is_missing(last) else last
                    values[m.full_name_column] = join_full_name(first, last)
            out.append((pk_value(row[MEMBER_ID], pk_type), values))
        return out

    # ---- helpers -------------------------------------------------------------------------------

    def _pk_values(self, member_ids: Iterable[Any]) -> list[Any]:
        pk_type = self.table.c[self.mapping.member_id_column].type
        return [pk_value(v, pk_type) for v in member_ids]

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
