"""Nightly customer journeys.

Once a day (cron ``CJM_SCHEDULE``, UTC, default 03:00) the run for the data interval
that started the day before processes that landing date (the day of the run's logical
date):

1. ``ingest``: each source's landing files into the canonical lake (one mapped task per
   source, so a source can be retried on its own);
2. ``validate_events``: the Great Expectations gate on the day's canonical events;
3. ``plan_build``: the build number, the incremental window, the dbt vars and the
   night's values (``CJM_NIGHT``, see ``cjm_pipeline.build.night_values``);
4. ``dbt``: ``dbt_producer_watcher`` runs the night's one ``dbt build`` (every data
   test included; Cosmos watcher mode), and every seed and model has its own task, which
   takes its node's result and then its tests' (``cjm_pipeline.dbt_watch``); DuckDB
   allows one writer per file, so the producer, the marts gate and publish share the
   one-slot pool ``cjm_duckdb``;
5. ``validate_marts``: the gate on the marts of the build database;
6. ``publish``: the build becomes the served database by an atomic rename, with the
   marts also written as Parquet; it updates the ``cjm_served_database`` asset, which
   downstream DAGs can be scheduled on;
7. ``report``: the customer journey map of the night, one self-contained HTML file
   (read from the served database, read-only, so outside the pool);
8. ``summary``: counts of the night, in the task log.

One night at a time: every task that writes (ingest, the plan, the dbt producer, the marts
gate, publish) holds the night lock of the warehouse while it runs, the lock `cjm run`,
`cjm build`, `cjm ingest` and `cjm rollback` take too. A task that finds it held waits
up to ``CJM_LOCK_WAIT_SECONDS`` and then fails naming the holder. The dbt producer (and
a node task that builds its node on a retry) takes it in its own process through the
operator's ``pre_execute`` hook (and gives it back in ``post_execute`` or its failure
and retry callbacks); a task process that is killed loses it with the process.
Between tasks, the plan's marker of the night in progress (removed by publish) keeps
`cjm run`, `cjm build` and `cjm rollback` out unless they are given ``--force``; a night
overridden that way fails its next writing task, and is planned again by clearing
``plan_build``.

A critical expectation fails its task and nothing downstream runs, so BI tools keep
reading the previous night, and the next night's plan waits until it is fixed and the
night re-run. Backfill a range with ``airflow backfill create`` (see the README);
``max_active_runs=1`` and the plan's wait on the previous night keep nights in order.
Trigger with ``{"full_refresh": true}`` to rebuild every model from the whole lake.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

# Cosmos reports usage to an outside host unless told not to. Off unless the
# environment says otherwise (AIRFLOW__COSMOS__ENABLE_TELEMETRY=True turns it on); the
# setup the README documents sets it for every Airflow process too, since Cosmos reads
# it once, when it is first imported.
os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, TaskGroup, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import PRODUCER_WATCHER_TASK_ID, ExecutionMode, InvocationMode, TestBehavior

from cjm_pipeline.build import manifest_path
from cjm_pipeline.dbt_watch import builds_tests, tested_nodes
from cjm_pipeline.nightly import (
    dbt_task_ends,
    dbt_task_environment,
    dbt_task_starts,
    fallback_task_starts,
)
from cjm_pipeline.settings import ALL_SOURCES, PROJECT_ROOT, get_settings

SETTINGS = get_settings()
POOL = "cjm_duckdb"  # one slot: every task that opens the build database for writing
# The paths readers use, not what they point at tonight (both are links switched by
# publish): resolving them would give the assets a new URI every night.
SERVED = Asset(
    name="cjm_served_database", uri=Path(os.path.abspath(SETTINGS.warehouse_path)).as_uri()
)
PARQUET = Asset(
    name="cjm_marts_parquet", uri=Path(os.path.abspath(SETTINGS.parquet_dir / "current")).as_uri()
)
# What the dbt tasks take from tonight's plan (plan_build's return value).
PLANNED_VARS = "{{ ti.xcom_pull(task_ids='plan_build')['vars'] }}"
PLANNED_NIGHT = "{{ ti.xcom_pull(task_ids='plan_build')['night'] }}"
PLANNED_FULL_REFRESH = "{{ ti.xcom_pull(task_ids='plan_build')['full_refresh'] }}"

# Every task touches files, the execution API or a database, so every task retries with
# backoff (a busy disk, an API timeout under load, files landing late). Data that failed
# a gate is not retried: the gates fail their task at once (fail_now), since a retry
# would fail the same way.
RETRY_IO = {"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True}

# The nightly cron (UTC); "none" for nights triggered only from outside (an upstream
# system's API call, a benchmark).
CRON = os.environ.get("CJM_SCHEDULE", "0 3 * * *")
# How often a node's task asks for dbt's result while it waits (in the triggerer).
WATCH_SECONDS = 2


def also_call(task, callback) -> None:
    """Add a failure and retry callback to a task's own."""
    for hook in ("on_failure_callback", "on_retry_callback"):
        present = getattr(task, hook) or []
        setattr(task, hook, [*(present if isinstance(present, list) else [present]), callback])


