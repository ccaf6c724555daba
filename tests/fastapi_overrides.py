"""FastAPI's per-request rebuild of dependencies under ``dependency_overrides``, done once per
dependency in the test process instead of on every request.

``dag.test()`` runs each task against Airflow's in-process execution API
(``InProcessExecutionAPI``), which overrides the JWT and access checks through
``app.dependency_overrides``. With any override set, FastAPI's ``solve_dependencies`` (0.136, and
still in 0.165, the newest) rebuilds every sub-dependency of the endpoint from its callable's
signature (``get_dependant``) on every request, overridden or not (fastapi/fastapi#14441 and #16342,
neither merged). A task makes five or six such requests (start, XComs, rendered fields, state), and
that rebuild was ~10% of a sync run's CPU in ``dag.test()`` (1.66 s against 1.50 s per run, paired).

The rebuild is a pure function of its arguments (the path, the callable, the name, the scopes), so
the Dependant built for one set of arguments is kept and given again, as FastAPI does for routes
without overrides. Only the calls ``solve_dependencies`` makes are served from the memo: routes are
built as FastAPI builds them, an override swapped between requests is a different callable (a new
key), and every request still resolves its parameters and runs its dependencies.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from fastapi.dependencies import utils

_build = utils.get_dependant
_SOLVING = utils.solve_dependencies.__code__
# dag.test() overrides the DAG bag with a new lambda on every call: bounded, oldest dropped first.
MAX_KEPT = 512
_kept: OrderedDict[Hashable, Any] = OrderedDict()


def _key(kwargs: dict[str, Any]) -> Hashable | None:
    items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
    try:
        hash(items)
    except TypeError:
        return None
    return items


def _get_dependant(**kwargs: Any) -> Any:
    if sys._getframe(1).f_code is not _SOLVING:
        return _build(**kwargs)
    key = _key(kwargs)
    if key is None:
        return _build(**kwargs)
    dependant = _kept.get(key)
    if dependant is None:
        dependant = _kept[key] = _build(**kwargs)
        if len(_kept) > MAX_KEPT:
            _kept.popitem(last=False)
    else:
        _kept.move_to_end(key)
    return dependant


def build_overridden_dependencies_once() -> None:
    """Serve ``solve_dependencies``' rebuilds from the memo (idempotent)."""
    utils.get_dependant = _get_dependant  # type: ignore[assignment]
