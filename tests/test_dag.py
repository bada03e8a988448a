"""The nightly Airflow DAG: its task graph (an integrity test that parses every DAG
file, as the scheduler does) and one real run with `airflow dags test` on generated
data, in a temporary AIRFLOW_HOME with a SQLite metadata database."""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cjm_pipeline.build import manifest_path, write_manifest
from cjm_pipeline.generate import generate
from cjm_pipeline.lock import read_night
from cjm_pipeline.settings import PROJECT_ROOT, Settings
from tests.conftest import MARTS, quiet

BIN = Path(sys.executable).parent
DAGS = PROJECT_ROOT / "dags"

# Parses the DAG folder in a fresh interpreter and describes what it found.
DESCRIBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
name = lambda hook: getattr(hook, "__name__", None)
dags = {}
for dag_id, dag in bag.dags.items():
    dags[dag_id] = {
        "schedule": [type(dag.timetable).__name__, str(dag.timetable.expression)],
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
        "params": sorted(dag.params.keys()),
        "tasks": {
            t.task_id: {
                "upstream": sorted(t.upstream_task_ids),
                "pool": t.pool,
                "retries": t.retries,
                "type": type(t).__name__,
                "poke_interval": getattr(t, "poke_interval", None),
                "tested": getattr(t, "tested", None),
                "flags": getattr(t, "dbt_cmd_flags", None),
                "mapped": type(t).__name__ == "DecoratedMappedOperator",
                "outlets": [getattr(o, "name", str(o)) for o in t.outlets],
                "pre_execute": name(getattr(t, "_pre_execute_hook", None)),
                "post_execute": name(getattr(t, "_post_execute_hook", None)),
                "on_failure": [name(c) for c in getattr(t, "on_failure_callback", None) or []],
                "on_retry": [name(c) for c in getattr(t, "on_retry_callback", None) or []],
            }
            for t in dag.tasks
        },
    }
heavy = [m for m in ("polars", "duckdb", "great_expectations", "pandas") if m in sys.modules]
from cosmos import telemetry
print(json.dumps({"errors": bag.import_errors, "dags": dags, "heavy": heavy,
                  "telemetry": telemetry.should_emit()}))
