"""The hooks and the bookkeeping one sync run works with, built from connection ids."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cc_sync.constant_contact.hook import ConstantContactHook
from cc_sync.errors import NotRetryableError
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.member_db.hook import MemberDatabaseHook, create_member_engine
from cc_sync.member_db.mapping import MemberMapping, load_mapping
from cc_sync.settings import DEFAULT_MAPPING_PATH, PROJECT_ROOT

__all__ = ["DEFAULT_MAPPING_PATH", "PROJECT_ROOT", "SchemaNotCurrent", "SyncResources"]


class SchemaNotCurrent(NotRetryableError, RuntimeError):
    """The bookkeeping tables are missing or behind the code: run `make migrate`."""


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
        settings = self.mapping.bookkeeping
        engine = (
            create_member_engine(settings.database_url)
            if settings.database_url
            else self.members.get_engine()
        )
        return Bookkeeping(engine, prefix=settings.table_prefix)

    def require_current_schema(self) -> None:
        if not self.bookkeeping.schema_is_current():
            raise SchemaNotCurrent(
                "the sync's bookkeeping tables are missing or out of date in the member database: "
                "run `make migrate` (python -m cc_sync.member_db.migrate upgrade)"
            )

    def close(self) -> None:
        for name in ("cc", "members"):
            hook = self.__dict__.get(name)
            if hook is not None:
                hook.close() if name == "cc" else hook.dispose()
