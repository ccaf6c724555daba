"""MemberDatabaseHook on SQLite, PostgreSQL and MariaDB: extract, change detection, optimistic writes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from cc_sync.fields import MEMBER_ID, OPTED_OUT, UPDATED_AT
from cc_sync.member_db.hook import ROW_VERSION, MemberDatabaseHook
from cc_sync.member_db.mapping import parse_mapping
from tests.member_db.conftest import DEMO_MAPPING

IN_SCOPE = "membership_status = 'active' AND deleted_at IS NULL"


def scalar(url: str, sql: str, **params) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def execute(url: str, sql: str, **params) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def all_members(hook: MemberDatabaseHook, **kwargs) -> pd.DataFrame:
    frames = list(hook.extract_members(**kwargs))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def demo_without(line_start: str) -> str:
    text = DEMO_MAPPING.read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith(line_start))


def test_extract_reads_in_scope_members_in_chunks(hook: MemberDatabaseHook, members_url: str) -> None:
    chunks = list(hook.extract_members(chunksize=100))
    frame = pd.concat(chunks, ignore_index=True)
    assert all(len(c) <= 100 for c in chunks)
    assert len(chunks) > 1
    assert len(frame) == scalar(members_url, f"SELECT count(*) FROM members WHERE {IN_SCOPE}")
    assert frame[MEMBER_ID].is_unique
    assert isinstance(frame[MEMBER_ID].iloc[0], str)
    assert str(frame[UPDATED_AT].dt.tz) == "UTC"
    assert frame[OPTED_OUT].dtype == bool
    assert frame[OPTED_OUT].sum() == scalar(
        members_url, f"SELECT count(*) FROM members WHERE {IN_SCOPE} AND email_opt_out = :t", t=True
    )
    one = frame.iloc[0]
    engine = sa.create_engine(members_url)
    row = pd.read_sql(
        sa.text("SELECT * FROM members WHERE member_id = :id"), engine, params={"id": int(one[MEMBER_ID])}
    ).iloc[0]
    engine.dispose()
    assert one["last_name"] == row["last_name"]
    if pd.isna(row["company"]):
        assert pd.isna(one["company_name"])
    else:
        assert one["company_name"] == row["company"]
    if pd.notna(row["birth_date"]):
        assert one["birthday_month"] == pd.Timestamp(row["birth_date"]).month
        assert one["birthday_day"] == pd.Timestamp(row["birth_date"]).day
    assert one[UPDATED_AT] == pd.Timestamp(row["updated_at"]).tz_localize("UTC")


def test_extract_since_watermark_and_after_an_edit(hook: MemberDatabaseHook, members_url: str) -> None:
    everyone = all_members(hook)
    watermark = everyone[UPDATED_AT].sort_values().iloc[len(everyone) // 2].to_pydatetime()
    recent = all_members(hook, since=watermark)
    assert len(recent) == (everyone[UPDATED_AT] >= watermark).sum()
    assert 0 < len(recent) < len(everyone)
    old_member = everyone.loc[everyone[UPDATED_AT] < watermark, MEMBER_ID].iloc[0]
    assert old_member not in set(recent[MEMBER_ID])
    # Someone edits an old member: the next incremental extract picks it up.
    later = datetime.now(UTC).replace(tzinfo=None)
    execute(
        members_url,
        "UPDATE members SET city = 'Edited', updated_at = :t WHERE member_id = :id",
        t=later,
        id=int(old_member),
    )
    again = all_members(hook, since=watermark)
    assert old_member in set(again[MEMBER_ID])
    assert again.set_index(MEMBER_ID).loc[old_member, "city"] == "Edited"


def test_extract_by_hash_finds_changed_and_new_members(members_url: str) -> None:
    mapping = parse_mapping(demo_without("last_modified:"), source="no-lm.yaml")
    assert mapping.last_modified_column is None
    hook = MemberDatabaseHook.from_url(members_url, mapping)
    everyone = all_members(hook)
    known = hook.hash_members(everyone)
    known.index = everyone[MEMBER_ID]
    assert (everyone[ROW_VERSION] == known.to_numpy()).all()
    assert list(hook.extract_changed_by_hash(known)) == []
    changed_ids = everyone[MEMBER_ID].iloc[[3, 7]].tolist()
    execute(
        members_url,
        "UPDATE members SET job_title = 'Treasurer' WHERE member_id = :id",
        id=int(changed_ids[0]),
    )
    execute(
        members_url,
        "UPDATE members SET email_opt_out = :t WHERE member_id = :id",
        t=not everyone[OPTED_OUT].iloc[7],
        id=int(changed_ids[1]),
    )
    # A change to an unmapped column is not a change for the sync.
    execute(
        members_url,
        "UPDATE members SET updated_at = :t WHERE member_id = :id",
        t=datetime(2020, 1, 1),
        id=int(everyone[MEMBER_ID].iloc[9]),
    )
    execute(
        members_url,
        "INSERT INTO members (member_id, first_name, last_name, email, membership_status, email_opt_out,"
        " updated_at) VALUES (99999, 'Noémie', 'Dupré', 'noemie@example.org', 'active', :f, :t)",
        f=False,
        t=datetime(2026, 1, 1),
    )
    found = pd.concat(hook.extract_changed_by_hash(known), ignore_index=True)
    assert sorted(found[MEMBER_ID]) == sorted([*changed_ids, "99999"])
    hook.dispose()


@pytest.mark.parametrize("version_by", ["last_modified", "hash"])
def test_optimistic_write_skips_a_row_edited_since_extract(members_url: str, version_by: str) -> None:
    text = (
        DEMO_MAPPING.read_text(encoding="utf-8")
        if version_by == "last_modified"
        else demo_without("last_modified:")
    )
    hook = MemberDatabaseHook.from_url(members_url, parse_mapping(text, source="m.yaml"))
    frame = all_members(hook).head(6)
    updates = frame[[MEMBER_ID, ROW_VERSION]].copy()
    updates["job_title"] = "Synced title"
    updates["city"] = ["Oslo", None, "Lyon", "Turku", "Graz", "Cork"]  # None: leave the city alone
    raced = frame[MEMBER_ID].iloc[2]
    # Someone edits a member between our extract and our write, and commits.
    execute(
        members_url,
        "UPDATE members SET job_title = 'Edited by staff', updated_at = :t WHERE member_id = :id",
        t=datetime(2030, 1, 1, 12, 0, 0, 123456),
        id=int(raced),
    )
    result = hook.apply_member_updates(updates)
    assert result.skipped == [raced]
    assert sorted(result.updated) == sorted(set(frame[MEMBER_ID]) - {raced})
    after = all_members(hook, member_ids=frame[MEMBER_ID]).set_index(MEMBER_ID)
    assert after.loc[raced, "job_title"] == "Edited by staff"  # the concurrent edit survives
    written = [m for m in frame[MEMBER_ID] if m != raced]
    assert (after.loc[written, "job_title"] == "Synced title").all()
    second = frame[MEMBER_ID].iloc[1]
    assert after.loc[second, "city"] == frame.set_index(MEMBER_ID).loc[second, "city"]
    assert after.loc[frame[MEMBER_ID].iloc[0], "city"] == "Oslo"
    if version_by == "last_modified":
        assert (after.loc[written, UPDATED_AT] > frame.set_index(MEMBER_ID).loc[written, UPDATED_AT]).all()
    # Re-running the same (now stale) updates writes nothing: every row has moved on.
    rerun = hook.apply_member_updates(updates)
    assert rerun.updated == []
    assert sorted(rerun.skipped) == sorted(frame[MEMBER_ID])
    hook.dispose()


def test_write_never_resubscribes_and_records_opt_outs(hook: MemberDatabaseHook, members_url: str) -> None:
    frame = all_members(hook)
    opted = frame.loc[frame[OPTED_OUT]].head(1)
    subscribed = frame.loc[~frame[OPTED_OUT]].head(1)
    updates = pd.concat([opted, subscribed])[[MEMBER_ID, ROW_VERSION]].copy()
    updates[OPTED_OUT] = [False, True]  # CC says: the first is subscribed, the second opted out
    result = hook.apply_member_updates(updates)
    assert not result.skipped
    after = all_members(hook, member_ids=updates[MEMBER_ID]).set_index(MEMBER_ID)
    assert bool(after.loc[opted[MEMBER_ID].iloc[0], OPTED_OUT]) is True  # never re-subscribed
    assert bool(after.loc[subscribed[MEMBER_ID].iloc[0], OPTED_OUT]) is True


def test_write_refuses_fields_that_do_not_flow_to_the_member_db(hook: MemberDatabaseHook) -> None:
    frame = all_members(hook).head(1)
    updates = frame[[MEMBER_ID, ROW_VERSION]].assign(**{"cf:favourite_activity": "chess"})
    with pytest.raises(ValueError, match="cf:favourite_activity"):
        hook.apply_member_updates(updates)
    with pytest.raises(ValueError, match="birthday_month"):
        hook.apply_member_updates(frame[[MEMBER_ID, ROW_VERSION]].assign(birthday_month=3))


def test_overlong_value_is_rejected_and_the_rest_written(hook: MemberDatabaseHook) -> None:
    frame = all_members(hook).head(2)
    updates = frame[[MEMBER_ID, ROW_VERSION]].copy()
    updates["first_name"] = ["X" * 81, "Zoë"]  # the column is VARCHAR(80)
    updates["job_title"] = ["Chair", "Clerk"]
    result = hook.apply_member_updates(updates)
    assert result.rejected[[MEMBER_ID, "field"]].values.tolist() == [[frame[MEMBER_ID].iloc[0], "first_name"]]
    assert "80 characters" in result.rejected["reason"].iloc[0]
    after = all_members(hook, member_ids=frame[MEMBER_ID]).set_index(MEMBER_ID)
    first, second = frame[MEMBER_ID]
    assert after.loc[first, "job_title"] == "Chair"
    assert after.loc[first, "first_name"] == frame.set_index(MEMBER_ID).loc[first, "first_name"]
    assert after.loc[second, "first_name"] == "Zoë"


@pytest.mark.parametrize(
    ("segment", "where"),
    [
        ("runners", "favourite_activity = 'running'"),
        ("new_york", "state_code IN ('NY')"),
        ("everyone_with_a_company", "company IS NOT NULL"),
    ],
)
def test_segments_filter_within_scope(
    hook: MemberDatabaseHook, members_url: str, segment: str, where: str
) -> None:
    frame = all_members(hook, segment=segment)
    expected = scalar(members_url, f"SELECT count(*) FROM members WHERE {IN_SCOPE} AND {where}")
    assert len(frame) == expected
    assert expected > 0


def test_scope_filter_and_soft_delete(members_url: str) -> None:
    lapsed = DEMO_MAPPING.read_text(encoding="utf-8").replace("value: active}", "value: lapsed}")
    hook = MemberDatabaseHook.from_url(members_url, parse_mapping(lapsed, source="lapsed.yaml"))
    frame = all_members(hook)
    assert len(frame) == scalar(
        members_url, "SELECT count(*) FROM members WHERE membership_status = 'lapsed' AND deleted_at IS NULL"
    )
    deleted = scalar(members_url, "SELECT min(member_id) FROM members WHERE deleted_at IS NOT NULL")
    assert str(deleted) not in set(frame[MEMBER_ID])
    hook.dispose()


PEOPLE_MAPPING = """\
table: people
member_id: person_id
full_name: display_name
direction: two_way
last_modified: modified
fields:
  email: mail
  state: {column: region, holds: code}