def watch_dbt(group: TaskGroup) -> None:
    """Wire the watcher tasks Cosmos made to the night.

    The producer, which runs `dbt build`, writes the build database: it takes the pool's
    one slot and the night lock (in its own process, released however it ends), and it
    has no retry (Cosmos skips a producer's retry; the node tasks then run their nodes
    themselves). The node tasks only read dbt's results, so they need neither, except
    on a retry or a clear, when a node task runs its own node with dbt: then it takes
    the lock, and a failed node is tried once more that way.
    """
    tasks, groups = [], [group]
    while groups:
        for child in groups.pop().children.values():
            (groups if isinstance(child, TaskGroup) else tasks).append(child)
    [producer] = [t for t in tasks if t.task_id.endswith(PRODUCER_WATCHER_TASK_ID)]
    builds_tests(producer)
    tested_nodes(tasks, producer.tests_per_model)
    for node in tasks:
        if node is producer:
            node.pool = POOL
            node.retries = 0
            node._pre_execute_hook = dbt_task_starts
        elif hasattr(node, "poke_interval"):
            node.poke_interval = WATCH_SECONDS
            node.retries = 1
            node.retry_delay = timedelta(seconds=30)
            node._pre_execute_hook = fallback_task_starts
        else:
            continue
        # The lock goes back however the task ends; Cosmos' own callbacks (they keep
        # the nodes' results for a re-run) stay.
        node._post_execute_hook = dbt_task_ends
        also_call(node, dbt_task_ends)


