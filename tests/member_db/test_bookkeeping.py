"""Bookkeeping tables on SQLite, PostgreSQL and MariaDB: migrations up and down, idempotent upserts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cc_sync.member_db import migrate
from cc_sync.member_db.bookkeeping import (
    Bookkeeping,
    ReviewKind,
    RunStatus,
    build_metadata,
)

RUN = "scheduled__2026-11-22T00:00:00+00:00"


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def books(engine: sa.Engine) -> Bookkeeping:
    migrate.upgrade(engine)
    return Bookkeeping(engine)


@pytest.mark.parametrize("prefix", ["ccsync_", "sync2_"])
def test_migrations_up_match_the_table_definitions_and_go_down(engine: sa.Engine, prefix: str) -> None:
    assert migrate.current_revision(engine, prefix) is None
    assert not migrate.schema_is_current(engine, prefix)
    migrate.upgrade(engine, prefix=prefix)
    assert migrate.schema_is_current(engine, prefix)
    assert Bookkeeping(engine, prefix).schema_is_current()
    names = set(sa.inspect(engine).get_table_names())
    expected = set(build_metadata(prefix).tables)
    assert expected <= names
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": f"{prefix}alembic_version"})
        diffs = compare_metadata(context, build_metadata(prefix))
    # Only the tables of this prefix are compared; another prefix's tables are not ours to judge.
    assert [d for d in diffs if prefix in repr(d)] == []
    migrate.downgrade(engine, prefix=prefix)
    assert not (expected & set(sa.inspect(engine).get_table_names()))
    assert migrate.current_revision(engine, prefix) is None


def test_migrate_cli_check_exit_codes(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate.main(["check", "--db-url", database_url]) == 1
    assert "make migrate" in capsys.readouterr().out
    assert migrate.main(["upgrade", "--db-url", database_url]) == 0
    assert migrate.main(["check", "--db-url", database_url]) == 0
    assert migrate.main(["downgrade", "--db-url", database_url]) == 0
    assert migrate.main(["check", "--db-url", database_url]) == 1


def test_migrate_cli_takes_the_prefix_from_the_mapping(
    database_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    mapping = tmp_path / "mapping.yaml"
    text = migrate.DEFAULT_MAPPING.read_text()
    assert "table_prefix: ccsync_" in text
    mapping.write_text(text.replace("table_prefix: ccsync_", "table_prefix: org2_"))

    assert migrate.main(["upgrade", "--db-url", database_url, "--mapping", str(mapping)]) == 0

    assert migrate.schema_is_current(engine, "org2_")
    assert migrate.current_revision(engine, "ccsync_") is None
    assert migrate.main(["check", "--db-url", database_url, "--mapping", str(mapping)]) == 0
    assert migrate.main(["check", "--db-url", database_url, "--prefix", "ccsync_"]) == 1


def test_links_upsert_twice_and_move(books: Bookkeeping) -> None:
    links = pd.DataFrame(
        {"member_id": ["1", "2"], "contact_id": ["c-1", "c-2"], "rule": "name+email", "run_id": RUN}
    )
    books.upsert_links(links)
    books.upsert_links(links)
    got = books.get_links().sort_values("member_id")
    assert got[["member_id", "contact_id"]].values.tolist() == [["1", "c-1"], ["2", "c-2"]]
    assert str(got["linked_at"].dt.tz) == "UTC"
    # Contact c-2 now belongs to member 3 (e.g. after review): the old link gives way.
    books.upsert_links(
        pd.DataFrame({"member_id": ["3"], "contact_id": ["c-2"], "rule": "review", "run_id": RUN})
    )
    got = books.get_links().sort_values("member_id")
    assert got[["member_id", "contact_id"]].values.tolist() == [["1", "c-1"], ["3", "c-2"]]
    assert books.unlink(["c-1"], reason="contact deleted in CC", run_id=RUN) == 1
    assert books.get_links()["member_id"].tolist() == ["3"]
    log = books.get_changes(RUN)
    assert log[["member_id", "field", "old_value", "reason"]].values.tolist() == [
        ["1", "link", "c-1", "contact deleted in CC"]
    ]


def test_base_round_trip_and_replace(books: Bookkeeping) -> None:
    base = pd.DataFrame(
        {
            "contact_id": ["c-1", "c-2"],
            "first_name": ["Zoë", None],
            "birthday_month": [4, None],
            "cf:favourite_activity": ["chess", "choir"],
            "opted_out": [False, True],
            "member_hash": ["00ff", "ff00"],
        },
        index=pd.Index(["1", "2"], name="member_id"),
    )
    books.save_base(base, run_id=RUN)
    books.save_base(base.assign(first_name=["Zoé", "Ann"]), run_id=RUN)
    got = books.load_base()
    assert sorted(got.index) == ["1", "2"]
    assert got.loc["1", "first_name"] == "Zoé"
    assert got.loc["2", "first_name"] == "Ann"
    assert got.loc["1", "cf:favourite_activity"] == "chess"
    assert got.loc["1", "birthday_month"] == 4
    assert pd.isna(got.loc["2", "birthday_month"])
    assert got["opted_out"].tolist() == [False, True]
    assert books.load_base(["2"]).index.tolist() == ["2"]
    assert books.load_member_hashes().to_dict() == {"1": "00ff", "2": "ff00"}


def test_watermarks(books: Bookkeeping) -> None:
    assert books.get_watermark("members") is None
    first = datetime(2026, 11, 1, 8, 30, 0, 123456, tzinfo=UTC)
    books.set_watermarks({"members": first, "cc_contacts": first})
    later = datetime(2026, 11, 2, tzinfo=UTC)
    books.set_watermarks({"members": later})
    assert books.get_watermark("members") == later
    assert books.get_watermark("cc_contacts") == first
    with pytest.raises(ValueError, match="timezone-aware"):
        books.set_watermarks({"members": datetime(2026, 1, 1)})


def test_change_log_is_idempotent(books: Bookkeeping) -> None:
    changes = pd.DataFrame(
        {
            "run_id": RUN,
            "direction": ["to_cc", "to_member_db"],
            "member_id": ["1", "1"],
            "contact_id": ["c-1", "c-1"],
            "field": ["first_name", "job_title"],
            "old_value": ["Ann", None],
            "new_value": ["Anne", "Chair"],
            "reason": ["member side changed", "cc side changed"],
        }
    )
    books.append_changes(changes)
    books.append_changes(changes)
    log = books.get_changes(RUN)
    assert len(log) == 2
    assert log["new_value"].tolist() == ["Anne", "Chair"]
    assert log["old_value"].isna().tolist() == [False, True]
    # A rerun logging one change again and one more, a change without a contact (twice in one
    # frame), and the same change in another run: each logged once.
    more = pd.concat(
        [
            changes.iloc[1:],
            changes.iloc[:1].assign(field="city", new_value="Bath"),
            changes.iloc[:1].assign(contact_id=None, field="email", new_value="x"),
            changes.iloc[:1].assign(contact_id=None, field="email", new_value="y"),
        ],
        ignore_index=True,
    )
    assert books.append_changes(more) == 3
    books.append_changes(more)
    books.append_changes(changes.assign(run_id="manual__other"))
    log = books.get_changes(RUN)
    assert log["field"].tolist() == ["first_name", "job_title", "city", "email"]
    assert log["new_value"].tolist() == ["Anne", "Chair", "Bath", "y"]
    assert len(books.get_changes("manual__other")) == 2


def test_the_change_log_keeps_its_rows_through_migration_0009_and_a_rerun_adds_none(
    engine: sa.Engine,
) -> None:
    """0009 drops the hashed key: the rows stay, and a run that logged under 0008 and reruns after
    the upgrade logs nothing twice."""
    migrate.upgrade(engine, "0008")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ccsync_changes (change_key, run_id, direction, member_id, contact_id, field, "
                "old_value, new_value, reason, changed_at) VALUES ('k1', :run, 'to_cc', '1', 'c-1', "
                "'first_name', 'Ann', 'Anne', 'member side changed', :at)"
            ),
            {"run": RUN, "at": datetime(2026, 11, 22, tzinfo=UTC).replace(tzinfo=None)},
        )
    migrate.upgrade(engine)
    books = Bookkeeping(engine)
    assert books.schema_is_current()
    changes = pd.DataFrame(
        {"run_id": RUN, "direction": ["to_cc"], "member_id": ["1"], "contact_id": ["c-1"],
         "field": ["first_name"], "old_value": ["Ann"], "new_value": ["Anne"],
         "reason": ["member side changed"]}
    )  # fmt: skip
    books.append_changes(changes)
    log = books.get_changes(RUN)
    assert log[["member_id", "field", "new_value"]].values.tolist() == [["1", "first_name", "Anne"]]
    assert "change_key" not in log.columns
    migrate.downgrade(engine, "0008")
    with engine.connect() as conn:
        keys = conn.execute(sa.text("SELECT change_key FROM ccsync_changes")).scalars().all()
    assert len(keys) == 1


def test_a_dry_runs_plan_is_kept_and_a_rerun_replaces_it(books: Bookkeeping) -> None:
    plan = pd.DataFrame(
        {"direction": ["to_cc", "to_member_db"], "member_id": ["1", "2"], "contact_id": ["c-1", None],
         "field": ["city", "job_title"], "old_value": pd.Series([None, 3], dtype=object),
         "new_value": ["Lyon", "Chair"],
         "reason": ["member side changed", "cc side changed"]}
    )  # fmt: skip
    assert books.save_planned_changes(RUN, plan) == 2
    assert books.save_planned_changes("manual__other", plan.iloc[:1]) == 1
    kept = books.get_planned_changes(RUN)
    assert kept[["member_id", "field", "new_value"]].values.tolist() == [
        ["1", "city", "Lyon"],
        ["2", "job_title", "Chair"],
    ]
    assert kept["old_value"].isna().tolist() == [True, False]
    assert kept["old_value"].iloc[1] == "3"  # values are kept as text
    assert kept["contact_id"].isna().tolist() == [False, True]
    assert books.save_planned_changes(RUN, plan.iloc[1:]) == 1
    assert books.get_planned_changes(RUN)["member_id"].tolist() == ["2"]
    assert books.save_planned_changes(RUN, plan.iloc[:0]) == 0
    assert books.get_planned_changes(RUN).empty
    assert len(books.get_planned_changes("manual__other")) == 1


def test_a_bulk_insert_refuses_a_bound_constant(sqlite_url: str) -> None:
    """Constants go in as SQL literals: a bind the rows do not fill is a mistake, said loudly."""
    from cc_sync.member_db.bookkeeping import _execute_many

    engine = sa.create_engine(sqlite_url)
    migrate.upgrade(engine)
    books = Bookkeeping(engine)
    stmt = books.planned_changes.insert().values(planned_at=sa.bindparam("when"))
    row = {"run_id": RUN, "direction": "to_cc", "field": "city"}
    with engine.begin() as conn, pytest.raises(ValueError, match=r"binds \['when'\]"):
        _execute_many(conn, books.planned_changes, stmt, [row])
    engine.dispose()


@pytest.mark.parametrize(
    "stamp",
    [
        datetime(2026, 11, 1, 8, 30, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 1, 8, 30, tzinfo=UTC),  # no microseconds: still six digits in the literal
        datetime(2026, 11, 1, 10, 30, 0, 5, tzinfo=timezone(timedelta(hours=2))),
    ],
    ids=["microseconds", "whole-second", "another-zone"],
)
def test_a_bulk_timestamp_written_as_a_literal_reads_back_the_same_instant(
    books: Bookkeeping, stamp: datetime
) -> None:
    """The change log, links, base and directory write their one-per-insert timestamp as SQL text."""
    import cc_sync.member_db.bookkeeping as bookkeeping_module

    changes = pd.DataFrame(
        {"run_id": RUN, "direction": "to_cc", "member_id": ["1"], "contact_id": ["c-1"], "field": "city",
         "old_value": None, "new_value": "Lyon", "reason": "member side changed"}
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bookkeeping_module, "utcnow", lambda: stamp)
        books.append_changes(changes)
        link = {"member_id": ["1"], "contact_id": ["c-1"], "rule": "r", "run_id": RUN}
        books.upsert_links(pd.DataFrame(link))
        books.upsert_directory(pd.DataFrame({"contact_id": ["c-1"], "email": ["a@example.org"]}))
        books.save_planned_changes(RUN, changes)
    with books.engine.connect() as conn:
        written = [
            conn.execute(sa.select(books.changes.c.changed_at)).scalar_one(),
            conn.execute(sa.select(books.links.c.linked_at)).scalar_one(),
            conn.execute(sa.select(books.cc_directory.c.seen_at)).scalar_one(),
            conn.execute(sa.select(books.planned_changes.c.planned_at)).scalar_one(),
        ]
    assert written == [stamp] * 4
    assert all(value.tzinfo == UTC for value in written)


def test_review_queue_one_open_item_per_key(books: Bookkeeping) -> None:
    items = pd.DataFrame(
        {
            "kind": [ReviewKind.NEAR_MATCH.value, ReviewKind.REJECTED_ROW.value],
            "member_id": ["1", "2"],
            "contact_id": ["c-9", None],
            "email_hint": ["a***@example.org", None],
            "detail": [{"member": "Anne", "contact": "Annabelle"}, "invalid email"],
        }
    )
    assert books.add_review_items(items, run_id=RUN) == 2
    assert books.add_review_items(items, run_id=RUN) == 0
    open_items = books.list_open_reviews()
    assert len(open_items) == 2
    assert '"Annabelle"' in open_items["detail"].iloc[0]
    books.close_reviews([open_items["id"].iloc[0]])
    assert len(books.list_open_reviews()) == 1
    # The same near match found again after it was resolved is a new item.
    books.add_review_items(items.head(1), run_id=RUN)
    assert len(books.list_open_reviews(kind=ReviewKind.NEAR_MATCH.value)) == 1


def test_a_review_hint_longer_than_its_column_is_cut(books: Bookkeeping) -> None:
    # A masked email keeps its domain, and a domain may be long (strict PostgreSQL/MariaDB refuse).
    hint = "a***@" + "sub." * 40 + "example.org"
    items = pd.DataFrame({"kind": ["send_list_invalid"], "member_id": ["7"], "contact_id": [None],
                          "email_hint": [hint], "detail": ["email: too long"]})  # fmt: skip
    assert books.add_review_items(items, run_id=RUN) == 1
    (stored,) = books.list_open_reviews()["email_hint"]
    assert hint.startswith(stored)
    assert len(stored) == 100


def test_consent_ledger_and_activity_are_idempotent(books: Bookkeeping) -> None:
    opt_outs = pd.DataFrame(
        {
            "member_id": ["1", None],
            "contact_id": ["c-1", "c-7"],
            "side": ["cc", "cc"],
            "source": ["Contact", "Account"],
            "opted_out_at": ["2026-11-20T10:00:00Z", "2026-11-21T10:00:00+01:00"],
            "run_id": RUN,
        }
    )
    books.record_opt_outs(opt_outs)
    books.record_opt_outs(opt_outs)
    ledger = books.get_opt_outs()
    assert len(ledger) == 2
    assert pd.to_datetime(ledger["opted_out_at"]).tolist()[1] == pd.Timestamp("2026-11-21 09:00:00", tz="UTC")
    events = pd.DataFrame(
        {
            "contact_id": ["c-1", "c-1", "c-2"],
            "member_id": ["1", "1", "2"],
            "campaign_id": "camp-1",
            "campaign_activity_id": "act-1",
            "event_type": ["em_opens", "em_clicks", "em_opens"],
            "occurred_at": pd.to_datetime(["2026-11-20T10:00:00Z"] * 3, utc=True),
            "detail": [None, "https://example.org", None],
            "run_id": RUN,
        }
    )
    books.insert_activity(events)
    books.insert_activity(events)
    assert len(books.get_activity()) == 3


def test_runs(books: Bookkeeping) -> None:
    books.start_run(RUN, "cc_member_sync", "two_way")
    assert books.get_run(RUN)["status"] == RunStatus.RUNNING
    books.finish_run(RUN, RunStatus.SUCCESS, {"to_cc": 3, "to_member_db": 1}, api_calls=7)
    run = books.get_run(RUN)
    assert run["status"] == "success"
    assert run["counts"] == {"to_cc": 3, "to_member_db": 1}
    assert run["api_calls"] == 7
    assert run["finished_at"] >= run["started_at"]
    books.start_run(RUN, "cc_member_sync", "two_way")  # a cleared and re-run task
    assert books.get_run(RUN)["status"] == RunStatus.RUNNING
    assert books.get_run("never") is None
    with pytest.raises(KeyError):
        books.finish_run("never", RunStatus.FAILED, {})


def test_bookkeeping_in_a_separate_database(tmp_path, members_url: str) -> None:
    from cc_sync.member_db.mapping import parse_mapping
    from tests.member_db.conftest import DEMO_MAPPING

    other = f"sqlite:///{tmp_path / 'books.db'}"
    text = DEMO_MAPPING.read_text(encoding="utf-8").replace(
        "  table_prefix: ccsync_", f"  table_prefix: org_sync_\n  database_url: {other}"
    )
    mapping = parse_mapping(text, source="m.yaml")
    member_engine = sa.create_engine(members_url)
    books = Bookkeeping.for_mapping(mapping, member_engine)
    assert books.prefix == "org_sync_"
    assert books.engine.url.render_as_string() == other
    migrate.upgrade(books.engine, prefix=books.prefix)
    assert books.schema_is_current()
    assert "org_sync_links" not in sa.inspect(member_engine).get_table_names()
    books.engine.dispose()
    member_engine.dispose()


def test_links_of_more_people_than_one_statement_may_bind(sqlite_url: str) -> None:
    """150,000 links at once (a first sync's size) go through SQLite's cap on bound values."""
    engine = sa.create_engine(sqlite_url)
    migrate.upgrade(engine)
    bookkeeping = Bookkeeping(engine)
    n = 150_000
    frame = pd.DataFrame({"member_id": [str(i) for i in range(n)], "contact_id": [f"c{i}" for i in range(n)]})
    assert bookkeeping.upsert_links(frame.assign(rule="name_email")) == n
    # Contacts move between members: the old holders lose their links, nobody holds two.
    moved = pd.DataFrame({"member_id": ["0", "1"], "contact_id": ["c1", "c0"], "rule": "name_email"})
    bookkeeping.upsert_links(moved)
    links = bookkeeping.get_links().set_index("member_id")["contact_id"]
    assert links["0"] == "c1"
    assert links["1"] == "c0"
    assert links.is_unique
    assert bookkeeping.unlink([f"c{i}" for i in range(2, n)], "cc_deleted", run_id="r") == n - 2
    assert len(bookkeeping.get_links()) == 2