state_format: name
"""


@pytest.fixture
def people_url(database_url: str) -> str:
    engine = sa.create_engine(database_url)
    md = sa.MetaData()
    people = sa.Table(
        "people",
        md,
        sa.Column("person_id", sa.String(20), primary_key=True),
        sa.Column("display_name", sa.String(100)),
        sa.Column("mail", sa.String(100)),
        sa.Column("region", sa.String(40)),
        sa.Column("modified", sa.DateTime()),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            people.insert(),
            [
                {
                    "person_id": "p1",
                    "display_name": "Maria de la Cruz",
                    "mail": "Maria@Example.org ",
                    "region": "NY",
                    "modified": datetime(2026, 1, 1),
                },
                {
                    "person_id": "p2",
                    "display_name": "Cher",
                    "mail": "cher@example.org",
                    "region": "QC",
                    "modified": datetime(2026, 1, 2),
                },
                {
                    "person_id": "p3",
                    "display_name": "  ",
                    "mail": "nobody@example.org",
                    "region": "Somewhere",
                    "modified": datetime(2026, 1, 3),
                },
            ],
        )
    engine.dispose()
    return database_url


def test_full_name_split_join_and_state_names(people_url: str) -> None:
    hook = MemberDatabaseHook.from_url(people_url, parse_mapping(PEOPLE_MAPPING, source="people.yaml"))
    frame = all_members(hook).set_index(MEMBER_ID)
    assert frame.loc["p1", ["first_name", "last_name"]].tolist() == ["Maria", "de la Cruz"]
    assert frame.loc["p2", "first_name"] == "Cher"
    assert pd.isna(frame.loc["p2", "last_name"])
    assert pd.isna(frame.loc["p3", "first_name"])
    assert frame.loc["p1", "state"] == "New York"  # the column holds codes, CC gets names
    assert frame.loc["p2", "state"] == "Quebec"
    assert frame.loc["p3", "state"] == "Somewhere"  # unknown regions pass through
    updates = frame.reset_index()[[MEMBER_ID, ROW_VERSION]].head(2)
    updates["last_name"] = ["Cruz-Smith", "Sarkisian"]
    updates["state"] = ["Ontario", None]
    result = hook.apply_member_updates(updates)
    assert sorted(result.updated) == ["p1", "p2"]
    stored = scalar(people_url, "SELECT display_name FROM people WHERE person_id = 'p1'")
    assert stored == "Maria Cruz-Smith"
    assert scalar(people_url, "SELECT display_name FROM people WHERE person_id = 'p2'") == "Cher Sarkisian"
    assert (
        scalar(people_url, "SELECT region FROM people WHERE person_id = 'p1'") == "ON"
    )  # a name back to a code
    hook.dispose()


def test_lookup_by_email_and_name(people_url: str) -> None:
    hook = MemberDatabaseHook.from_url(people_url, parse_mapping(PEOPLE_MAPPING, source="people.yaml"))
    found = hook.lookup_by_email(["  MARIA@example.org", "nobody@example.org", "absent@example.org"])
    assert sorted(found[MEMBER_ID]) == ["p1", "p3"]
    by_name = hook.lookup_by_name(["maria", "Cher"], ["DE LA CRUZ", None])
    assert sorted(by_name[MEMBER_ID]) == ["p1", "p2"]
    assert hook.lookup_by_email([]).empty
    hook.dispose()


def test_lookup_on_sample_members(hook: MemberDatabaseHook) -> None:
    frame = all_members(hook)
    with_email = frame.dropna(subset=["email"])
    target = with_email.iloc[5]
    shouted = f"  {target['email'].upper()} "
    found = hook.lookup_by_email([shouted])
    assert target[MEMBER_ID] in set(found[MEMBER_ID])
    assert (found["email"].str.strip().str.lower() == target["email"].strip().lower()).all()
    named = hook.lookup_by_name([target["first_name"].upper()], [target["last_name"]])
    assert target[MEMBER_ID] in set(named[MEMBER_ID])


def test_connection_uri_from_airflow(monkeypatch: pytest.MonkeyPatch, members_url: str) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEMBER_DB_DEFAULT",
        f'{{"conn_type": "generic", "extra": {{"sqlalchemy_url": "{members_url}"}}}}',
    )
    hook = MemberDatabaseHook(mapping=DEMO_MAPPING)
    assert hook.get_uri() == members_url
    assert len(all_members(hook)) > 0
    hook.dispose()


def test_write_waits_for_an_uncommitted_edit_and_keeps_it(hook: MemberDatabaseHook, members_url: str) -> None:
    """A staff edit still open (uncommitted) when the sync writes: the sync waits on the row lock,
    then sees the new version, skips the row, and the edit survives."""
    frame = all_members(hook).head(3)
    raced = frame[MEMBER_ID].iloc[1]
    editing = threading.Event()
    release = threading.Event()

    def staff_edit() -> None:
        engine = sa.create_engine(
            members_url, connect_args={"timeout": 30} if "sqlite" in members_url else {}
        )
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE members SET job_title = 'Staff edit', updated_at = :t WHERE member_id = :id"
                    ),
                    {"t": datetime(2031, 5, 5, 5, 5, 5, 5), "id": int(raced)},
                )
                editing.set()
                release.wait(timeout=30)
        finally:
            engine.dispose()

    editor = threading.Thread(target=staff_edit)
    editor.start()
    assert editing.wait(timeout=30)
    updates = frame[[MEMBER_ID, ROW_VERSION]].assign(job_title="From CC")
    writer_result: list = []
    writer = threading.Thread(target=lambda: writer_result.append(hook.apply_member_updates(updates)))
    writer.start()
    writer.join(timeout=1)  # the writer is now waiting on the editor's lock (or has read around it)
    release.set()
    editor.join(timeout=60)
    writer.join(timeout=60)
    result = writer_result[0]
    after = all_members(hook, member_ids=frame[MEMBER_ID]).set_index(MEMBER_ID)
    assert after.loc[raced, "job_title"] == "Staff edit"
    assert raced in result.skipped
    others = [m for m in frame[MEMBER_ID] if m != raced]
    assert sorted(result.updated) == sorted(others)
    assert (after.loc[others, "job_title"] == "From CC").all()