@dag(
    dag_id="cjm_nightly",
    schedule=None if CRON.lower() == "none" else CronDataIntervalTimetable(CRON, timezone="UTC"),
    start_date=pendulum.parse(os.environ.get("CJM_START_DATE", "2026-01-01"), tz="UTC"),
    catchup=os.environ.get("CJM_CATCHUP", "false").lower() == "true",
    max_active_runs=1,
    params={"full_refresh": Param(False, type="boolean", description="Rebuild every model.")},
    tags=["cjm", "journeys"],
    doc_md=__doc__,
)
def cjm_nightly() -> None:
    @task(**RETRY_IO)
    def landing_date(
        logical_date: pendulum.DateTime | None = None,
        data_interval_start: pendulum.DateTime | None = None,
    ) -> str:
        """The landing date this run processes: the day of its logical date (UTC).

        A scheduled or backfill run's logical date is the start of its data interval, so
        the run at 03:00 after a landing date processes that date; `airflow dags test
        cjm_nightly 2026-10-05` processes 2026-10-05 as well.
        """
        start = logical_date or data_interval_start
        if start is None:
            raise ValueError("the run has neither a logical date nor a data interval")
        return start.in_timezone("UTC").date().isoformat()

    @task(**RETRY_IO, map_index_template="{{ task.op_kwargs['source'] }}")
    def ingest(source: str, day: str, run_id: str | None = None) -> dict:
        from cjm_pipeline.nightly import ingest_source

        return ingest_source(source, day, run_id)

    @task(**RETRY_IO)
    def validate_events(day: str, manifests: list[dict]) -> list[str]:
        from cjm_pipeline.nightly import fail_now, gate_events

        return fail_now(gate_events, day)

    # Nights build on each other: a night's plan waits until the previous night has
    # published (its plan and everything right after it succeeded), also when a
    # backfill starts several runs at once.
    @task(**RETRY_IO, depends_on_past=True, wait_for_downstream=True)
    def plan_build(day: str, params: dict | None = None, run_id: str | None = None) -> dict:
        from cjm_pipeline.nightly import plan

        return plan(day, bool(params and params.get("full_refresh")), run_id)

    @task(**RETRY_IO, pool=POOL)
    def validate_marts(plan: dict, run_id: str | None = None) -> list[str]:
        from cjm_pipeline.nightly import fail_now, gate_marts

        return fail_now(gate_marts, plan, run_id)

    @task(**RETRY_IO, pool=POOL, outlets=[SERVED, PARQUET])
    def publish(plan: dict, run_id: str | None = None, outlet_events=None) -> str:
        from cjm_pipeline.nightly import publish_planned, served_alerts

        snapshot = publish_planned(plan, run_id)
        if outlet_events is not None:
            # What a downstream DAG or a notifier reads from the served database's
            # asset event: the snapshot and the stages whose drop-off rose (README,
            # "Alerts").
            outlet_events[SERVED].extra = {"snapshot": snapshot, "alerts": served_alerts()}
        return snapshot

    # Reads the served file read-only, so it needs no slot of the pool.
    @task(**RETRY_IO)
    def report(snapshot: str) -> str:
        from cjm_pipeline.nightly import report_served

        return report_served()

    @task(**RETRY_IO)
    def summary(snapshot: str, event_warnings: list[str], mart_warnings: list[str]) -> str:
        from cjm_pipeline.build import summary as build_summary

        lines = [f"published {snapshot}", build_summary(get_settings().warehouse_path)]
        lines += [f"warning: {w}" for w in [*event_warnings, *mart_warnings]]
        print("\n".join(lines))
        return "\n".join(lines)

    dbt = DbtTaskGroup(
        group_id="dbt",
        # Rendered from dbt's manifest, which `cjm manifest` and every build write
        # (without it Cosmos falls back to running `dbt ls` while parsing this file).
        project_config=ProjectConfig(
            dbt_project_path=PROJECT_ROOT, manifest_path=manifest_path(SETTINGS)
        ),
        profile_config=ProfileConfig(
            profile_name="cjm",
            target_name="build",
            profiles_yml_filepath=PROJECT_ROOT / "profiles.yml",
        ),
        # Watcher mode: one task (dbt_producer_watcher) runs the night's one `dbt build`
        # with every data test, as `cjm run` does, in a dbt child process; every seed and
        # model still has its own task, which waits for dbt's result for its node and
        # then its tests (cjm_pipeline.dbt_watch), and takes their state and log lines.
        # (A task per model running dbt itself started dbt about 45 times a night, each
        # start costing far more than the model.)
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            dbt_executable_path=Path(sys.executable).with_name("dbt"),
            invocation_mode=InvocationMode.SUBPROCESS,
        ),
        # The build database's tables are no assets (Cosmos takes the switch from here,
        # not from operator_args): nothing outside the night may read them before the
        # gates pass. The served database and the Parquet marts, publish's outlets, are
        # the night's assets.
        render_config=RenderConfig(test_behavior=TestBehavior.NONE, emit_datasets=False),
        operator_args={
            "vars": PLANNED_VARS,
            "full_refresh": PLANNED_FULL_REFRESH,
            # The night's values reach the models in CJM_NIGHT, the settings in --vars
            # (cjm_pipeline.build.night_values: dbt's parse then holds across nights).
            "env": {**dbt_task_environment(), "CJM_NIGHT": PLANNED_NIGHT},
            "append_env": True,
            "install_deps": False,
        },
    )
    watch_dbt(dbt)

    day = landing_date()
    manifests = ingest.partial(day=day).expand(source=list(ALL_SOURCES))
    event_warnings = validate_events(day, manifests)
    planned = plan_build(day)
    event_warnings >> planned >> dbt
    mart_warnings = validate_marts(planned)
    published = publish(planned)
    dbt >> mart_warnings >> published
    # Both follow publish and neither waits for the other: a map that fails to render
    # fails its own task (and the run) but not the night's summary.
    report(published)
    summary(published, event_warnings, mart_warnings)


cjm_nightly()
