"""A :class:`SyncPlan` as a plain dict of DataFrames, and back.

Airflow's serde stores DataFrames as parquet, and the object-storage XCom backend puts them in
files; a dataclass of our own would need allow-listing in every deployment, a dict does not.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

import pandas as pd

from cc_sync.engine.model import SyncPlan

_SCALARS = "scalars"


def plan_to_xcom(plan: SyncPlan) -> dict[str, Any]:
    frames: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for f in fields(plan):
        value = getattr(plan, f.name)
        if isinstance(value, pd.DataFrame):
            frames[f.name] = _arrow_safe(value)
        else:
            scalars[f.name] = value
    frames[_SCALARS] = scalars
    return frames


def plan_from_xcom(value: dict[str, Any]) -> SyncPlan:
    from cc_sync.xcom_retention import require_stored

    require_stored(value, "The sync plan")
    kwargs: dict[str, Any] = dict(value.get(_SCALARS) or {})
    names = {f.name for f in fields(SyncPlan)}
    for name, frame in value.items():
        if name in names and isinstance(frame, pd.DataFrame):
            kwargs[name] = frame
    return SyncPlan(**kwargs)


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns typed for parquet: times stay times (UTC), anything else becomes text."""
    frame = frame.reset_index(drop=True)
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        present = frame[column].dropna()
        if len(present) and all(isinstance(v, datetime) for v in present):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        else:
            frame[column] = frame[column].astype("string[pyarrow]")
    return frame
