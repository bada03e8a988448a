"""What BI readers and the next night see when a run is interrupted, publishes under
them, or meets what a fault left: the main job (`cjm run`) as real processes, killed for
real, with another command trying to slip in, a damaged served file and state file, a
lake partition erased after it was built, and an empty lake."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cjm_pipeline.settings import Settings
from tests.conftest import damage, env_of, sample_dates

LOCKED = 75

BIN = Path(sys.executable).parent

# Reads the served database in a loop until the stop file appears; prints one line per
# read: the build id, or ERROR and why. A read is complete when every mart holds the row
# count recorded when the snapshot was published.
READER = """
import sys, time, pathlib, duckdb
served, stop = sys.argv[1], pathlib.Path(sys.argv[2])
while not stop.exists():
    try:
        with duckdb.connect(served, read_only=True) as con:
            build_id, counts = con.execute("select build_id, mart_rows from cjm_publish").fetchone()
            for table, rows in counts.items():
                actual = con.execute(f"select count(*) from {table}").fetchone()[0]
                if actual != rows:
                    raise AssertionError(f"{table}: {actual} rows, published {rows}")
        print(build_id, flush=True)
    except Exception as exc:
        print("ERROR", type(exc).__name__, str(exc).replace(chr(10), " "), flush=True)
    time.sleep(0.05)
"""


def workspace_settings(sample: Settings, root: Path) -> Settings:
    return sample.model_copy(
        update={
            "data_dir": root / "data",
            "warehouse_path": root / "warehouse" / "cjm.duckdb",
            "build_path": root / "warehouse" / "build" / "cjm.duckdb",
        }
    )


@pytest.fixture(scope="module")
def first_night(sample: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's landing files and the night of its third-to-last day, served."""
    root = tmp_path_factory.mktemp("first_night")
    shutil.copytree(sample.landing_dir, root / "data" / "landing")
    dates = sample_dates()[:-2]
    cjm(workspace_settings(sample, root), "run", "--start", str(dates[0]), "--end", str(dates[-1]))
    return root


@pytest.fixture
def night_one(sample: Settings, first_night: Path, tmp_path: Path) -> Settings:
    """A copy of the first night's workspace for one test to change."""
    shutil.copytree(first_night, tmp_path / "ws", symlinks=True)
    return workspace_settings(sample, tmp_path / "ws")


def cjm(settings: Settings, *args: str) -> str:
    done = try_cjm(settings, *args)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def try_cjm(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "cjm"), *args], env=env_of(settings), capture_output=True, text=True
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def served_build(settings: Settings) -> tuple[int, str]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        build_id, run_date = con.execute("select build_id, run_date from cjm_publish").fetchone()
    return build_id, str(run_date)


def test_readers_see_only_complete_snapshots_while_a_night_publishes(night_one, tmp_path):
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(night_one.warehouse_path), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        last = sample_dates()[-1]
        cjm(night_one, "run", "--start", str(last - timedelta(days=1)), "--end", str(last))
        time.sleep(0.5)  # a few reads of the new night
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    lines = out.split()
    assert "ERROR" not in out, out[:2000]
    assert {"1", "2"} <= set(lines), out[:2000]
    # Reads kept running the whole time, and never went back to the old night.
    assert lines.index("2") > 0 and "1" not in lines[lines.index("2") :]


