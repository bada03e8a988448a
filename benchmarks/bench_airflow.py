"""Airflow benchmark: ``make bench-airflow``.

The same night, from the same state, through ``cjm run`` and through the DAG under a
real scheduler (the production setup of ``cjm_pipeline.airflow_production``: PostgreSQL
metadata, LocalExecutor, scheduler, DAG processor, API server and triggerer), on two
samples:

* demo: the sample of ``make demo`` (3,000 customers, 2026-08-01 to 2026-10-29), the
  night of 2026-10-29;
* 1M: the 1M-event sample of ``make bench`` (30 days from 2026-10-01), its last night.

Every night before the benchmarked one is built once with ``cjm run`` and kept under
``bench-data/``; each repeat starts from a copy of it. The DAG night is a manual run
for the night's landing date (with ``CJM_SCHEDULE=none`` the scheduler makes no run of
its own); its time is from the run's creation to its end, as the metadata records them
(a scheduled night starts there too; the trigger command's own start is left out).
Prints, per sample, the median wall time of each way over the repeats, the ratio of the
medians, and the task instances of the DAG run; the last DAG night's task timeline goes
to ``bench-data/bench-airflow-tasks.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg2

from benchmarks.bench_ingest import ensure_data
from cjm_pipeline.airflow_production import Deployment
from cjm_pipeline.generate import generate
from cjm_pipeline.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent
ROOT = PROJECT_ROOT / "bench-data"


@dataclass
class Sample:
    name: str
    first: date
    last: date
    landing: Path


@dataclass
class Result:
    cli: list[float] = field(default_factory=list)
    dag: list[float] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)


def demo_sample() -> Sample:
    out = ROOT / "airflow-demo-landing"
    if not (out / "truth" / "summary.json").exists():
        shutil.rmtree(out, ignore_errors=True)
        print(f"generating the demo sample in {out}", flush=True)
        generate(out, 3000, date(2026, 8, 1), 90, 42)
    return Sample("demo", date(2026, 8, 1), date(2026, 10, 29), out / "landing")


def million_sample() -> Sample:
    out = ensure_data(1_000_000, 30, 11)
    return Sample("1M events", date(2026, 10, 1), date(2026, 10, 30), out / "landing")


def environment(work: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "CJM_"))},
        "CJM_DATA_DIR": str(work / "data"),
        "CJM_WAREHOUSE_PATH": str(work / "warehouse" / "cjm.duckdb"),
        "CJM_BUILD_PATH": str(work / "warehouse" / "build" / "cjm.duckdb"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def cjm(env: dict[str, str], *args: str) -> float:
    began = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "cjm"), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(
            f"cjm {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return time.perf_counter() - began


def history(sample: Sample, work: Path) -> Path:
    """Every night before the benchmarked one, built once by `cjm run` and kept."""
    kept = ROOT / f"airflow-{sample.name.replace(' ', '-')}-history"
    if not (kept / "done").exists():
        print(f"{sample.name}: building the nights before {sample.last} once", flush=True)
        shutil.rmtree(work, ignore_errors=True)
        (work / "data").mkdir(parents=True)
        # A copy: landing folders are not read through links.
        shutil.copytree(sample.landing, work / "data" / "landing")
        cjm(
            environment(work),
            "run",
            "--start",
            str(sample.first),
            "--end",
            str(sample.last - timedelta(1)),
        )
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(work, kept, symlinks=True)
        (kept / "done").touch()
    return kept


def restore(kept: Path, work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(kept, work, symlinks=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(deployment: Deployment, method: str, path: str, body: dict | None = None) -> object:
    """A call to Airflow's REST API, as the admin user the API server made."""
    base = f"http://127.0.0.1:{deployment.api_port}"
    users = json.loads(
        (deployment.home / "simple_auth_manager_passwords.json.generated").read_text()
    )
    user, password = next(iter(users.items()))

    def call(url: str, verb: str, payload: dict | None, token: str | None = None) -> object:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, headers=headers, method=verb)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                text = answer.read()
        except urllib.error.HTTPError as error:
            raise SystemExit(f"{verb} {url}: {error.code} {error.read()[:2000]!r}") from None
        return json.loads(text) if text else None

    token = call(f"{base}/auth/token", "POST", {"username": user, "password": password})
    return call(f"{base}/api/v2/{path}", method, body, token["access_token"])


def _at(moment: datetime | None, began: datetime) -> str:
    return "-" if moment is None else f"{(moment - began).total_seconds():.1f}"


