"""A plan survives the trip through XCom (parquet in object storage) with its types intact."""

from __future__ import annotations

import pandas as pd
import pytest
from airflow.sdk.serde import deserialize, serialize

from cc_sync.engine import SyncPlan
from cc_sync.member_db.bookkeeping import Bookkeeping
from cc_sync.member_db.migrate import upgrade
from cc_sync.sync.xcom import plan_from_xcom, plan_to_xcom


def _plan_with_mixed_times() -> SyncPlan:
    consent = pd.DataFrame(
        {
            "member_id": ["1", "2", "3"],
            "contact_id": ["c1", "c2", "c3"],
            "source": ["cc", "member_db", "cc"],
            # Some opt-out times carry microseconds, some do not, one is unknown: as CC and members give them.
            "opted_out_at": [
                pd.Timestamp("2026-11-20T10:00:00.123456Z"),
                pd.Timestamp("2026-11-20T11:00:00Z"),
                None,
            ],
            "direction": ["to_member_db", "to_cc", "to_member_db"],
        }
    ).astype({"opted_out_at": object})
    return SyncPlan(consent=consent, pairs_compared=3)


def test_plan_round_trips_through_airflow_serde() -> None:
    plan = _plan_with_mixed_times()
    restored = plan_from_xcom(deserialize(serialize(plan_to_xcom(plan))))
    assert restored.pairs_compared == 3
    assert str(restored.consent["opted_out_at"].dtype) == "datetime64[us, UTC]"
    assert restored.consent["opted_out_at"].iloc[0] == pd.Timestamp("2026-11-20T10:00:00.123456Z")
    assert pd.isna(restored.consent["opted_out_at"].iloc[2])


@pytest.mark.parametrize("as_text", [False, True], ids=["timestamps", "iso-text"])
def test_consent_ledger_takes_mixed_precision_times(sqlite_url: str, as_text: bool) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(sqlite_url)
    upgrade(engine)
    frame = _plan_with_mixed_times().consent.rename(columns={"source": "side"})
    if as_text:
        frame["opted_out_at"] = frame["opted_out_at"].map(lambda v: None if v is None else str(v))
    assert Bookkeeping(engine).record_opt_outs(frame.assign(source="test", run_id="r1")) == 3
    assert len(Bookkeeping(engine).get_opt_outs()) == 3
