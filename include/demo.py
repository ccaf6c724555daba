"""``make demo``: the two-way sync start to finish on this machine, told person by person.

It starts fresh each time (it rebuilds the member database, the emulator's account and the API
token state under var/), then:

1. migrates the Airflow metadata DB and creates a sample member database with the sync's
   bookkeeping tables;
2. starts the Constant Contact emulator with production limits (4 requests a second, 10,000 a
   day) and seeds it with contacts that overlap the members, as an earlier manual upload would;
3. runs the sync DAG with ``dag.test()``: it links, creates and merges;
4. changes both sides: a member edit in the database, a subscriber's opt-out in CC, an email
   change in CC, and the same field of one person changed on both sides, CC's change later;
5. runs the DAG again and prints, person by person, what the sync did, read from the bookkeeping
   (the change log, the consent ledger, the review queue) and from both sides afterwards.

Airflow's own logs go to var/demo-airflow.log. The screen shows member ids and masked emails only.
The member database (var/members.db) and the emulator's state (var/emulator-state.json) stay, so
``make airflow`` opens the UI on the same world, these runs included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pandas as pd
import sqlalchemy as sa

from include import airflow_env
from include.airflow_env import PROJECT_ROOT, VAR_DIR

if TYPE_CHECKING:  # Airflow and the plugins are imported only once the Airflow settings are applied
    from cc_sync.member_db.bookkeeping import Bookkeeping
    from cc_sync.member_db.mapping import MemberMapping
    from include.cc_emulator.testing import EmulatorHandle
    from include.sync_world import SeedReport

DAG_ID = "constant_contact_sync"
DEFAULT_MEMBERS = 500
# The conflicting edit: the member database first, the subscriber in CC later, so CC's value wins.
CONFLICT_MEMBER_AGO = timedelta(seconds=20)
CONFLICT_CC_AGO = timedelta(seconds=10)


class EditKind(StrEnum):
    """The four edits the demo makes between the two runs."""

    MEMBER_EDIT = "member edit"
    CC_OPT_OUT = "opt-out in Constant Contact"
    CC_EMAIL_CHANGE = "email change in Constant Contact"
    CONFLICT = "conflicting edit on both sides"


@dataclass(frozen=True)
class DemoPaths:
    """The files one demo world lives in."""

    var_dir: Path

    @property
    def members_db(self) -> Path:
        return self.var_dir / "members.db"

    @property
    def member_db_url(self) -> str:
        return f"sqlite:///{self.members_db}"

    @property
    def emulator_state(self) -> Path:
        return self.var_dir / "emulator-state.json"

    @property
    def cc_state_db(self) -> Path:
        return self.var_dir / "cc_api_state.db"

    @property
    def airflow_log(self) -> Path:
        return self.var_dir / "demo-airflow.log"

    def start_fresh(self) -> None:
        """Remove the previous world: the member DB, the emulator's account and the token state
        must go together (the token state holds the emulator's rotated refresh token)."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        for path in (self.members_db, self.emulator_state, self.cc_state_db, self.airflow_log):
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class DemoEdit:
    """One edit made between the runs; ``field`` is the canonical field it touched."""

    kind: EditKind
    member_id: str
    contact_id: str
    field: str
    description: str


@dataclass(frozen=True)
class RunOutcome:
    """One sync run: the DAG run's state, its task states, and the bookkeeping's run record."""

    run_id: str
    state: str
    tasks: dict[str, str]
    status: str | None
    counts: dict[str, int]
    api_calls: int

    @property
    def succeeded(self) -> bool:
        return self.state == "success" and self.status == "success"


@dataclass
class DemoResult:
    paths: DemoPaths
    seeded: SeedReport
    first: RunOutcome
    second: RunOutcome
    edits: list[DemoEdit] = field(default_factory=list)


# ---- printing -------------------------------------------------------------------------------------

REASON_WORDS: dict[str, str] = {
    "member_changed": "changed in the member database only",
    "cc_changed": "changed in Constant Contact only",
    "conflict_member_later": "changed on both sides; the member database's change was later",
    "conflict_cc_later": "changed on both sides; Constant Contact's change was later",
    "conflict_tie_member_db": "changed on both sides at the same instant; the member database wins ties",
    "owner_member_db": "changed on both sides; the mapping makes the member database its owner",
    "owner_cc": "changed on both sides; the mapping makes Constant Contact its owner",
    "opt_out": "an opt-out on one side opts out both",
    "created": "new contact made from the member",
}
# The run record's counts worth telling, in the order a reader follows them.
COUNT_WORDS: dict[str, str] = {
    "pairs_compared": "pairs compared",
    "new_links": "newly linked",
    "cc_creates": "created in CC",
    "cc_updates": "updated in CC (bulk import)",
    "cc_puts": "written to CC one by one (PUT)",
    "cc_email_changes": "email changes sent to CC",
    "cc_unsubscribes": "unsubscribed in CC",
    "member_updates": "member rows updated",
    "member_opt_outs": "opt-outs written to members",
    "consent": "consent ledger entries",
    "unlinks": "unlinked",
    "reviews": "in the review queue",
    "rejected": "rejected (reasons in the review queue)",
    "changes": "field changes logged",
}
DIRECTION_WORDS = {
    "to_cc": "-> Constant Contact",
    "to_member_db": "-> member database",
    "link": "link",
    "decision": "a person's decision",
}


def shown(field_name: str, value: Any) -> str:
    """A value as the demo prints it: emails masked, blanks as a dash."""
    from cc_sync.member_db.validate import mask_email

    if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field_name == "email":
        return mask_email(str(value)) or "(invalid email)"
    return repr(str(value))


def run_lines(title: str, outcome: RunOutcome) -> list[str]:
    """A run's summary: its state, API calls, and what it did in words."""
    lines = [f"{title}: {outcome.state}, {outcome.api_calls} Constant Contact API call(s)"]
    done = [f"{outcome.counts[key]} {words}" for key, words in COUNT_WORDS.items() if outcome.counts.get(key)]
    lines += [f"  {', '.join(done[i : i + 4])}" for i in range(0, len(done), 4)] or ["  nothing to change"]
    unfinished = {t: s for t, s in outcome.tasks.items() if s not in ("success", "skipped")}
    if unfinished:
        lines.append(f"  tasks not successful: {unfinished}")
    return lines


def person_lines(
    edit: DemoEdit, changes: pd.DataFrame, consent: pd.DataFrame, reviews: pd.DataFrame, now_both: str
) -> list[str]:
    """What the second run did for one person, from the bookkeeping."""
    lines = [
        f"member {edit.member_id} / contact {edit.contact_id[:8]}: {edit.kind}",
        f"  edit:   {edit.description}",
    ]
    for row in changes.itertuples(index=False):
        lines.append(
            f"  sync:   {row.field} {shown(row.field, row.old_value)} -> {shown(row.field, row.new_value)}"
            f" {DIRECTION_WORDS.get(row.direction, row.direction)}"
            f"  ({REASON_WORDS.get(str(row.reason), row.reason)})"
        )
    for row in consent.itertuples(index=False):
        when = f"{pd.Timestamp(row.opted_out_at):%H:%M:%S}" if pd.notna(row.opted_out_at) else "unknown"
        lines.append(f"  consent: ledger says opted out on the {row.side} side at {when} ({row.source})")
    for row in reviews.itertuples(index=False):
        lines.append(f"  review queue: {row.kind}: {row.detail}")
    if changes.empty and consent.empty and reviews.empty:
        lines.append("  sync:   nothing (see the run's counts)")
    lines.append(f"  now:    {now_both}")
    return lines


# ---- Airflow ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[None]:
    """Send everything written to stdout and stderr, by Python or not, to ``log_path``.

    Airflow logs each task at length to the console; the demo's story is printed between the runs.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log_path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def load_sync_dag() -> Any:
    """The project's sync DAG, parsed as the scheduler would (never DagBag(include_examples=...))."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"the DAG folder has import errors: {bag.import_errors}")
    return bag.get_dag(DAG_ID)


def run_sync(dag: Any, bookkeeping: Bookkeeping, emulator: EmulatorHandle) -> RunOutcome:
    before = emulator.admin.counters()["api_calls"]
    dag_run = dag.test()
    record = bookkeeping.get_run(dag_run.run_id) or {}
    return RunOutcome(
        run_id=dag_run.run_id,
        state=str(dag_run.state),
        tasks={ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()},
        status=record.get("status"),
        counts=record.get("counts") or {},
        api_calls=emulator.admin.counters()["api_calls"] - before,
    )


# ---- the world: picking people and editing both sides ---------------------------------------------


@dataclass(frozen=True)
class MemberTable:
    """The member table as the mapping describes it, read and edited as the membership system would."""

    engine: sa.Engine
    mapping: MemberMapping

    @cached_property
    def table(self) -> sa.TableClause:
        # Columns only: reflecting the whole table would warn about expression-based indexes.
        name, schema = self.mapping.table, self.mapping.schema
        columns = sa.inspect(self.engine).get_columns(name, schema=schema)
        return sa.table(name, *(sa.column(c["name"], c["type"]) for c in columns), schema=schema)

    def column(self, field_name: str) -> str:
        """The table column of a canonical field (``opted_out``: the opt-out flag)."""
        if field_name == "opted_out":
            return self.mapping.opt_out.column
        return self.mapping.fields[field_name].column

    def key(self, member_id: str) -> Any:
        """A member id (text, as the sync handles it) as the primary key column's type."""
        column = self.table.c[self.mapping.member_id_column]
        try:
            return column.type.python_type(member_id)
        except (NotImplementedError, TypeError, ValueError):
            return member_id

    def in_scope(self) -> pd.DataFrame:
        """member_id (text), email and opted_out of every member the sync covers."""
        t = self.table
        query = sa.select(
            t.c[self.mapping.member_id_column].label("member_id"),
            t.c[self.column("email")].label("email"),
            t.c[self.column("opted_out")].label("opted_out"),
        ).where(self.mapping.where_in_scope(t))
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        frame["member_id"] = frame["member_id"].astype(str)
        frame["opted_out"] = frame["opted_out"].isin(self.mapping.opt_out.opted_out_values)
        return frame

    def value(self, member_id: str, field_name: str) -> Any:
        t = self.table
        query = sa.select(t.c[self.column(field_name)]).where(
            t.c[self.mapping.member_id_column] == self.key(member_id)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def edit(self, member_id: str, at: datetime, **fields: Any) -> None:
        """Set canonical ``fields`` of one member, and its last-modified time to ``at``."""
        t = self.table
        values = {self.column(name): value for name, value in fields.items()}
        if self.mapping.last_modified_column:
            values[self.mapping.last_modified_column] = at.replace(tzinfo=None)
        with self.engine.begin() as conn:
            conn.execute(
                t.update().where(t.c[self.mapping.member_id_column] == self.key(member_id)).values(values)
            )


def pick_people(
    members: MemberTable, bookkeeping: Bookkeeping, emulator: EmulatorHandle, count: int
) -> list[tuple[str, str]]:
    """Linked members with an email of their own, subscribed on both sides and with nothing to
    review: (member_id, contact_id) pairs, lowest member ids first."""
    frame = members.in_scope()
    email_key = frame["email"].str.strip().str.lower()
    own_email = email_key.notna() & ~email_key.duplicated(keep=False)
    candidates = frame[own_email & ~frame["opted_out"]]
    links = bookkeeping.get_links()
    in_review = set(bookkeeping.list_open_reviews()["member_id"].dropna().astype(str))
    linked = candidates.merge(links[["member_id", "contact_id"]], on="member_id")
    linked = linked[~linked["member_id"].isin(in_review)]
    linked = linked.sort_values("member_id", key=lambda ids: pd.to_numeric(ids, errors="coerce"))
    chosen: list[tuple[str, str]] = []
    for member_id, contact_id in linked[["member_id", "contact_id"]].itertuples(index=False):
        contact = emulator.admin.get_contact(contact_id)
        if contact["email_address"].get("permission_to_send") != "unsubscribed":
            chosen.append((member_id, contact_id))
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"only {len(chosen)} linked, subscribed people to edit; the demo needs {count}")


def make_edits(
    members: MemberTable, emulator: EmulatorHandle, people: list[tuple[str, str]], now: datetime
) -> list[DemoEdit]:
    """Change both sides as people do between two syncs."""
    edited, opted_out, moved, conflicted = people

    members.edit(edited[0], now, city="Springfield")
    emulator.admin.opt_out(opted_out[1], at=now, source="Contact", reason="Too many emails")
    new_address = f"moved.{moved[0]}@example.com"
    emulator.admin.edit_contact(moved[1], {"email_address": {"address": new_address}}, at=now)
    members.edit(conflicted[0], now - CONFLICT_MEMBER_AGO, job_title="Treasurer")
    emulator.admin.edit_contact(conflicted[1], {"job_title": "Club secretary"}, at=now - CONFLICT_CC_AGO)

    return [
        DemoEdit(
            EditKind.MEMBER_EDIT, *edited, "city",
            "the member database sets city 'Springfield'",
        ),
        DemoEdit(
            EditKind.CC_OPT_OUT, *opted_out, "opted_out",
            "the subscriber clicks 'unsubscribe' in a Constant Contact email",
        ),
        DemoEdit(
            EditKind.CC_EMAIL_CHANGE, *moved, "email",
            f"the subscriber changes their address to {shown('email', new_address)} in Constant Contact",
        ),
        DemoEdit(
            EditKind.CONFLICT, *conflicted, "job_title",
            f"job_title 'Treasurer' in the member database at {(now - CONFLICT_MEMBER_AGO):%H:%M:%S}, "
            f"'Club secretary' in Constant Contact at {(now - CONFLICT_CC_AGO):%H:%M:%S}",
        ),
    ]  # fmt: skip


def both_sides(members: MemberTable, emulator: EmulatorHandle, edit: DemoEdit) -> str:
    """The edited field as each side holds it now."""
    from cc_sync.constant_contact.convert import contacts_to_frame

    contact = contacts_to_frame([emulator.admin.get_contact(edit.contact_id)], {}).iloc[0]
    member_value, cc_value = members.value(edit.member_id, edit.field), contact[edit.field]
    if edit.field == "opted_out":
        member_value = member_value in members.mapping.opt_out.opted_out_values
        cc_value = bool(cc_value)
    return (
        f"member database {members.column(edit.field)}={shown(edit.field, member_value)}, "
        f"Constant Contact {edit.field}={shown(edit.field, cc_value)}"
    )


# ---- the demo ---------------------------------------------------------------------------------------


class DemoFailed(RuntimeError):
    """A sync run of the demo failed; the Airflow log file says why."""


@dataclass
class Demo:
    """One demo world and the steps of its story; :func:`run_demo` runs them in order."""

    paths: DemoPaths
    out: TextIO
    members: MemberTable
    bookkeeping: Bookkeeping
    emulator: EmulatorHandle | None = None
    dag: Any = None

    def say(self, *parts: Any) -> None:
        print(*parts, file=self.out, flush=True)

    def quietly(self) -> contextlib.AbstractContextManager[None]:
        return output_to(self.paths.airflow_log)

    def sync(self, title: str) -> RunOutcome:
        with self.quietly():
            if self.dag is None:
                self.dag = load_sync_dag()
            outcome = run_sync(self.dag, self.bookkeeping, self.emulator)
        for line in run_lines(title, outcome):
            self.say("   " + line)
        if not outcome.succeeded:
            raise DemoFailed(f"{title} did not succeed: {outcome}; see {self.paths.airflow_log}")
        return outcome

    def say_reviews(self) -> None:
        reviews = self.bookkeeping.list_open_reviews()
        if reviews.empty:
            return
        by_kind = reviews["kind"].value_counts().sort_index()
        self.say("     review queue: " + ", ".join(f"{kind} {n}" for kind, n in by_kind.items()))
        for row in reviews.drop_duplicates("kind").itertuples(index=False):
            self.say(f"       e.g. {row.kind}: member {row.member_id}")

    def tell_person_by_person(self, edits: list[DemoEdit], run_id: str) -> None:
        changes = self.bookkeeping.get_changes(run_id)
        consent = self.bookkeeping.get_opt_outs()
        reviews = self.bookkeeping.list_open_reviews()

        def of(frame: pd.DataFrame, member_id: str) -> pd.DataFrame:
            return frame[(frame["member_id"].astype(str) == member_id) & (frame["run_id"] == run_id)]

        for edit in edits:
            lines = person_lines(
                edit,
                of(changes, edit.member_id),
                of(consent, edit.member_id),
                of(reviews, edit.member_id),
                both_sides(self.members, self.emulator, edit),
            )
            for line in lines:
                self.say("  " + line)
        edited = {e.member_id for e in edits}
        others = changes.loc[~changes["member_id"].astype(str).isin(edited), "member_id"].nunique()
        self.say(f"  {others} other member(s) changed in the second run")

    def say_consent_counters(self) -> None:
        counters = self.emulator.admin.counters()
        self.say(
            f"\nConsent kept: {counters['resubscribes']} re-subscription(s), "
            f"{counters['sign_up_form_calls']} sign_up_form call(s); "
            f"{counters['api_calls']} Constant Contact API call(s) in all"
        )

    def say_next(self, run_id: str) -> None:
        db = self.paths.members_db
        self.say(
            "\nWhere to look next:\n"
            "  make airflow   the Airflow UI on http://127.0.0.1:8080: these runs, this member database,\n"
            "                 this emulator account\n"
            f"  sqlite3 {db} \\\n"
            '    "SELECT direction, member_id, field, reason FROM ccsync_changes\n'
            f"     WHERE run_id = '{run_id}'\"\n"
            "  its other tables: ccsync_links, ccsync_consent, ccsync_reviews, ccsync_runs, ccsync_base\n"
            f"  Airflow's logs of these runs: {self.paths.airflow_log}"
        )


def run_demo(
    var_dir: Path = VAR_DIR,
    *,
    members: int = DEFAULT_MEMBERS,
    out: TextIO | None = None,
    emulator_settings: dict[str, Any] | None = None,
) -> DemoResult:
    """Build a fresh world under ``var_dir``, sync, edit both sides, sync again, tell the story.

    Needs the project's Airflow settings applied (``include.airflow_env``) before Airflow is
    imported. ``emulator_settings`` override the emulator's production limits (tests only).
    """
    from airflow.utils.db import initdb

    from cc_sync import settings
    from cc_sync.constant_contact.state import dispose_engines
    from cc_sync.member_db.bookkeeping import Bookkeeping
    from cc_sync.member_db.connection import create_member_engine
    from cc_sync.member_db.mapping import load_mapping
    from cc_sync.timeutil import utcnow
    from include import local_setup, sample_data, sync_world
    from include.cc_emulator.testing import run_emulator

    paths = DemoPaths(var_dir)
    paths.start_fresh()
    # A failed task shows at once instead of after two retries two minutes apart.
    os.environ.setdefault("CC_SYNC_TASK_RETRIES", "0")
    mapping = load_mapping(settings.mapping_path())
    engine = create_member_engine(paths.member_db_url)
    bookkeeping = Bookkeeping(engine, prefix=mapping.bookkeeping.table_prefix)
    demo = Demo(paths, out or sys.stdout, MemberTable(engine, mapping), bookkeeping)

    demo.say(
        f"1. Airflow metadata DB in {os.environ.get('AIRFLOW_HOME')}; "
        f"{members} sample members in {paths.members_db}"
    )
    with demo.quietly():
        initdb()
        # What sync_world.create_members does, without starting another interpreter.
        sample_data.main(["--members", str(members), "--db-url", paths.member_db_url, "--seed", "7"])
        sync_world.migrate_bookkeeping(paths.member_db_url)

    try:
        with run_emulator(state_file=paths.emulator_state, **(emulator_settings or {})) as emulator:
            demo.emulator = emulator
            seeded = sync_world.seed_contacts_from_members(emulator, paths.member_db_url)
            demo.say(
                f"2. Constant Contact emulator on {emulator.base_url} "
                f"({_limits(emulator.admin.settings())}), seeded with contacts: "
                f"{seeded.same_person} are members, {seeded.renamed} under another first name, "
                f"{seeded.opted_out} already unsubscribed, {seeded.cc_only} with no member"
            )
            os.environ.update(local_setup.connection_env_in(emulator.base_url, paths.var_dir))

            demo.say(f"3. First sync, with dag.test() (Airflow's logs: {paths.airflow_log})")
            first = demo.sync("first run")
            demo.say_reviews()

            people = pick_people(demo.members, bookkeeping, emulator, 4)
            edits = make_edits(demo.members, emulator, people, utcnow())
            demo.say("4. Edits on both sides:")
            for edit in edits:
                demo.say(f"   member {edit.member_id}: {edit.description}")

            demo.say("5. Second sync")
            second = demo.sync("second run")
            demo.say("\nPerson by person (from the change log, the consent ledger and the review queue):")
            demo.tell_person_by_person(edits, second.run_id)
            demo.say_consent_counters()
            emulator.admin.save_state()
    finally:
        dispose_engines()
        engine.dispose()
    demo.say_next(second.run_id)
    return DemoResult(paths=paths, seeded=seeded, first=first, second=second, edits=edits)


def _limits(settings: dict[str, Any]) -> str:
    rate = settings.get("rate_limit_per_second")
    quota = settings.get("daily_quota")
    per_second = f"{rate:g} requests/s" if rate else "no rate limit"
    per_day = f"{quota:,} a day" if quota else "no daily quota"
    return f"{per_second}, {per_day}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=DEFAULT_MEMBERS, help="sample members to create")
    parser.add_argument("--var-dir", type=Path, default=VAR_DIR, help="where the demo's world lives")
    args = parser.parse_args(argv)
    # Before Airflow is imported; `make demo` has set them already (setdefault keeps those).
    airflow_env.apply()
    from include.airflow_ui import AirflowApi, api_url

    if args.var_dir == VAR_DIR and AirflowApi(api_url()).healthy():
        # Its scheduler would run the sync on the very files the demo is about to rebuild.
        print(f"`make airflow` is running ({api_url()}) on var/: stop it (Ctrl-C) first.", file=sys.stderr)
        return 1
    try:
        run_demo(args.var_dir, members=args.members)
    except DemoFailed as failure:
        print(f"\nThe demo stopped: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
