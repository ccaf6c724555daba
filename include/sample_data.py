"""Create a realistic demo member database (the table the demo mapping in include/config describes).

Usage::

    python -m include.sample_data --members 1000 [--db-url URL] [--seed 42]

Default database: var/members.db (SQLite) under the project root; ``--db-url`` fills PostgreSQL or
MariaDB instead. The ``members`` table is (re)created; the sync's bookkeeping tables are not touched.

The people are made up with Faker, in several locales so names carry accents and other scripts'
letters, and include what real member tables hold: households sharing one email, members without
an email, opted-out members, lapsed and soft-deleted members, and a few invalid emails. Rows are
built column by column from Faker pools with numpy (a million rows in seconds), and written with
COPY on PostgreSQL and large executemany batches elsewhere.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import sqlalchemy as sa
from faker import Faker
from sqlalchemy.dialects import mysql

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'members.db'}"
TABLE = "members"
LOCALES = ["en_US", "en_US", "en_US", "fr_FR", "de_DE", "es_ES", "pl_PL", "sv_SE", "it_IT", "vi_VN"]
ACTIVITIES = ["running", "choir", "gardening", "chess", "volunteering", "swimming", "book club", "cycling"]
INVALID_EMAILS = [
    "no-at-sign.example.org",
    "two@@example.org",
    "trailing.dot.@example.org",
    "space in@example.org",
]
# Shares of members with each trait (the tests and benchmarks rely on each being present).
SHARE_NO_EMAIL = 0.03
SHARE_HOUSEHOLD = 0.05  # shares the email of the member before them
SHARE_OPTED_OUT = 0.04
SHARE_INVALID_EMAIL = 0.002
SHARE_LAPSED = 0.15
SHARE_DELETED = 0.01
_TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def member_table(metadata: sa.MetaData | None = None) -> sa.Table:
    """The demo's member table: what a small organisation's membership system typically holds."""
    md = metadata or sa.MetaData()
    table = sa.Table(
        TABLE,
        md,
        sa.Column("member_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_name", sa.String(80)),
        sa.Column("last_name", sa.String(80)),
        sa.Column("email", sa.String(120)),
        sa.Column("home_phone", sa.String(30)),
        sa.Column("mobile_phone", sa.String(30)),
        sa.Column("address_line", sa.String(200)),
        sa.Column("city", sa.String(80)),
        sa.Column("state_code", sa.String(10)),
        sa.Column("postal_code", sa.String(20)),
        sa.Column("country", sa.String(60)),
        sa.Column("company", sa.String(120)),
        sa.Column("job_title", sa.String(120)),
        sa.Column("birth_date", sa.Date),
        sa.Column("membership_status", sa.String(20), nullable=False),
        sa.Column("email_opt_out", sa.Boolean, nullable=False),
        sa.Column("favourite_activity", sa.String(60)),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.Column("deleted_at", _TIMESTAMP),
        sa.Index("ix_members_updated_at", "updated_at"),
        sa.Index("ix_members_last_name", "last_name"),
    )
    return table


def _email_index(table: sa.Table, dialect: str) -> sa.Index:
    # MariaDB: its default collation ignores case and trailing spaces, and it has no functional
    # indexes, so the column itself is indexed. Elsewhere the index is on the normalised email.
    if dialect in ("mysql", "mariadb"):
        return sa.Index("ix_members_email", table.c.email)
    return sa.Index("ix_members_email_lower", sa.func.lower(sa.func.trim(table.c.email)))


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c in ".-")).lower()


@functools.lru_cache(maxsize=4)
def _pools(seed: int) -> Mapping[str, tuple[str, ...]]:
    """The values members are drawn from, per seed; cached (read-only), as Faker takes most of a
    small table's generation (0.7 s for the pools; the test worlds all use one seed)."""
    pools: dict[str, list[str]] = {
        k: [] for k in ("first", "last", "street", "city", "company", "job", "phone")
    }
    for i, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed + i)
        pools["first"] += [fake.first_name() for _ in range(300)]
        pools["last"] += [fake.last_name() for _ in range(300)]
    fake = Faker("en_US")
    fake.seed_instance(seed)
    pools["street"] = [fake.street_address() for _ in range(3000)]
    pools["city"] = [fake.city() for _ in range(800)]
    pools["company"] = [fake.company() for _ in range(1500)]
    pools["job"] = [fake.job() for _ in range(600)]
    pools["phone"] = [fake.numerify("(###) ###-####") for _ in range(5000)]
    pools["state"] = [
        fake.state_abbr(include_territories=False, include_freely_associated_states=False) for _ in range(500)
    ]
    pools["postcode"] = [fake.postcode() for _ in range(3000)]
    return MappingProxyType({name: tuple(values) for name, values in pools.items()})


