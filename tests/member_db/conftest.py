"""Fixtures for the member database layer: a sample member table on each dialect, and the mapping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cc_sync.member_db.hook import MemberDatabaseHook
from cc_sync.member_db.mapping import MemberMapping, load_mapping
from include.sample_data import generate_members, write_members

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_MAPPING = PROJECT_ROOT / "include" / "config" / "member_mapping.yaml"
SAMPLE_SIZE = 400


@pytest.fixture
def demo_mapping() -> MemberMapping:
    return load_mapping(DEMO_MAPPING)


@pytest.fixture
def members_url(database_url: str) -> str:
    """A fresh database on each dialect holding the sample ``members`` table (SAMPLE_SIZE rows)."""
    engine = sa.create_engine(database_url)
    try:
        write_members(engine, generate_members(SAMPLE_SIZE, seed=7))
    finally:
        engine.dispose()
    return database_url


@pytest.fixture
def hook(members_url: str, demo_mapping: MemberMapping) -> Iterator[MemberDatabaseHook]:
    member_hook = MemberDatabaseHook.from_url(members_url, demo_mapping)
    yield member_hook
    member_hook.dispose()
