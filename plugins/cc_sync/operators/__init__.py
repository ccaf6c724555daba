"""Reusable operators: extract from and load to Constant Contact and the member database."""

from __future__ import annotations

from cc_sync.operators.constant_contact import ConstantContactExtractOperator
from cc_sync.operators.member_db import MemberDatabaseExtractOperator

__all__ = ["ConstantContactExtractOperator", "MemberDatabaseExtractOperator"]
