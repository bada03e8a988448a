"""Pipeline benchmark: ``make bench``.

For each target size (about 1M and 10M events, generated once and cached under
``bench-data/``), in the same run and on the same data:

* ingest: ``cjm ingest`` of every landing date into an empty lake;
* full build: ``cjm build --full-refresh`` as of the last landing date;
* incremental night: starting from a build as of the day before, ``cjm build`` of
  the last date (the nightly case);
* the floor: one hand-written DuckDB query that sessionizes the same events (read
  from ``int_events`` and the identity map in a copy of the build database), set
  against the time dbt reports for the sessionization model, ``int_events_sessionized``;
* pandas: ``benchmarks/pandas_pipeline.py``, the same sessions, journeys and funnel
  in vectorised pandas, from the lake and the identity map. Like the dbt build, its
  time includes process start-up.

Each step runs in a child process, is repeated, and is reported as the median wall
time, with the peak RSS of the child's process tree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from benchmarks.bench_ingest import START, ensure_data, run_ingest, run_tree

FLOOR_SQL = """
create or replace table floor_sessions as
with events as (
    select identities.customer_id, events.event_id, events.occurred_at
    from intermediate.int_events as events
    inner join intermediate.int_identity__customers as identities
        on events.identity_node = identities.node
    where events.is_activity
),
gaps as (
    select *, occurred_at - lag(occurred_at) over (
        partition by customer_id order by occurred_at, event_id) as gap
    from events
),
blocks as (
    select *, sum(case when gap is null or gap > interval 30 minutes then 1 else 0 end) over (
        partition by customer_id order by occurred_at, event_id) as block
    from gaps
),
pieces as (
    select *, floor(epoch(occurred_at - min(occurred_at) over (
        partition by customer_id, block)) / 43200) as piece
    from blocks
)
select customer_id, event_id, occurred_at,
    dense_rank() over (partition by customer_id order by block, piece) as session_number