def dag_night(deployment: Deployment, meta, night: date, result: Result) -> None:
    """Trigger the night, wait for its end; its time and its task instances."""
    logical = datetime(night.year, night.month, night.day, tzinfo=UTC).isoformat()
    run_id = f"bench__{time.time_ns()}"
    api(
        deployment,
        "POST",
        "dags/cjm_nightly/dagRuns",
        {"dag_run_id": run_id, "logical_date": logical},
    )
    state = created = ended = None
    deadline = time.monotonic() + 3 * 3600
    while state not in ("success", "failed"):
        if time.monotonic() > deadline:
            raise SystemExit("the DAG night did not end in 3 hours")
        time.sleep(1)
        with meta.cursor() as cursor:
            cursor.execute(
                "select state, queued_at, end_date from dag_run "
                "where dag_id = 'cjm_nightly' and run_id = %s",
                (run_id,),
            )
            rows = cursor.fetchall()
        state, created, ended = rows[0] if rows else (None, None, None)
    # From the run's creation, as a scheduled night starts, not from the trigger
    # command's own start.
    began = created
    with meta.cursor() as cursor:
        cursor.execute(
            "select state, count(*) from task_instance where run_id = %s group by state", (run_id,)
        )
        states = dict(cursor.fetchall())
    with meta.cursor() as cursor:
        cursor.execute(
            "select task_id, map_index, state, queued_dttm, start_date, end_date "
            "from task_instance where run_id = %s order by start_date",
            (run_id,),
        )
        timeline = [
            f"{task}[{index}] {ti_state} queued {_at(queued, began)} "
            f"ran {_at(start, began)}..{_at(end, began)}"
            for task, index, ti_state, queued, start, end in cursor.fetchall()
        ]
    (ROOT / "bench-airflow-tasks.txt").write_text("\n".join(timeline) + "\n")
    if state != "success" or not states:
        raise SystemExit(f"the DAG night failed: {states}; logs in {deployment.home / 'logs'}")
    result.dag.append((ended - began).total_seconds())
    result.tasks.append(sum(states.values()))
    result.states = states
    # Logical dates are unique per DAG: the run goes, with its task instances, so the
    # next repeat can run the same night.
    api(deployment, "DELETE", f"dags/cjm_nightly/dagRuns/{run_id}")


def bench(sample: Sample, repeat: int) -> Result:
    scratch = ROOT / "airflow-work"
    work = scratch / "night"
    kept = history(sample, work)
    env = environment(work)
    result = Result()
    pg_root = Path(tempfile.mkdtemp(prefix="cjm-bench-pg-"))
    pg_root.chmod(0o755)
    shutil.rmtree(scratch / "airflow", ignore_errors=True)
    deployment = Deployment(scratch / "airflow", free_port(), free_port(), pg_root / "cluster")
    base = {
        **env,
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        # No scheduled run: only the benchmark's manual ones.
        "CJM_SCHEDULE": "none",
    }
    try:
        restore(kept, work)
        deployment.start(base)
        deadline = time.monotonic() + 300
        while "cjm_nightly" not in deployment.run("dags", "list", "-o", "json"):
            if time.monotonic() > deadline:
                raise SystemExit("the DAG processor never listed cjm_nightly")
            time.sleep(2)
        deployment.run("dags", "unpause", "cjm_nightly")
        # The API serves the DAG once its serialized form is stored.
        while True:
            try:
                api(deployment, "GET", "dags/cjm_nightly/details")
                break
            except SystemExit:
                if time.monotonic() > deadline:
                    raise
                time.sleep(3)
        with psycopg2.connect(deployment.server.url.replace("+psycopg2", "")) as meta:
            meta.autocommit = True
            for i in range(repeat):
                restore(kept, work)
                result.cli.append(cjm(env, "run", "--date", str(sample.last)))
                restore(kept, work)
                dag_night(deployment, meta, sample.last, result)
                print(
                    f"{sample.name} #{i + 1}: cjm run {result.cli[-1]:.1f} s, "
                    f"DAG {result.dag[-1]:.1f} s ({result.tasks[-1]} task instances)",
                    flush=True,
                )
    finally:
        deployment.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", default="demo,1m", help="demo, 1m or both")
    args = parser.parse_args()
    makers = {"demo": demo_sample, "1m": million_sample}
    rows = []
    for name in args.samples.split(","):
        sample = makers[name]()
        result = bench(sample, args.repeat)
        cli, dag = statistics.median(result.cli), statistics.median(result.dag)
        rows.append(
            f"| {sample.name}, night of {sample.last} | {cli:.1f} s | {dag:.1f} s | "
            f"{dag / cli:.2f} | {statistics.median(result.tasks):.0f} |"
        )
    table = "\n".join(
        [
            f"Medians of {args.repeat} (each way from the same state, on this machine)",
            "",
            "| night | cjm run | DAG, real scheduler | ratio | task instances |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    (ROOT / "bench-airflow.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
