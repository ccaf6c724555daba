"""Each DAG param's JSON schema checked against its meta-schema once per test process, not on every
resolve.

Airflow 3.3 resolves every param of a task through ``jsonschema.validate``, which first checks the
param's *schema* against the draft 2020-12 meta-schema (about 1 ms, ``$dynamicRef`` resolution),
and ``dag.test()`` resolves them far more often than a scheduled run does: it serialises every DAG
of the folder on each call, comparing and printing each operator's params (``ParamsDict.__eq__``
and ``__repr__`` resolve them all), then resolves them again for each task. Profiled on the sync
scenarios, those meta-schema checks were ~15% of ``dag.test()``'s time.

A schema that passed the check passes it again (the check is a pure function of the schema), so
only the first pass of each distinct schema is done; a schema that fails is checked, and fails,
every time. Each value is still validated against its schema on every resolve.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

_check_against_meta_schema = Draft202012Validator.check_schema
_passed: set[str] = set()


def _check_once(schema: Any, *args: Any, **kwargs: Any) -> None:
    key = json.dumps(schema, sort_keys=True, default=repr)
    if key in _passed:
        return
    _check_against_meta_schema(schema, *args, **kwargs)
    _passed.add(key)


def check_each_param_schema_once() -> None:
    """Memoise the meta-schema check of the validator Airflow's params use (no ``$schema``)."""
    Draft202012Validator.check_schema = staticmethod(_check_once)  # type: ignore[method-assign]
