"""A tiny in-memory model of both sides for engine tests, and a pure "apply the plan" helper.

``World`` holds member records, CC contacts, links and the base as plain dicts. ``World.sync``
extracts frames the way the DAG does (everything, or only what changed since the last sync),
runs the engine, and applies the plan to both sides exactly as the loader is specified to:
bulk-import rows keyed by the contact's current email, PUTs of the merged contact, member updates
with NA meaning "leave alone", opt-outs, creates, links, unlinks and the new base.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cc_sync.engine import SyncPlan, plan_hydrated, plan_sync
from cc_sync.engine.normalise import normalise_email
from cc_sync.policy import FieldPolicy, SyncDirection

FIELDS = ("email", "first_name", "last_name", "city", "phone_home")
T0 = pd.Timestamp("2026-01-01", tz="UTC")


def at(minutes: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def blank(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and pd.isna(value))
        or value is pd.NA
        or (isinstance(value, str) and not value.strip())
    )


def _email_key(value: Any) -> str | None:
    return None if blank(value) else normalise_email(pd.Series([value], dtype=object))[0]


def _clean(value: Any) -> Any:
    return None if blank(value) else value


@dataclass
class World:
    fields: tuple[str, ...] = FIELDS
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # member_id -> contact_id
    base: dict[str, dict[str, Any]] = field(default_factory=dict)  # member_id -> values + contact_id
    last_sync: pd.Timestamp = T0
    clock: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    read_unsubscribed: set[str] = field(default_factory=set)  # contacts the last plan read opted out

    # --- set-up and edits -------------------------------------------------------------------
    def now(self) -> pd.Timestamp:
        self.clock += 1
        return at(self.clock)

    def add_member(self, member_id: str, *, opted_out: bool = False, **values: Any) -> None:
        self.members[member_id] = {
            **dict.fromkeys(self.fields),
            **values,
            "updated_at": self.now(),
            "opted_out": opted_out,
            "row_version": 1,
        }

    def add_contact(
        self, contact_id: str, *, opted_out: bool = False, deleted: bool = False, **values: Any
    ) -> None:
        now = self.now()
        self.contacts[contact_id] = {
            **dict.fromkeys(self.fields),
            **values,
            "updated_at": now,
            "opted_out": opted_out,
            "opted_out_at": now if opted_out else None,
            "deleted": deleted,
        }

    def add_linked(self, member_id: str, contact_id: str, **values: Any) -> None:
        """A person already linked and in sync (as after an earlier successful run)."""
        self.add_member(member_id, **values)
        self.add_contact(contact_id, **values)
        self.links[member_id] = contact_id
        self.base[member_id] = {
            "contact_id": contact_id,
            **{f: _clean(values.get(f)) for f in self.fields},
            "opted_out": False,
        }

    def edit_member(self, member_id: str, when: pd.Timestamp | None = None, **values: Any) -> None:
        record = self.members[member_id]
        record.update(values)
        record["updated_at"] = when if when is not None else self.now()
        record["row_version"] += 1

    def edit_contact(self, contact_id: str, when: pd.Timestamp | None = None, **values: Any) -> None:
        record = self.contacts[contact_id]
        record.update(values)
        record["updated_at"] = when if when is not None else self.now()
        if values.get("opted_out"):
            record["opted_out_at"] = record["updated_at"]

    # --- extract ------------------------------------------------------------------------------
    def member_frame(self, *, changed_only: bool = False) -> pd.DataFrame:
        rows = [
            {"member_id": k, **v}
            for k, v in self.members.items()
            if not changed_only or v["updated_at"] > self.last_sync
        ]
        return _frame(rows, ["member_id", *self.fields, "updated_at", "opted_out", "row_version"])

    def contact_frame(self, *, changed_only: bool = False) -> pd.DataFrame:
        rows = [
            {"contact_id": k, **v}
            for k, v in self.contacts.items()
            if not changed_only or v["updated_at"] > self.last_sync
        ]
        return _frame(
            rows, ["contact_id", *self.fields, "updated_at", "opted_out", "opted_out_at", "deleted"]
        )

    def link_frame(self) -> pd.DataFrame:
        return _frame(
            [{"member_id": m, "contact_id": c} for m, c in self.links.items()], ["member_id", "contact_id"]
        )

    def base_frame(self) -> pd.DataFrame:
        rows = [{"member_id": m, **v} for m, v in self.base.items()]
        return _frame(rows, ["member_id", "contact_id", *self.fields, "opted_out"])

    def directory_frame(self) -> pd.DataFrame:
        columns = ["contact_id", "email", "first_name", "last_name", "opted_out", "deleted"]
        rows = [{"contact_id": k, **{c: v.get(c) for c in columns[1:]}} for k, v in self.contacts.items()]
        return _frame(rows, columns)

    def plan(
        self,
        *,
        changed_only: bool = False,
        policies: dict[str, FieldPolicy] | None = None,
        direction: SyncDirection = SyncDirection.TWO_WAY,
        candidates: bool = False,
        hydrate: bool = True,
    ) -> SyncPlan:
        contacts = self.contact_frame(changed_only=changed_only)
        member_candidates = None
        if candidates:
            keys = set(normalise_email(contacts["email"]).dropna())
            all_members = self.member_frame()
            member_candidates = all_members[normalise_email(all_members["email"]).isin(keys).to_numpy()]
        members = self.member_frame(changed_only=changed_only)
        # As sync/planning.py does: contacts linked this run but not extracted are read (GET) and
        # the run planned again, so that each new link is merged, and stored, with its base.
        plan, contacts = plan_hydrated(
            lambda contacts: plan_sync(
                members,
                contacts,
                self.link_frame(),
                self.base_frame(),
                self.directory_frame(),
                policies=policies or {f: FieldPolicy() for f in self.fields},
                direction=direction,
                member_candidates=member_candidates,
            ),
            contacts,
            self._read_contacts if hydrate else None,
        )
        self.read_unsubscribed = set(
            contacts.loc[contacts["opted_out"].fillna(False).astype(bool), "contact_id"]
        )
        return plan

    def _read_contacts(self, ids: list[str]) -> pd.DataFrame:
        """GET /contacts/{id} for each id: the world's current contacts."""
        return self.contact_frame().set_index("contact_id").loc[ids].reset_index()

    def sync(self, **kwargs: Any) -> SyncPlan:
        plan = self.plan(**kwargs)
        self.apply(plan)
        return plan

    # --- load ---------------------------------------------------------------------------------
    def apply(self, plan: SyncPlan) -> None:
        """Write the plan to both sides as the loader is specified to; then record the sync time."""
        now = self.now()
        for row in _records(plan.cc_updates):
            # The bulk import is keyed by email: it must find the contact under the email it names.
            key = _email_key(row["email"])
            matches = [
                k for k, v in self.contacts.items() if key is not None and _email_key(v["email"]) == key
            ]
            assert matches == [row["contact_id"]], f"import row keyed by an email CC does not hold: {row}"
            # An import never changes a contact's permission nor adds an unsubscribed one to a list;
            # the engine may rely on that only for contacts this run read as unsubscribed.
            if self.contacts[row["contact_id"]]["opted_out"]:
                assert row["contact_id"] in self.read_unsubscribed, (
                    "an import row for an opted-out contact not read"
                )
            self._write(self.contacts[row["contact_id"]], row, now, skip={"email"})
        for row in _records(plan.cc_puts):
            contact = self.contacts[row["contact_id"]]
            self._write(contact, row, now, skip={"email"})
            if not blank(row.get("email_change")):
                contact["email"] = row["email_change"]
            if row.get("unsubscribe"):
                contact["opted_out"] = True
                contact["opted_out_at"] = now
        for row in _records(plan.member_updates):
            member = self.members[row["member_id"]]
            if row["row_version"] is None:
                # Not extracted this run, so unchanged since the last sync: the loader checks that.
                assert member["updated_at"] <= self.last_sync, "member changed but was not extracted"
            else:
                assert row["row_version"] == member["row_version"], "optimistic check would refuse this write"
            self._write(member, row, now)
            member["row_version"] += 1
        for row in _records(plan.member_opt_outs):
            member = self.members[row["member_id"]]
            member["opted_out"] = True
            member["updated_at"] = now
        for row in _records(plan.unlinks):
            self.links.pop(row["member_id"], None)
            self.base.pop(row["member_id"], None)
        for row in _records(plan.new_links):
            self.links[row["member_id"]] = row["contact_id"]
        for row in _records(plan.new_base):
            self.base[row["member_id"]] = {
                "contact_id": row["contact_id"],
                **{f: _clean(row.get(f)) for f in self.fields},
                "opted_out": bool(row["opted_out"]),
            }
        for row in _records(plan.cc_creates):
            contact_id = f"new-{next(self._ids)}"
            values = {f: _clean(row.get(f)) for f in self.fields}
            self.contacts[contact_id] = {
                **values,
                "updated_at": now,
                "opted_out": False,
                "opted_out_at": None,
                "deleted": False,
            }
            self.links[row["member_id"]] = contact_id
            self.base[row["member_id"]] = {"contact_id": contact_id, **values, "opted_out": False}
        self.last_sync = now

    def _write(
        self, record: dict[str, Any], row: dict[str, Any], now: pd.Timestamp, skip: set[str] = frozenset()
    ) -> None:
        for name in self.fields:
            if name in skip or name not in row or blank(row[name]):
                continue
            record[name] = row[name]
        cleared = row.get("cleared_fields")
        if not blank(cleared):
            for name in str(cleared).split(","):
                record[name] = None
        record["updated_at"] = now

    # --- views --------------------------------------------------------------------------------
    def pair(self, member_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.members[member_id], self.contacts[self.links[member_id]]


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    for name in columns:
        if name in ("updated_at", "opted_out_at"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        elif name in ("opted_out", "deleted"):
            frame[name] = frame[name].fillna(False).astype(bool)
        elif name != "row_version":
            frame[name] = frame[name].astype("string[pyarrow]")
    return frame


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if blank(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]
