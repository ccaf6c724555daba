"""The hooks and the bookkeeping one sync run works with, built from connection ids."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.member_db.connection import (
    MemberDbSettings,
    check_connects,
    create_member_engine,
    parse_url,
)
from cc_sync.member_db.hook import MemberDatabaseHook
from cc_sync.member_db.mapping import MemberMapping, load_mapping
from cc_sync.member_db.preflight import PreflightReport, SchemaNotCurrent, check_member_database
from cc_sync.settings import DEFAULT_MAPPING_PATH, PROJECT_ROOT

__all__ = ["DEFAULT_MAPPING_PATH", "PROJECT_ROOT", "SchemaNotCurrent", "SyncResources"]


@dataclass
class SyncResources:
    cc_conn_id: str = ConstantContactHook.default_conn_name
    member_db_conn_id: str = MemberDatabaseHook.default_conn_name
    mapping_path: str | Path = DEFAULT_MAPPING_PATH

    @cached_property
    def mapping(self) -> MemberMapping:
        return load_mapping(self.mapping_path)

    @cached_property
    def cc(self) -> ConstantContactHook:
        return ConstantContactHook(self.cc_conn_id)

    @cached_property
    def members(self) -> MemberDatabaseHook:
        return MemberDatabaseHook(self.member_db_conn_id, self.mapping)

    @cached_property
    def bookkeeping(self) -> Bookkeeping:
        """The bookkeeping tables, on a database that answered: a wrong URL or password, or a server
        that is not there, fails the task at once with the connection to fix (every task, the
        teardown included, starts here), where retrying would only wait minutes for the same error."""
        settings = self.mapping.bookkeeping
        if settings.database_url:
            db = MemberDbSettings(
                f"{self.member_db_conn_id} (the mapping's bookkeeping.database_url)",
                parse_url(settings.database_url, f"{self.mapping.source}: bookkeeping.database_url"),
            )
            engine = create_member_engine(db.url)
        else:
            db, engine = self.members.connection_settings, self.members.get_engine()
        check_connects(engine, db)
        return Bookkeeping(engine, prefix=settings.table_prefix)

    def require_current_schema(self) -> PreflightReport:
        """The member side's preflight (the first task of every run, before any Constant Contact
        call): the database answers, the mapping's table and columns exist, the bookkeeping schema
        is current. A :class:`~cc_sync.errors.NotRetryableError` names what to fix."""
        return check_member_database(self.members.connection_settings, self.mapping)

    def close(self) -> None:
        for name in ("cc", "members"):
            hook = self.__dict__.get(name)
            if hook is not None:
                hook.close() if name == "cc" else hook.dispose()
