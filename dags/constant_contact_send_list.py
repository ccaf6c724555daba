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

from datetime import datetime

from airflow.sdk import DAG, Param

from cc_sync import job, settings
from cc_sync.member_db.mapping import ConditionOp
from cc_sync.send_list.form import SendMode, form_choices

DAG_ID = "constant_contact_send_list"
# When the mapping cannot be read the form says so where the dropdown was, and the run's first task
# fails with the same message.
SEGMENTS, FIELDS, MAPPING_PROBLEM = form_choices(settings.mapping_path())
_SEGMENT_HELP = "A named segment of the member mapping (its `segments`); combined with the filter."
# The form's dropdown shows None as "null" unless labelled (the UI looks the label up under "null").
_segment_schema = (
    {"enum": [None, *SEGMENTS], "values_display": {"null": "(none: the filter alone)"}} if SEGMENTS else {}
)
_field_schema = {"type": "string", **({"enum": FIELDS} if FIELDS else {})}


def _outcome(ti, params: dict) -> job.Outcome:
    """A dry run's counts are its plan's; a send's, what it wrote (added, updated, linked, skipped)."""
    if params["dry_run"]:
        planned = ti.xcom_pull(task_ids="plan")
        counts = dict(planned["counts"]) if planned else None
        return job.Outcome(succeeded=planned is not None, counts=counts, dry_run=True)
    sent = ti.xcom_pull(task_ids="send")
    return job.Outcome(succeeded=sent is not None, counts=dict(sent["counts"]) if sent else None)


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
    default_args=settings.default_args(),
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
            SendMode.UPDATE.value,
            type="string",
            enum=[m.value for m in SendMode],
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
    waited = job.wait_for_lease("Wait until no sync or other send is writing links.")

    @job.step(show_return_value_in_logs=False)
    def plan(params: dict, run_id: str | None = None) -> dict:
        """Read the segment and what is known of CC; decide who is sent and who is skipped, and why."""
        from cc_sync.send_list import send

        return job.leased(run_id, send.start_and_plan, run_id=run_id, dag_id=DAG_ID, choices=params)

    @job.short_circuit_step(ignore_downstream_trigger_rules=False)
    def go(params: dict) -> bool:
        """A dry run stops here: the plan's counts are the report."""
        return not params["dry_run"]

    @job.step(pool=settings.CC_POOL, show_return_value_in_logs=False)
    def send(planned: dict, run_id: str | None = None) -> dict:
        """Import the segment into the list, link the members, and (replace) take off the others."""
        from cc_sync.send_list import send

        return job.leased(run_id, send.execute_planned, planned, run_id=run_id)

    planned = plan()
    sent = send(planned)
    waited >> planned >> go() >> sent
    job.finish(_outcome, after=[waited, sent])