def generate_members(n: int, seed: int = 42, now: datetime | None = None) -> pd.DataFrame:
    """``n`` made-up members as a DataFrame with the member table's columns (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    pools = _pools(seed)
    now = (now or datetime(2026, 11, 1, tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None)

    def pick(pool: tuple[str, ...]) -> np.ndarray:
        return np.asarray(pool, dtype=object)[rng.integers(0, len(pool), n)]

    ids = np.arange(1, n + 1)
    first, last = pick(pools["first"]), pick(pools["last"])
    domains = np.array(["example.org", "example.com", "example.net", "mail.example.org"], dtype=object)
    domain = domains[rng.integers(0, len(domains), n)]
    emails = np.array(
        [f"{_ascii(f)}.{_ascii(la)}{i}@{d}" for f, la, i, d in zip(first, last, ids, domain, strict=True)],
        dtype=object,
    )
    # Households: the member takes the surname and the email of the member before them.
    household = rng.random(n) < SHARE_HOUSEHOLD
    household[0] = False
    prev = np.flatnonzero(household) - 1
    last[household] = last[prev]
    emails[household] = emails[prev]
    emails[rng.random(n) < SHARE_NO_EMAIL] = None
    invalid = rng.random(n) < SHARE_INVALID_EMAIL
    emails[invalid] = np.asarray(INVALID_EMAILS, dtype=object)[
        rng.integers(0, len(INVALID_EMAILS), invalid.sum())
    ]
    # Some addresses are typed with capitals and stray spaces, as people do.
    sloppy = rng.random(n) < 0.02
    emails[sloppy] = np.array([f" {e.title()} " if e else e for e in emails[sloppy]], dtype=object)

    def sometimes(values: np.ndarray, share_missing: float) -> np.ndarray:
        values = values.copy()
        values[rng.random(n) < share_missing] = None
        return values

    birth = pd.Timestamp("1940-01-01") + pd.to_timedelta(rng.integers(0, 365 * 65, n), unit="D")
    updated = pd.Timestamp(now) - pd.to_timedelta(rng.integers(0, 730 * 86400 * 1000, n), unit="ms")
    updated = updated + pd.to_timedelta(rng.integers(0, 1000, n), unit="us")
    deleted = np.where(rng.random(n) < SHARE_DELETED, updated + timedelta(minutes=5), pd.NaT)
    frame = pd.DataFrame(
        {
            "member_id": ids,
            "first_name": first,
            "last_name": last,
            "email": emails,
            "home_phone": sometimes(pick(pools["phone"]), 0.4),
            "mobile_phone": sometimes(pick(pools["phone"]), 0.2),
            "address_line": sometimes(pick(pools["street"]), 0.1),
            "city": pick(pools["city"]),
            "state_code": pick(pools["state"]),
            "postal_code": pick(pools["postcode"]),
            "country": "United States",
            "company": sometimes(pick(pools["company"]), 0.5),
            "job_title": sometimes(pick(pools["job"]), 0.5),
            "birth_date": sometimes(np.asarray(birth.date, dtype=object), 0.3),
            "membership_status": np.where(rng.random(n) < SHARE_LAPSED, "lapsed", "active"),
            "email_opt_out": rng.random(n) < SHARE_OPTED_OUT,
            "favourite_activity": sometimes(pick(ACTIVITIES), 0.3),
            "updated_at": updated,
            "deleted_at": pd.to_datetime(deleted),
        }
    )
    return frame


def _rows(frame: pd.DataFrame, dialect: str) -> list[tuple[object, ...]]:
    data = frame.astype(object).where(frame.notna(), None).reset_index(drop=True)
    if dialect == "sqlite":
        # The text forms SQLAlchemy's SQLite types read back, written here without the ORM's cost.
        for col in ("updated_at", "deleted_at"):
            data[col] = pd.Series(
                [None if pd.isna(v) else v.strftime("%Y-%m-%d %H:%M:%S.%f") for v in data[col]], dtype=object
            )
        data["birth_date"] = pd.Series(
            [None if pd.isna(v) else v.isoformat() for v in data["birth_date"]], dtype=object
        )
        data["email_opt_out"] = data["email_opt_out"].astype(int)
    else:
        for col in ("updated_at", "deleted_at"):
            data[col] = pd.Series(
                [None if pd.isna(v) else v.to_pydatetime() for v in data[col]], dtype=object
            )
        data["member_id"] = data["member_id"].astype(int)
        data["email_opt_out"] = data["email_opt_out"].astype(bool)
    return list(data.itertuples(index=False, name=None))


def write_members(engine: sa.Engine, frame: pd.DataFrame, *, batch: int = 50_000) -> None:
    """(Re)create the member table and fill it with ``frame``."""
    dialect = engine.dialect.name
    md = sa.MetaData()
    table = member_table(md)
    _email_index(table, dialect)
    md.drop_all(engine, tables=[table], checkfirst=True)
    md.create_all(engine, tables=[table])
    columns = [c.name for c in table.columns]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if dialect == "postgresql":
            with cursor.copy(f"COPY {TABLE} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in _rows(frame[columns], dialect):
                    copy.write_row(row)
        else:
            mark = "?" if dialect == "sqlite" else "%s"
            sql = f"INSERT INTO {TABLE} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
            for start in range(0, len(frame), batch):
                cursor.executemany(sql, _rows(frame.iloc[start : start + batch][columns], dialect))
        raw.commit()
    finally:
        raw.close()
    analyse(engine)


def analyse(engine: sa.Engine) -> None:
    """Refresh the planner's statistics, as autovacuum would in time: queries plan on real figures."""
    statement = "ANALYZE TABLE members" if engine.dialect.name in ("mysql", "mariadb") else f"ANALYZE {TABLE}"
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)


def main(argv: list[str] | None = None) -> int:
    from cc_sync.member_db.connection import create_member_engine

    parser = argparse.ArgumentParser(prog="python -m include.sample_data", description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1000, help="how many members (default 1000)")
    parser.add_argument("--db-url", default=DEFAULT_DB_URL, help="SQLAlchemy URL (default var/members.db)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if not 1 <= args.members <= 5_000_000:
        parser.error("--members must be between 1 and 5,000,000")
    url = sa.make_url(args.db_url)
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    frame = generate_members(args.members, seed=args.seed)
    engine = create_member_engine(url)
    try:
        write_members(engine, frame)
    finally:
        engine.dispose()
    print(
        f"{url.render_as_string(hide_password=True)}: {len(frame):,} members in table {TABLE!r} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
