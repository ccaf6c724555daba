"""What Airflow keeps of a step's arguments: their shape, never a member's data.

Airflow stores each task's rendered template fields in its metadata database
(``rendered_task_instance_fields``, the UI's "Rendered Template" tab) as the text of each value,
and keeps them after the run's XCom objects are deleted (:mod:`cc_sync.xcom_retention`). A step's
arguments are the run's frames (members, contacts, the plan): their text holds names and email
addresses (and building it costs about a second per sync run). So once rendered, those fields are
wrapped in :class:`Withheld`, whose text is their shape (``<DataFrame: 1,204 rows × 16 columns>``),
and unwrapped by ``pre_execute``, which Airflow calls after storing the rendered fields and just
before ``execute`` (and wrapped again by ``post_execute``).

Imported when the DAG files are parsed: nothing here imports pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any


def describe(value: Any) -> str:
    """The text Airflow keeps for ``value``: structure, numbers, flags and times; the size of a frame
    or a text, never its content (a text may be an email address)."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and len(shape) == 2:
        return f"<{type(value).__name__}: {shape[0]:,} rows × {shape[1]} columns>"
    if isinstance(shape, tuple) and len(shape) == 1:
        return f"<{type(value).__name__}: {shape[0]:,} values>"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, str):
        return f"<text: {len(value)} characters>"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key!r}: {describe(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe(item) for item in value) + "]"
    return f"<{type(value).__name__}>"


class Withheld:
    """A rendered value whose text is :func:`describe` of it, so Airflow stores only that."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return describe(self.value)

    __repr__ = __str__


class WithholdsFields:
    """Mixin for an operator: ``withheld_fields`` (template fields) are stored by Airflow as their
    shape, and hold their real values again when the task runs."""

    withheld_fields: Sequence[str] = ()

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]
        self._withhold()

    def pre_execute(self, context: Any) -> Any:
        for name in self.withheld_fields:
            value = getattr(self, name)
            if isinstance(value, Withheld):
                setattr(self, name, value.value)
        return super().pre_execute(context)  # type: ignore[misc]

    def post_execute(self, context: Any, result: Any = None) -> Any:
        # Withheld again: dag.test() serialises the executed task, rendered fields and all.
        self._withhold()
        return super().post_execute(context, result)  # type: ignore[misc]

    def _withhold(self) -> None:
        for name in self.withheld_fields:
            value = getattr(self, name)
            if not isinstance(value, Withheld):  # once only: pre_execute unwraps one layer
                setattr(self, name, Withheld(value))
