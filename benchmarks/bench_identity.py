"""Identity benchmark: ``make bench-identity``.

For each size (identifiers: 10M and 100M by default), a synthetic identity graph is
written once into a DuckDB file under ``bench-data/`` as the two tables the identity
model reads (``int_identity__edges``, ``int_identity__overloaded``), shaped as the
pipeline's own graphs are: every identifier has an edge to itself (an identifier
seen alone), 40% of them are devices that never sign in, the rest belong to people
who each have a user id, an email and a device (edges device-user and user-email),
one device in a hundred is also used by another person (a chain of two people), one
person in twenty is part of a run of 50 who each share a device with the next (a chain
of 150 identifiers: label propagation pays a round per link), and one identifier in a
thousand is listed as not merging (over the cap).

Then ``int_identity__customers`` is built on it by dbt (``dbt run --select``: the
model alone, as a night's build runs it), repeated, and reported as the median of the
model's time in dbt, the command's wall time and the peak RSS of dbt's process tree.
Sizes up to ``--baseline-max`` also run the model's former SQL (label propagation in a
recursive CTE, below) in DuckDB with the settings the profile gives the build, as the
baseline, and check that both name every identifier's customer alike. Each size's
report is added to ``bench-data/bench-identity.txt`` as it finishes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks.bench_ingest import run_tree
from cjm_pipeline.build import PROJECT_ROOT

DATA = PROJECT_ROOT / "bench-data"
THREADS = 2
# Writing the synthetic graph is set-up, not measured: it may use more.
GRAPH_MEMORY_LIMIT = "12GB"

GRAPH_SQL = """
create schema if not exists intermediate;
create or replace table intermediate.int_identity__edges as
with ids as (
    select
        i,
        hash(i, {seed}) as h,
        date '2026-09-01' + cast(hash(i, {seed}, 1) % 30 as integer) as day
    from range({identifiers}) as t(i)
),
-- 40% lone devices; then people of three identifiers: device, user id, email.
named as (
    select
        i,
        day,
        case
            when i < {lone} then 'anon:' || md5(cast(h as varchar))
            when (i - {lone}) % 3 = 0 then 'anon:' || md5(cast(h as varchar))
            when (i - {lone}) % 3 = 1 then 'user:u' || cast(i as varchar)
            else 'email:' || sha256(cast(h as varchar))
        end as node,
        case when i >= {lone} then (i - {lone}) // 3 end as person
    from ids
),
people as (
    select
        person,
        any_value(node) filter (where starts_with(node, 'anon:')) as device,
        any_value(node) filter (where starts_with(node, 'user:')) as user_node,
        any_value(node) filter (where starts_with(node, 'email:')) as email,
        min(day) as day
    from named
    where person is not null
    group by person
),
pairs as (
    select node as node_a, node as node_b, day from named
    union all
    select device, user_node, day from people where device is not null and user_node is not null
    union all
    select user_node, email, day from people where user_node is not null and email is not null
    union all
    -- a device that a second person signs in on too: one in a hundred people, and runs
    -- of 50 people in a row each sharing a device with the next (households, shared
    -- office machines), chains whose length label propagation pays a round per link of
    select shared.device, other.user_node, greatest(shared.day, other.day)
    from people as shared
    inner join people as other on other.person = shared.person + 1
    where (shared.person % 100 = 7 or shared.person % 1000 < 49)
        and other.user_node is not null
)
select
    least(node_a, node_b) as node_a,
    greatest(node_a, node_b) as node_b,
    min(day) as first_landing_date,
    1 as build_id
from pairs
group by all;

