"""What Airflow keeps of a step's arguments (cc_sync.withheld): the shape of the run's frames, never
their rows. The end-to-end check (a real run's stored rendered fields) is in test_xcom_retention."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from cc_sync.withheld import Withheld, WithholdsFields, describe

FRAME = pd.DataFrame({"email": ["anne@example.org", "bob@example.org"], "first_name": ["Anne", "Bob"]})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (FRAME, "<DataFrame: 2 rows × 2 columns>"),
        (FRAME["email"], "<Series: 2 values>"),
        ("anne@example.org", "<text: 16 characters>"),
        (
            {"full": True, "rows": 1_204, "share": 0.5, "since": None},
            "{'full': True, 'rows': 1204, 'share': 0.5, 'since': None}",
        ),
        (datetime(2026, 12, 3, 9, tzinfo=UTC), "2026-12-03T09:00:00+00:00"),
        (
            [FRAME, {"members": FRAME}],
            "[<DataFrame: 2 rows × 2 columns>, {'members': <DataFrame: 2 rows × 2 columns>}]",
        ),
        (object(), "<object>"),
    ],
)
def test_describe_shows_shape_and_flags_never_content(value: Any, text: str) -> None:
    assert describe(value) == text
    assert str(Withheld(value)) == repr(Withheld(value)) == text


def test_every_step_and_load_of_the_dags_withholds_the_runs_data(dag_bag: Any) -> None:
    from airflow.providers.standard.operators.python import PythonOperator

    from cc_sync.operators.leased import LeasedOperator

    checked = 0
    for dag_id in dag_bag.dag_ids:
        for task in dag_bag.get_dag(dag_id).tasks:
            if isinstance(task, PythonOperator):  # every @task step, frames or not
                assert isinstance(task, WithholdsFields), (dag_id, task.task_id)
                assert {"op_args", "op_kwargs"} <= set(task.withheld_fields), (dag_id, task.task_id)
                checked += 1
            if isinstance(task, LeasedOperator) and "plan" in task.template_fields:
                assert "plan" in task.withheld_fields, (dag_id, task.task_id)
                checked += 1
    assert checked >= 10


def test_fields_are_withheld_once_and_whole_again_for_the_run() -> None:
    from cc_sync.operators.member_db import MemberDatabaseLoadOperator

    load = MemberDatabaseLoadOperator(task_id="load", plan={"member_updates": FRAME})
    context: dict[str, Any] = {"run_id": "manual__withheld"}
    load.render_template_fields(context)
    load.render_template_fields(context)  # rendered again: still one layer
    assert str(load.plan) == "{'member_updates': <DataFrame: 2 rows × 2 columns>}"
    load.pre_execute(context)
    assert load.plan["member_updates"] is FRAME
    load.post_execute(context)
    assert isinstance(load.plan, Withheld)
    assert load.plan.value["member_updates"] is FRAME
