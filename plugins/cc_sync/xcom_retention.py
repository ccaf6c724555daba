"""Personal data at rest: a finished run's XCom objects deleted once its record is closed.

The sync's and the send-list's XComs carry member and contact rows with full email addresses (the
extracts, the plan, the load results), written by the common-io object-storage backend under
``<xcom_objectstorage_path>/<dag_id>/<run_id>/<task_id>/<uuid>.json`` (``.json.gz`` and so on when
a deployment compresses them). Once a run has finished and :func:`cc_sync.job.close` has written
what the console and the undo need into the bookkeeping (the run record, change log, base history,
links), nothing reads them again: the undo plans from the
change log and the members and contacts as they are now, never from an old run's XCom. So
``finish`` deletes them.

Only a run that succeeded (or a dry run) is cleaned: a failed run keeps its XComs so that clearing
its failed task resumes from them; its re-run's finish deletes them. ``CC_SYNC_XCOM_RETENTION=keep``
keeps every run's XComs (debugging; then encrypt the store, README "Run on several workers").

The XCom rows in Airflow's metadata DB stay (they hold small values and the deleted files' paths):
the XCom tab shows such an entry's path instead of its value, and clearing one task of a finished
run (a load, say) fails at once with :func:`require_stored`'s message: clear the whole run instead
(the extracts run again; a run is idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from cc_sync import settings
from cc_sync.settings import XComRetention

log = logging.getLogger(__name__)

OBJECT_STORAGE_BACKEND = "airflow.providers.common.io.xcom.backend.XComObjectStorageBackend"


def delete_run_xcom(dag_id: str, run_id: str, *, keep_task_ids: Collection[str] = ()) -> int:
    """Delete the object-storage XCom files of one DAG run, but those of ``keep_task_ids``;
    returns how many were deleted.

    Does nothing (0) when the deployment keeps them (``CC_SYNC_XCOM_RETENTION=keep``) or XComs are
    not in object storage (then they are rows of the metadata DB, which Airflow's ``db clean``
    ages out).
    """
    from airflow.configuration import conf

    if settings.xcom_retention() is XComRetention.KEEP:
        log.info("XCom retention is 'keep': this run's XCom objects stay in object storage")
        return 0
    if conf.get("core", "xcom_backend", fallback="") != OBJECT_STORAGE_BACKEND:
        return 0
    base = conf.get("common.io", "xcom_objectstorage_path", fallback="")
    if not base:
        return 0
    from airflow.sdk import ObjectStoragePath

    # The backend's own layout (XComObjectStorageBackend.serialize_value): base/dag_id/run_id/task_id/...
    run_dir = ObjectStoragePath(base).joinpath(dag_id, run_id)
    if not run_dir.exists():
        return 0
    deleted = 0
    for task_dir in run_dir.fs.ls(run_dir.path, detail=False):
        if task_dir.rstrip("/").rsplit("/", 1)[-1] in keep_task_ids:
            continue
        deleted += len([name for name in run_dir.fs.find(task_dir) if not name.endswith("/")])
        run_dir.fs.rm(task_dir, recursive=True)
    log.info("Deleted this run's %d XCom objects (member and contact rows) from object storage", deleted)
    return deleted


def require_stored(value: Any, what: str) -> Any:
    """``value`` as a task pulled it, or a clear error when its file was deleted: the backend then
    answers with the file's path (a string) where a dict of frames was stored."""
    if isinstance(value, str):
        from cc_sync.errors import NotRetryableError

        raise NotRetryableError(
            f"{what} is gone: this run finished and its XCom objects were deleted, as they hold email "
            "addresses (CC_SYNC_XCOM_RETENTION=delete). Clear the whole run, every task, to run it "
            "again; CC_SYNC_XCOM_RETENTION=keep keeps them."
        )
    return value
