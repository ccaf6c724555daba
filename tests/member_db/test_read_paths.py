"""The two ways an extract reads SQLite and PostgreSQL give the same canonical frames.

ADBC (Arrow-native, partitioned, read ahead in threads) is the default; the DB-API path (the
cursor on SQLite, COPY on PostgreSQL) is the reference it is checked against, on the sample
members and on values that trip naive readers: a column NULL through the first batches, blanks,
Unicode spaces, and on SQLite dates stored as other text or as integers and times with offsets.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from cc_sync.fields import MEMBER_ID, UPDATED_AT
from cc_sync.member_db.hook import MemberDatabaseHook
from cc_sync.member_db.mapping import MemberMapping
from cc_sync.member_db.reading import ReadPath, _rechunk, libpq_uri, read_raw_tables
from tests.member_db.test_hook import execute

CHUNK = 64  # the sample's 400 members span several chunks, in two key-range parts


def backend(url: str) -> str:
    return sa.make_url(url).get_backend_name()


@pytest.fixture
def adbc_url(members_url: str) -> str:
    if backend(members_url) not in ("sqlite", "postgresql"):
        pytest.skip("MariaDB/MySQL reads through its DB-API driver on both paths")
    return members_url


def extract(url: str, mapping: MemberMapping, read_path: ReadPath, **kwargs) -> pd.DataFrame:
    hook = MemberDatabaseHook.from_url(url, mapping, read_path=read_path)
    try:
        chunks = list(hook.extract_members(chunksize=CHUNK, **kwargs))
    finally:
        hook.dispose()
    assert all(len(chunk) <= CHUNK for chunk in chunks)
    if not chunks:
        return hook.empty_frame()
    # Parts are read side by side, so chunks arrive in no fixed order: compare by member.
    frame = pd.concat(chunks, ignore_index=True)
    return frame.sort_values(MEMBER_ID, key=lambda ids: ids.astype(int)).reset_index(drop=True)


def both_paths(url: str, mapping: MemberMapping, **kwargs) -> pd.DataFrame:
    adbc = extract(url, mapping, ReadPath.ADBC, **kwargs)
    dbapi = extract(url, mapping, ReadPath.DBAPI, **kwargs)
    pd.testing.assert_frame_equal(adbc, dbapi, check_exact=True)
    return adbc


def test_the_paths_really_differ(adbc_url: str, demo_mapping: MemberMapping) -> None:
    """The raw Arrow types show which reader ran: a silent fallback would make the comparisons moot."""
    hook = MemberDatabaseHook.from_url(adbc_url, demo_mapping)
    stmt = hook._select()
    adbc = next(read_raw_tables(hook.get_engine(), stmt, CHUNK, read_path=ReadPath.ADBC)).schema
    dbapi = next(read_raw_tables(hook.get_engine(), stmt, CHUNK, read_path=ReadPath.DBAPI)).schema
    hook.dispose()
    if backend(adbc_url) == "sqlite":  # ADBC reads every column as text there; the cursor gives ints
        assert adbc.field(MEMBER_ID).type == pa.string()
        assert dbapi.field(MEMBER_ID).type == pa.int64()
    else:  # ADBC keeps PostgreSQL's types; COPY's CSV is text
        assert adbc.field("src__birth_date").type == pa.date32()
        assert dbapi.field("src__birth_date").type == pa.string()


@pytest.mark.parametrize(
    ("options", "at_least"),
    [
        pytest.param({}, CHUNK + 1, id="all"),  # several chunks, from both key-range parts
        pytest.param({"since": datetime(2025, 6, 1, tzinfo=UTC)}, 1, id="since"),
        pytest.param({"segment": "runners"}, 1, id="segment"),
        pytest.param({"member_ids": [str(i) for i in range(1, 400, 3)]}, CHUNK + 1, id="member_ids"),
        pytest.param({"member_ids": ["999999"]}, 0, id="nobody"),
    ],
)
def test_adbc_and_dbapi_give_identical_frames(
    adbc_url: str, demo_mapping: MemberMapping, options: dict[str, object], at_least: int
) -> None:
    frame = both_paths(adbc_url, demo_mapping, **options)
    assert len(frame) >= at_least
    assert frame[MEMBER_ID].is_unique
    if not at_least:
        assert frame.empty


def test_awkward_values_read_the_same_both_ways(adbc_url: str, demo_mapping: MemberMapping) -> None:
    sqlite = backend(adbc_url) == "sqlite"
    ids = [int(i) for i in extract(adbc_url, demo_mapping, ReadPath.DBAPI)[MEMBER_ID]]
    late = [i for i in ids if i > 150]
    spaced, blank, empty, nbsp, us_date, int_date, garbage, midnight, offset = late[:9]
    # NULL through the first batches of the first part, text after: SQLite's ADBC driver would type
    # the column by its first batch (int64) and fail at the first text.
    execute(adbc_url, "UPDATE members SET favourite_activity = NULL WHERE member_id <= 150")
    execute(adbc_url, "UPDATE members SET favourite_activity = 'chess' WHERE member_id > 150")
    execute(adbc_url, f"UPDATE members SET city = '  Spaced  ' WHERE member_id = {spaced}")
    execute(adbc_url, f"UPDATE members SET city = '   ' WHERE member_id = {blank}")
    execute(adbc_url, f"UPDATE members SET city = '' WHERE member_id = {empty}")
    execute(
        adbc_url, "UPDATE members SET email = :e WHERE member_id = :i", e="nbsp@example.org\u00a0", i=nbsp
    )
    if sqlite:  # a DATE column holding other text and integers; a time with an offset
        for member, value in ((us_date, "'02/01/1980'"), (int_date, "19800102"), (garbage, "'garbage'")):
            execute(adbc_url, f"UPDATE members SET birth_date = {value} WHERE member_id = {member}")
        execute(
            adbc_url, f"UPDATE members SET birth_date = '1980-07-09 00:00:00' WHERE member_id = {midnight}"
        )
        execute(
            adbc_url,
            f"UPDATE members SET updated_at = '2025-06-01T10:00:00+02:00' WHERE member_id = {offset}",
        )

    frame = both_paths(adbc_url, demo_mapping).set_index(MEMBER_ID)
    early = frame.index.astype(int) <= 150
    assert frame.loc[early, "cf:favourite_activity"].isna().all()
    assert (frame.loc[~early, "cf:favourite_activity"] == "chess").all()
    assert frame.loc[str(spaced), "city"] == "Spaced"
    assert pd.isna(frame.loc[str(blank), "city"])
    assert pd.isna(frame.loc[str(empty), "city"])
    assert frame.loc[str(nbsp), "email"] == "nbsp@example.org"
    if sqlite:
        birthdays = frame[["birthday_month", "birthday_day"]]
        assert birthdays.loc[str(us_date)].tolist() == [2, 1]
        assert birthdays.loc[str(int_date)].tolist() == [1, 2]
        assert birthdays.loc[str(garbage)].isna().all()
        assert birthdays.loc[str(midnight)].tolist() == [7, 9]
        assert frame.loc[str(offset), UPDATED_AT] == pd.Timestamp("2025-06-01 08:00", tz="UTC")


def test_stopping_early_releases_threads_and_connections(adbc_url: str, demo_mapping: MemberMapping) -> None:
    before = threading.active_count()
    hook = MemberDatabaseHook.from_url(adbc_url, demo_mapping)
    chunks = hook.extract_members(chunksize=CHUNK)
    assert len(next(chunks)) == CHUNK
    chunks.close()
    assert threading.active_count() == before
    # Nothing still holds a read lock or an open transaction on the table.
    engine = sa.create_engine(adbc_url, connect_args={"timeout": 1} if backend(adbc_url) == "sqlite" else {})
    try:
        with engine.begin() as conn:
            if backend(adbc_url) == "postgresql":
                conn.execute(sa.text("SET lock_timeout = '1s'"))
            conn.execute(sa.text("ALTER TABLE members ADD COLUMN touched INTEGER"))
    finally:
        engine.dispose()
        hook.dispose()


def test_a_read_error_reaches_the_caller(adbc_url: str, demo_mapping: MemberMapping) -> None:
    hook = MemberDatabaseHook.from_url(adbc_url, demo_mapping)
    hook.table  # noqa: B018 (reflected while the table exists)
    execute(adbc_url, "DROP TABLE members")
    with pytest.raises(Exception, match="members"):
        list(hook.extract_members(chunksize=CHUNK))
    hook.dispose()


def test_a_failed_postgres_connection_keeps_the_password_out_of_the_error(
    demo_mapping: MemberMapping,
) -> None:
    url = sa.make_url("postgresql+psycopg://sync:s3cret-pw@127.0.0.1:1/members")
    engine = sa.create_engine(url)
    stmt = sa.select(sa.literal(1).label(MEMBER_ID))
    with pytest.raises(Exception) as failure:  # noqa: PT011 (the driver's own error type)
        list(read_raw_tables(engine, stmt, CHUNK, read_path=ReadPath.ADBC))
    engine.dispose()
    assert "s3cret-pw" not in str(failure.value)
    assert "s3cret-pw" not in repr(failure.value.args)


def test_libpq_uri_from_a_sqlalchemy_url() -> None:
    url = sa.URL.create(
        "postgresql+psycopg", username="sync", password="p@ss:w/rd", host="db.example.org", port=5433,
        database="members", query={"sslmode": "require"},
    )  # fmt: skip
    assert libpq_uri(url) == "postgresql://sync:p%40ss%3Aw%2Frd@db.example.org:5433/members?sslmode=require"


@pytest.mark.parametrize(
    ("sizes", "chunksize", "expected"),
    [
        ([3, 7, 0, 5], 4, [4, 4, 4, 3]),
        ([10], 10, [10]),
        ([2, 2], 5, [4]),
        ([0], 3, []),
        ([], 3, []),
    ],
)
def test_rechunk_cuts_batches_into_chunks_without_losing_rows(
    sizes: list[int], chunksize: int, expected: list[int]
) -> None:
    start = 0
    batches = []
    for size in sizes:
        batches.append(pa.record_batch({"n": pa.array(range(start, start + size), pa.int64())}))
        start += size
    tables = list(_rechunk(batches, chunksize))
    assert [t.num_rows for t in tables] == expected
    assert [v for t in tables for v in t["n"].to_pylist()] == list(range(start))