"""


def airflow_env(home: Path, settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "CJM_DATA_DIR": str(settings.data_dir),
        "CJM_SALT": settings.salt,
        "CJM_WAREHOUSE_PATH": str(settings.warehouse_path),
        "CJM_BUILD_PATH": str(settings.build_path),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def run(command: list[str], env: dict[str, str], timeout: int = 900) -> str:
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {done.returncode}\n{done.stdout[-6000:]}\n"
            f"{done.stderr[-6000:]}"
        )
    return done.stdout


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    """A migrated SQLite metadata database, the one-slot pool, a manifest, sample data."""
    root = tmp_path_factory.mktemp("airflow")
    settings = Settings(
        data_dir=root / "data",
        salt="test-salt",
        warehouse_path=root / "warehouse" / "cjm.duckdb",
        build_path=root / "warehouse" / "build" / "cjm.duckdb",
    )
    generate(settings.data_dir, customers=150, start=START, days=DAYS, seed=5, progress=quiet)
    write_manifest(settings, progress=quiet)
    env = airflow_env(root / "home", settings)
    run([str(BIN / "airflow"), "db", "migrate"], env)
    run([str(BIN / "airflow"), "pools", "set", "cjm_duckdb", "1", "one DuckDB writer"], env)
    return root / "home", settings


MAY_BE_EMPTY = {"agg_dropoff_alerts", "agg_dropoff_paths", "agg_voice_themes"}
START = date(2026, 10, 1)
DAYS = 6  # the first four through `cjm run`, the fifth a good night, the sixth a failing one


def describe(env: dict[str, str]) -> dict:
    out = run([sys.executable, "-c", DESCRIBE, str(DAGS)], env)
    return json.loads(out.strip().splitlines()[-1])


def roots_of(task_id: str, tasks: dict) -> set[str]:
    """The non-dbt tasks a dbt task ultimately waits for."""
    found: set[str] = set()
    for upstream in tasks[task_id]["upstream"]:
        found |= roots_of(upstream, tasks) if upstream.startswith("dbt.") else {upstream}
    return found


def test_dag_files_import_and_wire_the_night(airflow_home) -> None:
    home, settings = airflow_home
    found = describe(airflow_env(home, settings))
    assert found["errors"] == {}
    # The scheduler parses DAG files constantly: no heavy import at module level.
    assert found["heavy"] == []
    # Cosmos reports no usage unless told to (the environment here does not say).
    assert "AIRFLOW__COSMOS__ENABLE_TELEMETRY" not in airflow_env(home, settings)
    assert found["telemetry"] is False
    dag = found["dags"]["cjm_nightly"]
    assert dag["schedule"] == ["CronDataIntervalTimetable", "0 3 * * *"]
    assert dag["max_active_runs"] == 1
    assert "full_refresh" in dag["params"]
    tasks = dag["tasks"]

    assert tasks["ingest"]["mapped"]
    assert tasks["ingest"]["retries"] > 0
    assert tasks["validate_events"]["upstream"] == ["ingest", "landing_date"]
    # Every task retries what the outside world may fix (a gate's data failure fails at
    # once: test_a_gate_failure_fails_its_task_at_once), but the dbt producer (Cosmos
    # skips its retry: the node tasks then run their nodes) and the empty task after it.
    assert {t for t, v in tasks.items() if not v["retries"]} == {
        "dbt.dbt_producer_watcher",
        "dbt.dbt_producer_watcher_done",
    }
    assert "validate_events" in tasks["plan_build"]["upstream"]

    # One task per dbt model (SQL or Python) and seed. They watch the one `dbt build`
    # of the producer task, which alone writes the build database (it alone takes the
    # one-slot pool), and a node's task takes the result of the node and then of its
    # data tests (test_a_failing_test_fails_its_node shows one failing).
    manifest = json.loads(manifest_path(settings).read_text())
    tested = {
        parent
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        for parent in node["depends_on"]["nodes"]
    }
    models = {p.stem for ext in ("sql", "py") for p in (PROJECT_ROOT / "models").rglob(f"*.{ext}")}
    models -= {p.stem for p in (PROJECT_ROOT / "models" / "macros").rglob("*.sql")}
    assert "int_attribution_markov" in models
    seeds = {p.stem for p in (PROJECT_ROOT / "models" / "seeds").glob("*.csv")}
    dbt_tasks = {t: v for t, v in tasks.items() if t.startswith("dbt.")}
    producer = "dbt.dbt_producer_watcher"
    watchers = {t: v for t, v in dbt_tasks.items() if v["poke_interval"] is not None}
    assert {t for t, v in watchers.items() if v["type"] == "RunWithTests"} == {
        f"dbt.{m}_run" for m in models
    }
    assert {t for t, v in watchers.items() if v["type"] == "SeedWithTests"} == {
        f"dbt.{s}_seed" for s in seeds
    }
    assert set(dbt_tasks) == set(watchers) | {producer, f"{producer}_done"}
    for task_id, v in watchers.items():
        name = task_id.removeprefix("dbt.").rsplit("_", 1)[0]
        kind = "model" if task_id.endswith("_run") else "seed"
        assert v["tested"] == (f"{kind}.cjm.{name}" in tested), task_id
    assert 0 < sum(v["tested"] for v in watchers.values()) < len(watchers)
    # The producer builds everything `cjm run` builds, data tests included and unit
    # tests (the models' logic, checked in CI) left out.
    assert dbt_tasks[producer]["flags"] == ["--exclude-resource-type", "unit_test"]
    assert dbt_tasks[producer]["type"] == "DbtProducerWatcherOperator"
    assert dbt_tasks[producer]["upstream"] == ["plan_build"]
    assert [t for t, v in dbt_tasks.items() if v["pool"] == "cjm_duckdb"] == [producer]
    # The producer holds the night lock in its own process while dbt runs, and gives it
    # back however it ends; a watcher takes it only when it runs its node itself (on a
    # retry or a clear).
    assert dbt_tasks[producer]["pre_execute"] == "dbt_task_starts"
    assert dbt_tasks[producer]["post_execute"] == "dbt_task_ends"
    assert dbt_tasks[producer]["retries"] == 0  # Cosmos skips a producer's retry
    for task_id, v in [(producer, dbt_tasks[producer]), *watchers.items()]:
        assert "dbt_task_ends" in v["on_failure"] and "dbt_task_ends" in v["on_retry"], task_id
    for task_id, v in watchers.items():
        assert v["pre_execute"] == "fallback_task_starts", task_id
        assert v["post_execute"] == "dbt_task_ends", task_id
        assert v["poke_interval"] <= 5, task_id
    assert all(roots_of(t, tasks) == {"plan_build"} for t in dbt_tasks)
    assert set(tasks["dbt.int_events_run"]["upstream"]) >= {
        "dbt.stages_seed",
        "dbt.stg_web__events_run",
    }

    # The marts gate waits for every node and the producer; publish waits for the gate
    # and updates the served database's asset.
    waited_on = {u for v in dbt_tasks.values() for u in v["upstream"]}
    assert set(tasks["validate_marts"]["upstream"]) == (set(dbt_tasks) - waited_on) | {
        "plan_build"  # the plan it gates
    }
    assert f"{producer}_done" in tasks["validate_marts"]["upstream"]
    # The build database's tables are no assets: only publish has outlets.
    assert {t: v["outlets"] for t, v in tasks.items() if v["outlets"]} == {
        "publish": ["cjm_served_database", "cjm_marts_parquet"]
    }
    assert "validate_marts" in tasks["publish"]["upstream"]
    assert tasks["publish"]["pool"] == "cjm_duckdb"
    assert "cjm_served_database" in tasks["publish"]["outlets"]
    # The journey map is written from the served file once it is published; it reads
    # read-only, so it takes no slot of the pool.
    assert tasks["report"]["upstream"] == ["publish"]
    assert tasks["report"]["pool"] != "cjm_duckdb"
    assert "publish" in tasks["summary"]["upstream"]
    assert "report" not in tasks["summary"]["upstream"]


def test_one_night_through_airflow(airflow_home) -> None:
    """The first days through `cjm run`, the next one through `airflow dags test`: the
    served database then holds that night, built incrementally by the DAG. A rollback
    tried in the middle of the DAG's night is refused."""
    home, settings = airflow_home
    env = airflow_env(home, settings)
    last = START + timedelta(days=DAYS - 2)
    run([str(BIN / "cjm"), "run", "--start", str(START), "--end", str(last - timedelta(1))], env)
    # A run processes the landing date of its logical date.
    logical = f"{last.isoformat()}T03:00:00+00:00"
    log = home.parent / "dags_test.log"
    with log.open("w") as output:
        night = subprocess.Popen(
            [str(BIN / "airflow"), "dags", "test", "cjm_nightly", logical],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 1200
            while read_night(settings) is None and night.poll() is None:
                assert time.monotonic() < deadline, "the DAG's plan never marked its night"
                time.sleep(0.5)
            refused = subprocess.run(
                [str(BIN / "cjm"), "rollback"], env=env, capture_output=True, text=True
            )
            night.wait(timeout=1800)
        finally:
            if night.poll() is None:
                night.kill()
    assert night.returncode == 0, log.read_text()[-6000:]
    # Refused by the night lock (a task holds it) or by the night's marker (between tasks).
    assert refused.returncode == 75, refused.stdout + refused.stderr
    assert re.search(
        r"has held the night lock since|a scheduled night is in progress: DAG run cjm_nightly",
        refused.stderr,
    ), refused.stderr

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        build_id, run_date = con.execute("select build_id, run_date from cjm_publish").fetchone()
        counts = {name: con.execute(f"select count(*) from {name}").fetchone()[0] for name in MARTS}
    assert (build_id, str(run_date)) == (2, last.isoformat())
    lake = pl.read_parquet(settings.lake_dir / "events" / "*" / "*" / "*.parquet")
    assert counts["fct_journey_events"] == lake.height
    # Five days hold no settled period to compare (alerts), no journey dropped yet (the
    # gap is 30 days: no paths before a drop) and too few texts a side for themes:
    # those may be empty; every other mart has rows.
    assert all(counts[name] > 0 for name in MARTS if name not in MAY_BE_EMPTY)
    parquet = pl.read_parquet(settings.parquet_dir / "current" / "fct_journeys.parquet")
    assert parquet.height == counts["fct_journeys"]
    assert (settings.data_docs_dir / "index.html").exists()
    journey_map = settings.reports_dir / f"journey_map_{last.isoformat()}.html"
    assert journey_map.stat().st_size > 50_000
    assert f"Customer journey map · {last.isoformat()}" in journey_map.read_text()
    # The served database's asset event says which snapshot it is and its alerts (none
    # in five days), for a downstream DAG or a notifier.
    with sqlite3.connect(home / "airflow.db") as meta:
        extras = meta.execute(
            "select e.extra from asset_event e join asset a on a.id = e.asset_id "
            "where a.name = 'cjm_served_database'"
        ).fetchall()
    assert extras, "publish recorded no event of the served database"
    with sqlite3.connect(home / "airflow.db") as meta:
        assets = {name for (name,) in meta.execute("select name from asset").fetchall()}
    assert assets == {"cjm_served_database", "cjm_marts_parquet"}
    extra = json.loads(extras[-1][0])
    assert extra["alerts"] == [] and extra["snapshot"]
    # The night is over: its marker is gone and the lock is free for the command line.
    assert read_night(settings) is None
    with (settings.warehouse_dir / ".cjm.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def task_states(home: Path, logical: str) -> dict[str, str]:
    with sqlite3.connect(home / "airflow.db") as meta:
        return dict(
            meta.execute(
                "select ti.task_id, ti.state from task_instance ti join dag_run r "
                "on r.run_id = ti.run_id and r.dag_id = ti.dag_id "
                "where r.dag_id = 'cjm_nightly' and r.logical_date like ?",
                (f"{logical}%",),
            ).fetchall()
        )


def test_a_failing_test_fails_its_node(airflow_home) -> None:
    """A night whose build fails a data test: the task of the model the test is on
    fails (its model was built, its test failed), what is built on the model never
    starts, and nothing is published: the served database stays the night before.

    The fault is one a real build database can carry: a row of the sentiment model
    twice (its key is unique), under a key the night's incremental build does not
    rewrite, so the night keeps it."""
    home, settings = airflow_home
    env = airflow_env(home, settings)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        before = con.execute("select build_id, run_date from cjm_publish").fetchall()
    assert before and before[0][0] == 2, "needs the good night of test_one_night_through_airflow"
    with duckdb.connect(str(settings.build_path)) as con:
        for _ in range(2):
            con.execute(
                "insert into intermediate.int_text_sentiment "
                "select * replace ('evt_corrupt' as event_id) "
                "from intermediate.int_text_sentiment limit 1"
            )
    day = START + timedelta(days=DAYS - 1)
    done = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "cjm_nightly", f"{day.isoformat()}T03:00:00+00:00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    states = task_states(home, day.isoformat())
    assert states["dbt.dbt_producer_watcher"] == "failed", states
    assert states["dbt.int_text_sentiment_run"] == "failed", states
    assert "Tests of 'model.cjm.int_text_sentiment' finished with status 'fail'" in (
        done.stdout + done.stderr
    )
    # Built on it: never started. Beside it: built and tested.
    assert states["dbt.agg_voice_themes_run"] == "upstream_failed", states
    assert states["dbt.fct_journeys_run"] == "success", states
    assert states["validate_marts"] == "upstream_failed"
    assert states["publish"] == "upstream_failed"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("select build_id, run_date from cjm_publish").fetchall() == before


def test_a_gate_failure_fails_its_task_at_once() -> None:
    """A gate's data failure fails the task without its retries, in a short message:
    the verdict, the first five failures with what to do, the count of the rest, and
    where the full results are."""
    from airflow.sdk.exceptions import AirflowFailException

    from cjm_pipeline.nightly import GateError, fail_now

    failures = [
        f"  - events_web [web] expect_{n}: rule {n}; observed 1\n    what to do: fix {n}"
        for n in range(12)
    ]
    message = "\n".join(
        [
            "events gate for 2026-10-05: 12 critical expectations failed, so the build "
            "must not read these events:",
            *failures,
            "results r.json; Data Docs d/index.html",
            "Nothing was published.",
        ]
    )

    def gate(day: str) -> list[str]:
        raise GateError(message)

    with pytest.raises(AirflowFailException) as failed:
        fail_now(gate, "2026-10-05")
    shown = str(failed.value).splitlines()
    assert shown[0].startswith("events gate for 2026-10-05: 12 critical")
    assert shown[1:11] == "\n".join(failures[:5]).splitlines()
    assert shown[11:] == [
        "  ... and 7 more failed expectations",
        "results r.json; Data Docs d/index.html",
        "Nothing was published.",
    ]
    # Anything else is no data failure: it propagates, and the task retries.
    with pytest.raises(OSError):
        fail_now(lambda: (_ for _ in ()).throw(OSError("disk busy")))
    assert fail_now(lambda day: ["a warning"], "2026-10-05") == ["a warning"]