create or replace table intermediate.int_identity__overloaded as
select node
from (select distinct node_a as node from intermediate.int_identity__edges)
where hash(node, {seed}) % 1000 = 0;
"""

# int_identity__customers before this benchmark's change: label propagation, each node
# taking the smallest rank among its neighbours until nothing changes.
LABEL_PROPAGATION_SQL = """
create or replace table baseline_customers as
with recursive edges as (
    select * from intermediate.int_identity__edges
),
not_merging as (
    select node from intermediate.int_identity__overloaded
),
merging_edges as (
    select node_a, node_b
    from edges
    where node_a not in (select node from not_merging)
        and node_b not in (select node from not_merging)
),
directed as (
    select node_a as node, node_b as neighbour from merging_edges
    union
    select node_b as node, node_a as neighbour from merging_edges
),
nodes as (
    select node, min(first_landing_date) as first_landing_date
    from (
        select node_a as node, first_landing_date from edges
        union all
        select node_b as node, first_landing_date from edges
    )
    group by node
),
ranked as (
    select node, first_landing_date,
        row_number() over (order by first_landing_date, node) as node_rank
    from nodes
),
components (node, component_rank) using key (node) as (
    select node, node_rank from ranked
    union
    select directed.neighbour, min(components.component_rank)
    from components
    inner join directed on directed.node = components.node
    inner join recurring.components as current_label
        on current_label.node = directed.neighbour
    group by directed.neighbour
    having min(components.component_rank) < min(current_label.component_rank)
),
anchors as (
    select node_rank, node as anchor_node from ranked
)
select
    components.node,
    'cus_' || left(md5(anchors.anchor_node), 16) as customer_id
