"""Ingestion benchmark: ``make bench-ingest``.

For each target size it generates sample data (cached under ``bench-data/``),
then, in the same run and on the same files:

* the floor: a bare Polars parse of the landing files (``read_ndjson`` with the
  adapter's native schema, ``read_csv`` for CSV), on copies with the malformed
  lines removed, since a bare parse stops at the first broken line;
* ``cjm ingest`` over every landing date, in a child process, from an empty lake.

Each is repeated and reported as the median; peak RSS is the largest sum, over the
run, of the resident memory of the ingest process and its worker processes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import psutil

from cjm_pipeline.generate import generate
from transforms import email, reviews, web

ROOT = Path(__file__).resolve().parent.parent
RECORDS_PER_CUSTOMER = 58.0  # measured on the generator's personas over 30 days
START = date(2026, 10, 1)
NATIVE = {
    "web": web.NATIVE_DTYPE,
    "email": email.NATIVE_DTYPE,
    "reviews": pl.Struct(dict.fromkeys(reviews.COLUMNS, pl.String)),
}


def ensure_data(size: int, days: int, seed: int) -> Path:
    customers = max(100, int(size / RECORDS_PER_CUSTOMER))
    out = ROOT / "bench-data" / f"events-{size}-d{days}-s{seed}"
    if not (out / "truth" / "summary.json").exists():
        print(f"generating ~{size:,} records ({customers:,} customers, {days} days) in {out}")
        shutil.rmtree(out, ignore_errors=True)
        generate(out, customers, START, days, seed)
    return out


def floor_copies(root: Path) -> list[Path]:
    """Copies of the landing files without the lines the generator broke on purpose."""
    floor = root / "floor"
    if not floor.exists():
        truth = pl.read_parquet(root / "truth" / "records" / "*.parquet")
        bad = truth.filter(pl.col("status") == "malformed").group_by("file").agg("line")
        bad_lines = {r["file"]: set(r["line"]) for r in bad.iter_rows(named=True)}
        for path in sorted((root / "landing").rglob("*")):
            if not path.is_file() or "crm" in path.parts:
                continue
            rel = path.relative_to(root / "landing").as_posix()
            drop = bad_lines.get(rel, set())
            target = floor / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with path.open("rb") as src, target.open("wb") as dst:
                for n, line in enumerate(src, start=1):
                    if n not in drop:
                        dst.write(line)
    return sorted(p for p in floor.rglob("*") if p.is_file())


def bare_parse(files: list[Path]) -> int:
    rows = 0
    for path in files:
        source = path.relative_to(path.parents[2]).parts[0]
        if path.suffix == ".csv":
            rows += pl.read_csv(path, infer_schema=False).height
        else:
            rows += pl.read_ndjson(path, schema=dict(NATIVE[source].to_schema())).height
    return rows


def run_tree(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time of a command and the peak RSS of its process tree (summed over members)."""
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tree = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            members = [tree, *tree.children(recursive=True)]
            peak = max(peak, sum(m.memory_info().rss for m in members))
        time.sleep(0.05)
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:4])} failed:\n{proc.stderr.read().decode()[-4000:]}")
    return elapsed, peak


def run_ingest(root: Path, days: int) -> tuple[float, int]:
    """Ingest every landing date into an empty lake; wall time and tree peak RSS."""
    shutil.rmtree(root / "lake", ignore_errors=True)
    end = START + timedelta(days=days - 1)
    env = {**os.environ, "CJM_DATA_DIR": str(root)}
    cmd = [
        sys.executable,
        "-m",
        "cjm_pipeline.cli",
        "ingest",
        "--start",
        START.isoformat(),
        "--end",
        end.isoformat(),
    ]
    return run_tree(cmd, env)


def _row(row: tuple) -> str:
    size, events, _, floor_s, ingest_s, peak = row
    return (
        f"{size:>10,} {events:>10,} {floor_s:>8.2f} {ingest_s:>9.2f} "
        f"{events / ingest_s:>10,.0f} {ingest_s / floor_s:>8.2f} {peak / 2**30:>12.2f} GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    header = (
        f"{'target':>10} {'records':>10} {'floor s':>8} {'ingest s':>9} {'events/s':>10} "
        f"{'x floor':>8} {'peak RSS (tree)':>16}"
    )
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        root = ensure_data(size, args.days, args.seed)
        files = floor_copies(root)
        floor_times, ingest_times, peaks = [], [], []
        parsed = 0
        for _ in range(args.repeat):
            began = time.perf_counter()
            parsed = bare_parse(files)
            floor_times.append(time.perf_counter() - began)
            seconds, peak = run_ingest(root, args.days)
            ingest_times.append(seconds)
            peaks.append(peak)
        events = pl.read_parquet(root / "truth" / "records" / "*.parquet").height
        rows.append(
            (
                size,
                events,
                parsed,
                statistics.median(floor_times),
                statistics.median(ingest_times),
                max(peaks),
            )
        )
        print(header, flush=True)
        print(_row(rows[-1]), flush=True)
    print()
    print(header)
    for row in rows:
        print(_row(row))
    print(f"(medians of {args.repeat} runs; ingest includes process start-up)")


if __name__ == "__main__":
    main()