def test_a_run_killed_during_the_build_leaves_the_served_night(night_one):
    """Also: a rollback tried while the run builds is refused, naming the run."""
    before = sha256(night_one.warehouse_path)
    state = night_one.build_path.with_name("cjm.duckdb.state.json").read_text()
    first, last = sample_dates()[-2], sample_dates()[-1]
    run = subprocess.Popen(
        [str(BIN / "cjm"), "run", "--start", str(first), "--end", str(last)],
        env=env_of(night_one),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Kill the whole process group (cjm and its dbt child) once models are being built,
    # after a rollback tried to slip in.
    seen = []
    for line in run.stdout:
        seen.append(line)
        if "START sql" in line and "int_events_sessionized" in line:
            refused = try_cjm(night_one, "rollback")
            os.killpg(run.pid, signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, "".join(seen[-30:])
    assert any("(incremental: " in line for line in seen)
    assert refused.returncode == LOCKED, refused.stdout + refused.stderr
    assert f"error: cjm run (pid {run.pid}) has held the night lock since " in refused.stderr
    assert "wait for it to finish, or pass --wait" in refused.stderr

    assert sha256(night_one.warehouse_path) == before
    assert served_build(night_one) == (1, str(sample_dates()[-3]))
    assert night_one.build_path.with_name("cjm.duckdb.state.json").read_text() == state
    # The next run redoes the night, with the same build number, and publishes it.
    cjm(night_one, "run", "--start", str(first), "--end", str(last))
    assert served_build(night_one) == (2, str(last))


def test_a_corrupted_batch_stops_the_night_before_publishing(night_one):
    before = sha256(night_one.warehouse_path)
    state = night_one.build_path.with_name("cjm.duckdb.state.json").read_text()
    day = sample_dates()[-2]
    cjm(night_one, "ingest", "--date", str(day))
    # A partition written twice: every event id of the file appears twice.
    partition = night_one.events_partition("web", day.isoformat())
    shutil.copy(partition / "events.parquet", partition / "events-again.parquet")

    done = subprocess.run(
        [str(BIN / "cjm"), "run", "--date", str(day)],
        env=env_of(night_one),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    assert "expect_column_values_to_be_unique on event_id" in done.stderr
    assert "events_web [web]" in done.stderr
    assert sha256(night_one.warehouse_path) == before
    assert night_one.build_path.with_name("cjm.duckdb.state.json").read_text() == state

    # Once the stray file is gone, the night runs and takes the number it would have had.
    (partition / "events-again.parquet").unlink()
    cjm(night_one, "run", "--date", str(day))
    assert served_build(night_one) == (2, str(day))


def test_rollback_serves_the_previous_night_and_the_next_run_builds_on_it(night_one):
    last = sample_dates()[-1]
    cjm(night_one, "run", "--date", str(last - timedelta(days=1)))
    assert served_build(night_one) == (2, str(last - timedelta(days=1)))

    out = cjm(night_one, "rollback")
    assert "build database restored" in out
    assert served_build(night_one) == (1, str(sample_dates()[-3]))

    # The next night is incremental on the restored build and re-reads the landing dates
    # since the restored night; its number follows every snapshot's, so none is shared.
    out = cjm(night_one, "run", "--date", str(last))
    assert "(incremental: " in out
    assert served_build(night_one) == (3, str(last))


def test_a_damaged_served_file_and_state_file_are_named_and_the_night_replaces_them(night_one):
    state = night_one.build_path.with_name("cjm.duckdb.state.json")
    state.write_text(state.read_text()[:40])
    damage(night_one.warehouse_path)
    for command in ("summary", "report"):
        done = try_cjm(night_one, command)
        assert done.returncode == 1
        assert f"error: the served database {night_one.warehouse_path} is damaged (" in (
            done.stderr
        )
        assert "run `cjm rollback` to serve the newest good snapshot" in done.stderr
        assert "Traceback" not in done.stderr

    day = sample_dates()[-2]
    out = cjm(night_one, "run", "--date", str(day))

    assert f"warning: the build state file {state} is damaged (Unterminated string" in out
    assert "the served snapshot cannot replace it" in out
    assert "(full refresh: the build state file" in out
    assert f"warning: the served database {night_one.warehouse_path} is damaged" in out
    # Numbered after the snapshot kept, served whole, and recorded.
    assert served_build(night_one) == (2, str(day))
    assert '"build_id": 2' in state.read_text()
    assert "journey map: " in out
    listing = cjm(night_one, "snapshots").splitlines()
    assert [line[0] for line in listing] == [" ", "*"]
    assert "build 1  (cannot be read: " in listing[0] and "cannot be read" not in listing[1]
    # The damaged night is never served again: nothing good is left before this one.
    done = try_cjm(night_one, "rollback")
    assert done.returncode == 1
    assert "nothing to roll back to" in done.stderr
    assert "1 older one(s) cannot be read" in done.stderr
    assert served_build(night_one) == (2, str(day))


def test_an_erased_lake_partition_reaches_the_served_marts(night_one):
    """A landing date's web events deleted after they were built (an erasure request):
    the next night notices, rebuilds in full, and serves marts without them."""
    erased_day = sample_dates()[2]
    partition = night_one.events_partition("web", erased_day.isoformat())
    erased = pl.read_parquet(partition / "events.parquet")["event_id"].to_list()
    shutil.rmtree(partition)
    assert erased

    day = sample_dates()[-2]
    out = cjm(night_one, "run", "--date", str(day))

    assert f"(full refresh: lake partition web {erased_day} was removed since build 1;" in out
    lake = pl.read_parquet(night_one.lake_dir / "events" / "*" / "*" / "*.parquet")
    with duckdb.connect(str(night_one.warehouse_path), read_only=True) as con:
        served = con.execute("select count(*) from fct_journey_events").fetchone()[0]
        left = con.execute(
            "select count(*) from fct_journey_events where event_id in (select unnest(?))",
            [erased],
        ).fetchone()[0]
    assert served_build(night_one) == (2, str(day))
    assert served == lake.height
    assert left == 0


def test_a_first_night_without_landing_data_says_so(tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data",
        salt="test-salt",
        warehouse_path=tmp_path / "warehouse" / "cjm.duckdb",
        build_path=tmp_path / "warehouse" / "build" / "cjm.duckdb",
    )
    for args in (["run", "--date", "2026-10-30"], ["build", "--date", "2026-10-30"]):
        done = try_cjm(settings, *args)
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            "error: no events in the lake up to 2026-10-30: nothing to build; check CJM_DATA_DIR "
            f"(now {settings.data_dir}) and the landing folders"
        ) in done.stderr
        assert "dbt" not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    assert not settings.build_path.exists()
    assert not settings.warehouse_path.exists()
