"""The run summary every job ends with: a readable table of counts per direction, reviews, API
calls and the day's budget left, for the finish task's log and the DAG run's note.

Pure text from the finish task's report (the run record's counts): no Airflow, no database. The
finish task pushes it as the XCom :data:`XCOM_KEY`; the listener :mod:`cc_sync.run_note` puts
:func:`as_note` of it into the run's note when the run ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Sections of the table, in order: a count lands in the first whose test its name passes.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("to Constant Contact", ("cc_",)),
    ("to the member database", ("member_", "members_")),
    ("reviews", ("review",)),
    ("skipped", ("skipped", "refused", "invalid", "opted_out")),
)
HEADLINE = ("status", "api_calls", "api_calls_today", "api_budget")
# The XCom the finish task pushes the summary as, for the run's note, and that task's id.
XCOM_KEY = "run_summary"
FINISH_TASK_ID = "finish"
# Airflow keeps a DAG run's note in dag_run_note.content, a VARCHAR(1000): longer fails on PostgreSQL.
NOTE_LIMIT = 1000
# The first line of the summary's part of a note: what a rerun's summary replaces.
NOTE_HEADER = "Run summary"
_FENCE = "```"


def _section(name: str) -> str:
    for title, markers in SECTIONS:
        if any(name.startswith(m) or (m in name and not m.endswith("_")) for m in markers):
            return title
    return "other"


def render(
    *, dag_id: str | None, run_id: str, report: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> str:
    """The summary as lines of text: a header, then one ``name  count`` row per non-zero count
    under its section, then the API calls and what is left of the day's budget."""
    counts = {k: v for k, v in {**report, **(extra or {})}.items() if k not in HEADLINE}
    lines = [f"{dag_id or 'run'} {run_id}: {report.get('status', '?')}"]
    width = max((len(k) for k in counts), default=10)
    grouped: dict[str, list[str]] = {}
    for name in sorted(counts):
        value = counts[name]
        if not value:
            continue
        grouped.setdefault(_section(name), []).append(f"    {name:<{width}}  {value:>8}")
    for title in [t for t, _ in SECTIONS] + ["other"]:
        if title in grouped:
            lines.append(f"  {title}")
            lines.extend(grouped[title])
    if len(lines) == 1:
        lines.append("  nothing to do: every count is zero")
    lines.append(f"  API calls this run: {int(report.get('api_calls') or 0)}")
    budget = int(report.get("api_budget") or 0)
    if budget:
        used = int(report.get("api_calls_today") or 0)
        lines.append(f"  API budget today: {used} of {budget} used, {max(budget - used, 0)} left")
    elif "api_calls_today" in report:
        lines.append(f"  API calls today: {int(report.get('api_calls_today') or 0)} (no daily budget set)")
    return "\n".join(lines)


def as_note(text: str, *, limit: int = NOTE_LIMIT) -> str:
    """The summary as a DAG run's note: the UI renders notes as Markdown, so the table goes in a
    fenced block (kept in columns); cut at a whole line to fit Airflow's note column, saying so."""
    head, cut = f"{NOTE_HEADER}\n{_FENCE}\n", "… (more rows in the finish task's log)"
    tail = f"\n{_FENCE}"
    lines = text.splitlines()
    kept: list[str] = []
    for index, line in enumerate(lines):
        room = limit - len(head) - len(tail) - (0 if index == len(lines) - 1 else len(cut) + 1)
        if len("\n".join([*kept, line])) > room:
            kept.append(cut)
            break
        kept.append(line)
    return head + "\n".join(kept)[: limit - len(head) - len(tail)] + tail
