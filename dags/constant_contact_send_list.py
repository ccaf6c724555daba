"""
### Send a member segment to a Constant Contact list

Realm's "send a list", run by hand from the trigger form:

- **who**: a named segment of the member mapping, a filter on mapped fields (`[{"field": "city",
  "op": "eq", "value": "Boston"}]`; never SQL), or both;
- **where**: an existing list (its name or id) or a new name;
- **how**: `create_new` (fails if a list has that name), `update` (add and update only) or `replace`
  (then take off the list whoever is no longer in the segment: removed from the list, never
  unsubscribed).

People are matched on email alone. Each member sent is linked to the contact holding their email
(the scheduled sync takes them from then on), and CC's names and mapped fields are made those of
the member database by bulk imports (40,000 people or 4 MB a request). Nobody who opted out is ever
sent or re-subscribed: members opted out in the database and contacts unsubscribed in CC are
reported, with the members whose email is missing or invalid. A **dry run** plans and reports,
writing nothing. A send and the two-way sync never run at once: both hold the sync's lease, renewed
by every task while it works (a killed run's lease expires 10 minutes after its last renewal). The
summary (added, updated, linked, skipped with reasons) is in the `finish` task's log and the sync's
runs table.

Connections `constant_contact_default` and `member_db_default`; mapping
`include/config/member_mapping.yaml` (its `segments`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task, teardown

from cc_sync import send_list
from cc_sync.member_db.mapping import ConditionOp, MappingError, load_mapping
from cc_sync.sync import lease
from cc_sync.sync.resources import DEFAULT_MAPPING_PATH, SyncResources

DAG_ID = "constant_contact_send_list"
CC_CONN_ID = "constant_contact_default"
MEMBER_DB_CONN_ID = "member_db_default"
MAPPING_PATH = os.environ.get("CC_SYNC_MAPPING", str(DEFAULT_MAPPING_PATH))


def _form_choices() -> tuple[list[str] | None, list[str] | None, str | None]:
    """The mapping's segment and field names for the form's dropdowns (a local file read, no
    database), or why the mapping cannot be read: the form then says so where the dropdown was,
    and the run's first task fails with the same message."""
    try:
        mapping = load_mapping(MAPPING_PATH)
    except (OSError, MappingError) as exc:
        return None, None, f"The member mapping cannot be read, so no segment can be offered: {exc}"
    return sorted(mapping.segments), send_list.filterable_fields(mapping), None


SEGMENTS, FIELDS, MAPPING_PROBLEM = _form_choices()
_SEGMENT_HELP = "A named segment of the member mapping (its `segments`); combined with the filter."
# The form's dropdown shows None as "null" unless labelled (the UI looks the label up under "null").
_segment_schema = (
    {"enum": [None, *SEGMENTS], "values_display": {"null": "(none: the filter alone)"}} if SEGMENTS else {}
)
_field_schema = {"type": "string", **({"enum": FIELDS} if FIELDS else {})}


def _resources() -> SyncResources:
    return SyncResources(CC_CONN_ID, MEMBER_DB_CONN_ID, MAPPING_PATH)


with DAG(
    dag_id=DAG_ID,
    description=(
        f"NOT USABLE: {MAPPING_PROBLEM}"
        if MAPPING_PROBLEM
        else "Send a member segment to a Constant Contact list (create new, replace or update)"
    ),
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": int(os.environ.get("CC_SYNC_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=2),
    },
    tags=["constant_contact", "member_db", "send_list"],
    params={
        "segment": Param(
            None,
            type=["null", "string"],
            title="Segment",
            description=f"⚠ {MAPPING_PROBLEM} Fix the file; the form follows once Airflow re-reads this DAG."
            if MAPPING_PROBLEM
            else _SEGMENT_HELP,
            **_segment_schema,
        ),
        "filter": Param(
            [],
            type="array",
            title="Filter",
            description=(
                'Conditions on mapped fields, all must hold: [{"field": "city", "op": "eq", "value": '
                '"Boston"}]. Ops: ' + ", ".join(op.value for op in ConditionOp) + ". Never SQL."
            ),
            items={
                "type": "object",
                "properties": {
                    "field": _field_schema,
                    "op": {"type": "string", "enum": [op.value for op in ConditionOp]},
                    "value": {},
                },
                "required": ["field", "op"],
                "additionalProperties": False,
            },
        ),
        "list": Param(
            "",
            type="string",
            title="List",
            description="An existing Constant Contact list (its exact name or its id), or a new list's name.",
        ),
        "mode": Param(
            send_list.SendMode.UPDATE.value,
            type="string",
            enum=[m.value for m in send_list.SendMode],
            title="Mode",
            description=(
                "create_new: a new list (fails if the name is taken); update: add and update only; "
                "replace: also take off the list whoever is no longer in the segment (never unsubscribed)."
            ),
        ),
        "dry_run": Param(
            False, type="boolean", title="Dry run", description="Plan and report; write nothing."
        ),
    },
) as dag:

    @task.sensor(
        poke_interval=lease.POKE_INTERVAL.total_seconds(),
        timeout=lease.WAIT_TIMEOUT.total_seconds(),
        mode="reschedule",
    )
    def wait_for_lease(run_id: str | None = None) -> bool:
        """Wait until no sync or other send is writing links, then hold the sync's lease."""
        return lease.take(_resources(), run_id)

    @task(show_return_value_in_logs=False)
    def plan(params: dict, run_id: str | None = None) -> dict:
        """Read the segment and what is known of CC; decide who is sent and who is skipped, and why."""
        resources = _resources()
        with lease.kept(resources.bookkeeping, run_id):
            send_list.start(resources, run_id=run_id, dag_id=DAG_ID)
            return send_list.plan_send(
                resources,
                segment=params["segment"],
                filter=params["filter"],
                list_ref=params["list"],
                mode=params["mode"],
            ).as_xcom()

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def go(params: dict) -> bool:
        """A dry run stops here: the plan's counts are the report."""
        return not params["dry_run"]

    @task(pool="constant_contact_api", show_return_value_in_logs=False)
    def send(planned: dict, run_id: str | None = None) -> dict:
        """Import the segment into the list, link the members, and (replace) take off the others."""
        resources = _resources()
        with lease.kept(resources.bookkeeping, run_id):
            return send_list.execute_send(
                resources, send_list.SendPlan.from_xcom(planned), run_id=run_id
            ).as_xcom()

    @teardown
    def finish(params: dict, ti=None, run_id: str | None = None) -> dict:
        """Close the run record with the summary: added, updated, linked, skipped (with reasons)."""
        planned = ti.xcom_pull(task_ids="plan")
        sent = ti.xcom_pull(task_ids="send")
        if params["dry_run"]:
            counts = planned["counts"] | {"api_calls": planned["api_calls"]} if planned else None
            succeeded = planned is not None
        else:
            counts, succeeded = (sent["counts"] if sent else None), sent is not None
        return send_list.finish(
            _resources(), run_id=run_id, succeeded=succeeded, dry_run=params["dry_run"], counts=counts
        )

    waited = wait_for_lease()
    planned = plan()
    sent = send(planned)
    done = finish()
    waited >> planned >> go() >> sent >> done
    waited >> done
