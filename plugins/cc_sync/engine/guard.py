"""Guard rails: stop a run, before any write, that would touch too large a share of linked people."""

from __future__ import annotations

import pandas as pd

from cc_sync.engine.model import SyncPlan
from cc_sync.fields import MEMBER_ID


def _people(*columns: pd.Series) -> int:
    ids = (
        pd.concat([c for c in columns if len(c)], ignore_index=True) if any(len(c) for c in columns) else None
    )
    return 0 if ids is None else int(ids.dropna().nunique())


def check_mass_change(plan: SyncPlan, linked_count: int, max_share: float) -> list[str]:
    """What in ``plan`` exceeds ``max_share`` (0..1) of ``linked_count`` linked people; [] if nothing.

    Three measures, each in distinct people: unsubscribes (either side), unlinks, and changes
    (any field or consent write on either side). New contacts are not counted: creating is how a
    first sync starts. With no linked people yet there is nothing to protect, so nothing trips.
    """
    if not 0 <= max_share <= 1:
        raise ValueError(f"max_share must be between 0 and 1, not {max_share}")
    if linked_count <= 0:
        return []
    puts = plan.cc_puts
    unsubscribed = (
        puts.loc[puts["unsubscribe"].fillna(False).astype(bool), MEMBER_ID]
        if len(puts)
        else puts.get(MEMBER_ID, pd.Series([], dtype=object))
    )
    measures = {
        "unsubscribe": _people(unsubscribed, plan.member_opt_outs[MEMBER_ID]),
        "unlink": _people(plan.unlinks[MEMBER_ID]),
        "change": plan.changed_people(),
    }
    limit = max_share * linked_count
    return [
        f"would {action} {count} of {linked_count} linked people ({count / linked_count:.1%}), "
        f"over the {max_share:.1%} allowed"
        for action, count in measures.items()
        if count > limit
    ]


def check_list_removals(removes: int, list_size: int, max_share: float) -> str | None:
    """A list rule's objection when it would take more than ``max_share`` of a list's contacts off
    it (None when not). An empty list has nothing to protect: filling it trips nothing."""
    if not 0 <= max_share <= 1:
        raise ValueError(f"max_share must be between 0 and 1, not {max_share}")
    if list_size <= 0 or removes <= max_share * list_size:
        return None
    return (
        f"would remove {removes} of the {list_size} contacts on the list ({removes / list_size:.1%}), "
        f"over the {max_share:.1%} allowed"
    )
