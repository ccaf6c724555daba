"""Reading member rows fast: a query's result as Arrow tables, never a Python object per value.

Why extracts read through ADBC on SQLite and PostgreSQL: a DB-API cursor makes a Python object of
every value, which caps a million-member extract far below issue 3's 200,000 rows/s. ADBC drivers
put query results straight into Arrow record batches, streamed (memory holds a few chunks); two
key ranges are read side by side, in threads ahead of the conversion
(:mod:`cc_sync.member_db.canonical`), which works on whole Arrow columns. MariaDB/MySQL keeps its
DB-API driver; ``read_path="dbapi"`` selects it everywhere.
"""

from __future__ import annotations

import importlib.util
import itertools
import queue
import threading
from collections.abc import Generator, Iterable, Iterator, Sequence
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from cc_sync.member_db.canonical import frame_to_arrow

_PROBE = "ccsync_probe__"  # marks the type-fixing first row of an ADBC read on SQLite
_SQLITE_BUSY_TIMEOUT_MS = 30_000  # as long as create_member_engine's pysqlite timeout
_READ_AHEAD = 2  # chunks read ahead of the conversion: overlap, and memory for a few chunks only
_READ_PARTS = 2  # key ranges an ADBC extract reads side by side (connections per extract)
_T = TypeVar("_T")


class ReadPath(StrEnum):
    """How extracts read the member database (see :func:`read_raw_tables`)."""

    # Arrow Database Connectivity: SQLite and PostgreSQL results straight into Arrow record batches.
    ADBC = "adbc"
    # The SQLAlchemy engine's own driver: its cursor (SQLite, MariaDB/MySQL) or COPY (PostgreSQL).
    DBAPI = "dbapi"


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
                yield frame_to_arrow(pd.DataFrame(rows, columns=keys, dtype=object))
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