from pieces
"""


@dataclass
class Step:
    seconds: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)

    def add(self, seconds: float, peak: int) -> None:
        self.seconds.append(seconds)
        self.peaks.append(peak)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def peak_gib(self) -> float:
        return max(self.peaks) / 2**30


def _env(root: Path, build: Path) -> dict[str, str]:
    return {**os.environ, "CJM_DATA_DIR": str(root), "CJM_BUILD_PATH": str(build)}


def _cjm(*args: str) -> list[str]:
    return [sys.executable, "-m", "cjm_pipeline.cli", *args]


def _model_seconds(build: Path, model: str) -> float:
    results = json.loads((build.parent / "dbt" / "target" / "run_results.json").read_text())
    return next(r["execution_time"] for r in results["results"] if r["unique_id"] == model)


def floor_query(database: str, result: str) -> None:
    """Child process: time the floor query on a copy of the build database."""
    import duckdb

    with duckdb.connect(database, config={"memory_limit": "3GB", "threads": 2}) as con:
        began = time.perf_counter()
        con.execute(FLOOR_SQL)
        Path(result).write_text(str(time.perf_counter() - began))


def pandas_run(database: str, lake: str, run_date: str, result: str) -> None:
    """Child process: the pandas pipeline, fed the identity map of the build (its
    customers and the identifiers that do not merge)."""
    import duckdb

    from benchmarks import pandas_pipeline

    with duckdb.connect(database, read_only=True) as con:
        identities = con.sql(
            "select node, customer_id from intermediate.int_identity__customers"
        ).df()
        listed = [
            row[0]
            for row in con.sql("select node from intermediate.int_identity__overloaded").fetchall()
        ]
    began = time.perf_counter()
    funnel = pandas_pipeline.run(
        Path(lake), identities, date.fromisoformat(run_date), not_merging=listed
    )
    elapsed = time.perf_counter() - began
    Path(result).write_text(
        json.dumps({"seconds": elapsed, "entered": int(funnel["entered"].sum())})
    )


def bench_size(size: int, days: int, seed: int, repeat: int) -> dict[str, object]:
    root = ensure_data(size, days, seed)
    last = START + timedelta(days=days - 1)
    build = root / "build" / "cjm.duckdb"
    env = _env(root, build)
    steps = {name: Step() for name in ["ingest", "full", "night", "floor", "pandas"]}
    model_times: list[float] = []
    pandas_entered = 0
    for _ in range(repeat):
        steps["ingest"].add(*run_ingest(root, days))

        shutil.rmtree(build.parent, ignore_errors=True)
        cmd = _cjm("build", "--date", last.isoformat(), "--full-refresh")
        steps["full"].add(*run_tree(cmd, env))
        model_times.append(_model_seconds(build, "model.cjm.int_events_sessionized"))

        copy = root / "build" / "floor.duckdb"
        shutil.copy(build, copy)
        result = root / "build" / "floor.txt"
        cmd = [sys.executable, "-m", "benchmarks.bench_pipeline", "--floor", str(copy), str(result)]
        seconds, peak = run_tree(cmd, env)
        steps["floor"].add(float(result.read_text()), peak)
        copy.unlink()

        result = root / "build" / "pandas.json"
        cmd = [
            sys.executable, "-m", "benchmarks.bench_pipeline", "--pandas",
            str(build), str(root / "lake"), last.isoformat(), str(result),
        ]  # fmt: skip
        seconds, peak = run_tree(cmd, env)
        outcome = json.loads(result.read_text())
        steps["pandas"].add(seconds, peak)
        pandas_entered = outcome["entered"]

    # The nightly case: a build as of the day before, then one incremental night.
    shutil.rmtree(build.parent, ignore_errors=True)
    run_tree(_cjm("build", "--date", (last - timedelta(days=1)).isoformat()), env)
    before = root / "build" / "before-night.duckdb"
    shutil.copy(build, before)
    for _ in range(repeat):
        shutil.copy(before, build)
        steps["night"].add(*run_tree(_cjm("build", "--date", last.isoformat()), env))

    import duckdb

    with duckdb.connect(str(build), read_only=True) as con:
        events = con.execute("select count(*) from fct_journey_events").fetchone()[0]
        entered = con.execute("select sum(journeys_entered) from agg_stage_funnel").fetchone()[0]
    return {
        "size": size,
        "events": events,
        "steps": steps,
        "model": statistics.median(model_times),
        "funnel_agrees": int(entered) == pandas_entered,
    }


def report(row: dict[str, object], repeat: int) -> str:
    steps: dict[str, Step] = row["steps"]  # type: ignore[assignment]
    ingest, full, night = steps["ingest"], steps["full"], steps["night"]
    floor, pandas = steps["floor"], steps["pandas"]
    lines = [
        f"~{row['size']:,} target: {row['events']:,} events in the marts "
        f"(medians of {repeat}; peak RSS of each step's process tree)",
        f"  {'step':<34}{'median s':>10}{'peak RSS':>12}",
    ]
    for name, step in [
        ("ingest", ingest),
        ("dbt full build", full),
        ("incremental night", night),
        ("floor: one DuckDB sessionize query", floor),
        ("pandas pipeline", pandas),
    ]:
        lines.append(f"  {name:<34}{step.median:>10.2f}{step.peak_gib:>8.2f} GiB")
    model = float(row["model"])  # type: ignore[arg-type]
    lines += [
        f"  sessionization model {model:.2f} s = {model / floor.median:.2f}x the floor query",
        f"  ingest + full build {ingest.median + full.median:.1f} s",
        f"  incremental night = {night.median / full.median:.0%} of a full build",
        f"  dbt full build {pandas.median / full.median:.2f}x faster than pandas "
        f"(pandas funnel {'equals' if row['funnel_agrees'] else 'DIFFERS FROM'} the marts)",
    ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--floor":
        floor_query(*sys.argv[2:4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--pandas":
        pandas_run(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    reports = []
    for size in (int(s) for s in args.sizes.split(",")):
        reports.append(report(bench_size(size, args.days, args.seed, args.repeat), args.repeat))
        print(reports[-1], flush=True)
    print()
    print("\n\n".join(reports))


if __name__ == "__main__":
    main()
