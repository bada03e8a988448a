"""Airflow local settings for the setups cjm-pipeline documents (`make airflow` and
``cjm_pipeline.airflow_production`` put this folder on PYTHONPATH; Airflow imports the
module in each of its processes as it starts).

The scheduler starts the LocalExecutor's workers by forking, and every task process is
forked from a worker. A module the scheduler imports before that is in every task
process already, as the DAG processor does for DAG files with
``parsing_pre_import_modules``. So the scheduler imports here what every task imports
(the DAG file's Cosmos) and what the gates import (Great Expectations: about 9 s of
imports, paid by both gate tasks on the night's critical path otherwise). Polars and
DuckDB are not imported here: they start thread pools that a forked child must not
inherit; the tasks that use them import them themselves.
"""

from __future__ import annotations

import sys

if len(sys.argv) > 1 and sys.argv[1] == "scheduler":
    import logging

    # Great Expectations logs every API it registers while it is imported.
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)

    import cosmos
    import cosmos.operators.watcher  # noqa: F401
    import great_expectations  # noqa: F401
    import pendulum  # noqa: F401
