"""What every DAG benchmark starts with: Airflow configured in a throw-away home, its metadata DB
created, and one of the project's DAGs parsed, ready for ``dag.test()``."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_dag(dag_id: str, **env: str) -> Any:
    """The DAG ``dag_id`` of dags/, with task retries off and ``env`` set before Airflow reads it."""
    from include import airflow_env

    os.environ["CC_SYNC_TASK_RETRIES"] = "0"
    os.environ.update(env)
    airflow_env.apply(airflow_home=Path(tempfile.mkdtemp(prefix="ccsync-bench-airflow-")))
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import initdb

    initdb()
    # The task logs of a 100,000-contact run are not the measurement: keep them off the terminal.
    logging.getLogger("airflow").setLevel(logging.WARNING)
    return DagBag(dag_folder=str(PROJECT_ROOT / "dags")).get_dag(dag_id)