from components
inner join anchors on components.component_rank = anchors.node_rank
"""


def graph_path(identifiers: int, seed: int) -> Path:
    """The graph of this size, written once."""
    path = DATA / f"identity-{identifiers}-s{seed}.duckdb"
    if path.exists():
        return path
    import duckdb

    DATA.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    began = time.perf_counter()
    with duckdb.connect(str(partial)) as con:
        con.execute(
            f"set memory_limit = '{GRAPH_MEMORY_LIMIT}'; set threads = {THREADS}; "
            "set preserve_insertion_order = false"
        )
        con.execute(
            GRAPH_SQL.format(identifiers=identifiers, lone=int(identifiers * 0.4), seed=seed)
        )
    partial.rename(path)
    print(f"  graph of {identifiers:,} identifiers written in {time.perf_counter() - began:.0f} s")
    return path


def graph_size(path: Path) -> tuple[int, int]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        edges = con.sql("select count(*) from intermediate.int_identity__edges").fetchall()[0][0]
        nodes = con.sql(
            "select count(*) from (select node_a from intermediate.int_identity__edges "
            "union select node_b from intermediate.int_identity__edges)"
        ).fetchall()[0][0]
    return nodes, edges


def dbt_model(path: Path, memory_limit: str) -> tuple[float, float, int]:
    """``dbt run --select int_identity__customers`` on the graph: the model's seconds
    in dbt, the command's wall seconds and its tree's peak RSS."""
    work = path.parent / f"{path.stem}-dbt"
    env = {
        **os.environ,
        "CJM_BUILD_PATH": str(path),
        "CJM_DUCKDB_MEMORY_LIMIT": memory_limit,
        "CJM_DUCKDB_THREADS": str(THREADS),
        "DBT_PROFILES_DIR": str(PROJECT_ROOT),
        "DBT_PROJECT_DIR": str(PROJECT_ROOT),
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    dbt = Path(sys.executable).with_name("dbt")
    command = [str(dbt), "run", "--select", "int_identity__customers"]
    results_path = work / "target" / "run_results.json"
    results_path.unlink(missing_ok=True)
    try:
        wall, peak = run_tree(command, env)
    except SystemExit as failed:  # dbt says why in its results, not on stderr
        found = json.loads(results_path.read_text())["results"] if results_path.exists() else []
        if len(found) != 1 or found[0]["status"] == "success":
            raise
        raise SystemExit(f"the model failed: {found[0]['message']}") from failed
    (result,) = json.loads(results_path.read_text())["results"]
    if result["status"] != "success":
        raise SystemExit(f"the model failed: {result['message']}")
    return result["execution_time"], wall, peak


def baseline(path: str, result: str, memory_limit: str) -> None:
    """Child process: the label propagation SQL on the graph."""
    import duckdb

    # The settings the dbt profile gives the build.
    config = {"memory_limit": memory_limit, "threads": THREADS, "preserve_insertion_order": False}
    with duckdb.connect(path, config=config) as con:
        began = time.perf_counter()
        try:
            con.execute(LABEL_PROPAGATION_SQL)
        except duckdb.OutOfMemoryException:
            Path(result).write_text(json.dumps({"failed": f"out of memory ({memory_limit})"}))
            return
        seconds = time.perf_counter() - began
        differ = con.sql(
            "select count(*) from baseline_customers as b "
            "full join intermediate.int_identity__customers as m using (node) "
            "where b.customer_id is distinct from m.customer_id"
        ).fetchall()[0][0]
        con.execute("drop table baseline_customers")
    Path(result).write_text(json.dumps({"seconds": seconds, "differ": differ}))


def bench_size(
    identifiers: int, seed: int, repeat: int, with_baseline: bool, memory_limit: str
) -> str:
    path = graph_path(identifiers, seed)
    nodes, edges = graph_size(path)
    runs = [dbt_model(path, memory_limit) for _ in range(repeat)]
    model = statistics.median(r[0] for r in runs)
    lines = [
        f"{identifiers:,} identifiers ({nodes:,} nodes, {edges:,} edges; DuckDB memory "
        f"limit {memory_limit}, {THREADS} threads; medians of {repeat})",
        f"  connected components (dbt model)   {model:>8.1f} s in dbt, "
        f"{statistics.median(r[1] for r in runs):.1f} s wall, "
        f"peak RSS {max(r[2] for r in runs) / 2**30:.2f} GiB",
    ]
    print("\n".join(lines), flush=True)  # the baseline can take many minutes
    if with_baseline:
        result = path.with_suffix(".baseline.json")
        result.unlink(missing_ok=True)
        command = [sys.executable, "-m", "benchmarks.bench_identity", "--baseline"]
        try:
            wall, peak = run_tree(
                [*command, str(path), str(result), memory_limit], dict(os.environ)
            )
            found = json.loads(result.read_text())
        except SystemExit as failed:  # the child died (killed for its memory, say)
            wall, peak, found = 0.0, 0, {"failed": str(failed).splitlines()[-1]}
        if "failed" in found:
            lines.append(
                f"  label propagation (former SQL)     failed after {wall:.0f} s: "
                f"{found['failed']}, peak RSS {peak / 2**30:.2f} GiB"
            )
            print(lines[-1], flush=True)
            return "\n".join(lines)
        lines += [
            f"  label propagation (former SQL)     {found['seconds']:>8.1f} s in DuckDB, "
            f"peak RSS {peak / 2**30:.2f} GiB",
            f"  components = {model / found['seconds']:.3f}x label propagation; "
            f"customers {'equal' if found['differ'] == 0 else 'DIFFER on ' + str(found['differ'])}",
        ]
        print("\n".join(lines[-2:]), flush=True)
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--baseline":
        baseline(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000000,100000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--memory-limit",
        default="3GB,8GB",
        help="DuckDB's memory limit for the model and the baseline, one per size in the "
        "order of --sizes (the last one for any further size): the build's default for "
        "10M; 100M needs more",
    )
    parser.add_argument(
        "--baseline-max",
        type=int,
        default=10_000_000,
        help="largest size the former label propagation also runs on (it takes minutes)",
    )
    args = parser.parse_args()
    out = DATA / "bench-identity.txt"
    DATA.mkdir(exist_ok=True)
    out.write_text("")
    sizes = [int(s) for s in args.sizes.split(",")]
    limits = args.memory_limit.split(",")
    limits += limits[-1:] * (len(sizes) - len(limits))
    for size, limit in zip(sizes, limits, strict=False):
        report = bench_size(size, args.seed, args.repeat, size <= args.baseline_max, limit)
        with out.open("a") as written:
            written.write(report + "\n\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
