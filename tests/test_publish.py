"""Publishing the build database as the served one: real DuckDB files, real processes.

Every test publishes a private copy of the session's built database into its own
warehouse directory, so tests can change the build between publishes."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cjm_pipeline import publish as publishing
from cjm_pipeline.build import BuildPlan, read_state, record_build, restore_build, state_path
from cjm_pipeline.lock import LockError
from cjm_pipeline.publish import (
    DamagedDatabase,
    PublishError,
    prune,
    publish,
    read_published_build,
    rollback,
    served_info,
    snapshots,
)
from cjm_pipeline.settings import PROJECT_ROOT, Settings
from tests.conftest import MARTS, RUN_DATE, env_of, quiet


@pytest.fixture
def own(built: Settings, tmp_path: Path) -> Settings:
    """Settings whose build is a private copy of the built database."""
    build = tmp_path / "build" / "cjm.duckdb"
    build.parent.mkdir()
    build.write_bytes(built.build_path.read_bytes())
    return built.model_copy(
        update={"build_path": build, "warehouse_path": tmp_path / "warehouse" / "cjm.duckdb"}
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def mart_counts(path: Path) -> dict[str, int]:
    return {mart: read(path, f"select count(*) from {mart}")[0][0] for mart in MARTS}


def served_build_id(settings: Settings) -> int:
    return read(settings.warehouse_path, "select build_id from cjm_publish")[0][0]


def change_build(settings: Settings, drop_every: int) -> None:
    """Delete some journeys and events from the build, so the next snapshot differs."""
    with duckdb.connect(str(settings.build_path)) as con:
        for mart in ("fct_journeys", "fct_journey_events"):
            con.execute(f"delete from {mart} where hash(rowid) % {drop_every} = 0")


def temp_files(settings: Settings) -> list[Path]:
    return sorted(settings.warehouse_dir.rglob(f"{publishing.TMP_PREFIX}*"))


def on_disk(settings: Settings) -> list[int]:
    """Build ids of every snapshot folder on disk, listed or not."""
    return sorted(publishing.snapshot_build_ids(settings))


def served_night(settings: Settings) -> int:
    """The build served, checked whole: every mart of the database holds the rows
    stamped, and ``parquet/current`` is the same night, with the same rows."""
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        build_id, stamped = con.execute("select build_id, mart_rows from cjm_publish").fetchone()
        for mart, rows in stamped.items():
            assert con.execute(f"select count(*) from {mart}").fetchone()[0] == rows, mart
    current = Path(os.path.realpath(settings.parquet_dir / "current"))
    assert pl.read_parquet(current / "cjm_publish.parquet")["build_id"].to_list() == [build_id]
    for mart in ("fct_journeys", "fct_journey_events"):
        assert (
            pl.scan_parquet(current / f"{mart}.parquet").select(pl.len()).collect().item()
            == (stamped[mart])
        )
    return build_id


def test_publish_serves_a_stamped_copy_with_parquet(own: Settings) -> None:
    expected = mart_counts(own.build_path)

    result = publish(own, RUN_DATE, 7, progress=quiet)

    served = own.warehouse_path
    assert result.served == served
    assert os.path.samefile(served, result.snapshot / "cjm.duckdb")
    assert result.snapshot.parent == own.snapshots_dir
    assert result.bytes == served.stat().st_size
    # One switch for both: the database and the Parquet folder go through `served`.
    assert os.readlink(served) == "served/cjm.duckdb"
    assert os.readlink(own.parquet_dir / "current") == "../served/parquet"
    assert os.readlink(own.warehouse_dir / "served") == f"snapshots/{result.snapshot.name}"
    assert mart_counts(served) == expected
    info = served_info(served)
    assert info["build_id"] == 7
    assert info["run_date"] == RUN_DATE
    assert info["snapshot"] == result.snapshot.name
    assert {mart: info["mart_rows"][mart] for mart in MARTS} == expected
    # The stamp goes into the copy only: the build database stays what dbt left.
    assert read(
        own.build_path, "select count(*) from duckdb_tables() where table_name = 'cjm_publish'"
    ) == [(0,)]
    current = own.parquet_dir / "current"
    assert current.resolve() == result.parquet.resolve()
    for mart, rows in expected.items():
        assert (
            pl.scan_parquet(current / f"{mart}.parquet").select(pl.len()).collect().item() == rows
        )
    stamp = pl.read_parquet(current / "cjm_publish.parquet")
    assert stamp["build_id"].to_list() == [7]
    assert [(s.build_id, s.is_served) for s in snapshots(own)] == [(7, True)]


def test_publish_folds_a_leftover_build_wal_into_the_snapshot(own: Settings) -> None:
    before = mart_counts(own.build_path)["fct_journeys"]
    con = duckdb.connect(str(own.build_path), config={"checkpoint_threshold": "1GB"})
    con.execute("pragma disable_checkpoint_on_shutdown")
    con.execute("delete from fct_journeys where hash(journey_id) % 3 = 0")
    after = con.execute("select count(*) from fct_journeys").fetchone()[0]
    con.close()
    assert publishing.wal_path(own.build_path).exists(), "the test needs a leftover WAL"
    assert after < before

    publish(own, RUN_DATE, 1, progress=quiet)

    assert mart_counts(own.warehouse_path)["fct_journeys"] == after
    assert served_info(own.warehouse_path)["mart_rows"]["fct_journeys"] == after
    assert not publishing.wal_path(own.build_path).exists()


def test_marts_added_later_are_counted_and_exported(own: Settings) -> None:
    with duckdb.connect(str(own.build_path)) as con:
        con.execute("create table agg_cohort_retention as select * from range(5) r(n)")
        con.execute("create table int_scratch as select * from range(3) r(n)")

    result = publish(own, RUN_DATE, 1, progress=quiet)

    assert result.mart_rows["agg_cohort_retention"] == 5
    assert "int_scratch" not in result.mart_rows
    assert served_info(own.warehouse_path)["mart_rows"]["agg_cohort_retention"] == 5
    assert pl.read_parquet(result.parquet / "agg_cohort_retention.parquet").height == 5
    assert not (result.parquet / "int_scratch.parquet").exists()


READER = """
import json, sys, time
from pathlib import Path
import duckdb

served, stop, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
marts = json.loads(sys.argv[4])
seen, errors, reads = [], [], 0
while not stop.exists():
    try:
        with duckdb.connect(served, read_only=True) as con:
            cursor = con.execute("select * from cjm_publish")
            stamp = dict(zip([c[0] for c in cursor.description], cursor.fetchone()))
            # count(distinct) reads the column data; count(*) alone comes from metadata.
            keys = con.execute("select count(distinct journey_id) from fct_journeys").fetchone()[0]
            if keys != stamp["mart_rows"]["fct_journeys"]:
                errors.append(f"build {stamp['build_id']}: {keys} journey ids")
            for mart in marts:
                rows = con.execute(f"select count(*) from {mart}").fetchone()[0]
                if rows != stamp["mart_rows"][mart]:
                    errors.append(f"build {stamp['build_id']}: {mart} {rows} rows, "
                                  f"stamped {stamp['mart_rows'][mart]}")
        seen.append(stamp["build_id"])
    except Exception as exc:
        errors.append(repr(exc))
    reads += 1
    ready.touch()
print(json.dumps({"seen": seen, "errors": errors, "reads": reads}))
"""


def wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {seconds} s"
        time.sleep(0.05)


def test_readers_only_ever_see_whole_snapshots(own: Settings, tmp_path: Path) -> None:
    publish(own, RUN_DATE, 1, progress=quiet)
    stop, ready = tmp_path / "stop", tmp_path / "ready"
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            READER,
            str(own.warehouse_path),
            str(stop),
            str(ready),
            json.dumps(MARTS),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    try:
        wait_for(ready)
        published = {1}
        for build_id in (2, 3, 4):
            change_build(own, drop_every=7 + build_id)
            publish(own, RUN_DATE, build_id, progress=quiet)
            published.add(build_id)
            time.sleep(0.5)
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    report = json.loads(out)
    assert report["errors"] == []
    assert set(report["seen"]) <= published
    assert len(set(report["seen"])) >= 2, report["seen"]


def test_an_open_reader_keeps_its_snapshot_across_a_publish(own: Settings) -> None:
    checksum = "select count(*), sum(hash(journey_id, customer_id)) from fct_journeys"
    old = read(own.build_path, checksum)
    publish(own, RUN_DATE, 1, progress=quiet)
    served_sha = sha256(own.warehouse_path)
    con = duckdb.connect(str(own.warehouse_path), read_only=True)
    held = own.warehouse_path.open("rb")
    change_build(own, drop_every=5)

    publish(own, RUN_DATE, 2, progress=quiet)

    # The inode a reader opened is never written to: not even in place with equal bytes.
    assert hashlib.sha256(held.read()).hexdigest() == served_sha
    held.close()
    assert con.execute(checksum).fetchall() == old
    assert con.execute("select build_id from cjm_publish").fetchone()[0] == 1
    con.close()
    assert served_build_id(own) == 2
    assert read(own.warehouse_path, checksum)[0][0] < old[0][0]


def corrupt_build(settings: Settings) -> None:
    with settings.build_path.open("r+b") as handle:
        handle.truncate(settings.build_path.stat().st_size // 2)
        handle.seek(0)
        handle.write(b"\0" * 4096)


def drop_a_mart(settings: Settings) -> None:
    with duckdb.connect(str(settings.build_path)) as con:
        con.execute("drop table fct_sessions")


def unexportable_mart(settings: Settings) -> None:
    """A mart whose name is no file name: fails after the snapshot is copied and
    stamped, while its Parquet files are written."""
    with duckdb.connect(str(settings.build_path)) as con:
        con.execute('create table "agg_in/valid" as select 1 as n')


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (corrupt_build, "cannot open the build database"),
        (drop_a_mart, "has no table fct_sessions"),
        (unexportable_mart, "is unchanged; fix the cause"),
    ],
)
def test_a_failed_publish_leaves_the_served_file_as_it_was(
    own: Settings, damage, message: str
) -> None:
    publish(own, RUN_DATE, 1, progress=quiet)
    good_build = own.build_path.read_bytes()
    served_sha = sha256(own.warehouse_path)
    current = os.readlink(own.parquet_dir / "current")

    damage(own)
    with pytest.raises(PublishError, match=message):
        publish(own, RUN_DATE, 2, progress=quiet)

    assert sha256(own.warehouse_path) == served_sha
    assert temp_files(own) == []
    assert on_disk(own) == [1]
    assert os.readlink(own.parquet_dir / "current") == current
    own.build_path.write_bytes(good_build)
    publish(own, RUN_DATE, 3, progress=quiet)
    assert served_build_id(own) == 3
    assert temp_files(own) == []


KILLER = """
import os, signal, sys
from datetime import date
from cjm_pipeline.publish import publish
from cjm_pipeline.settings import Settings

def die_at(step):
    def progress(line):
        if line.strip().startswith(step):
            os.kill(os.getpid(), signal.SIGKILL)
    return progress

publish(Settings(), date.fromisoformat(sys.argv[1]), int(sys.argv[3]), progress=die_at(sys.argv[2]))
"""

# Each step's first progress line, in order: the kill comes right after that step.
KILL_STEPS = ["copied", "stamped", "exported", "snapshot", "serving", "pruned", "published"]
SWITCHED = {"serving", "pruned", "published"}  # killed after `served` was switched
# What is on disk after the kill: build 4 publishing over 1, 2 and 3 with two kept.
LEFT = {"copied": [1, 2, 3], "snapshot": [1, 2, 3, 4], "serving": [1, 2, 3, 4]}
LEFT |= {"stamped": [1, 2, 3], "exported": [1, 2, 3], "pruned": [2, 3, 4], "published": [3, 4]}


def kill_a_publish(settings: Settings, step: str, build_id: int) -> None:
    env = {
        **os.environ,
        "CJM_BUILD_PATH": str(settings.build_path),
        "CJM_WAREHOUSE_PATH": str(settings.warehouse_path),
        "CJM_KEEP_SNAPSHOTS": str(settings.keep_snapshots),
    }
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, RUN_DATE.isoformat(), step, str(build_id)],
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL


@pytest.mark.parametrize("step", KILL_STEPS)
def test_a_publish_killed_at_any_step_leaves_a_state_the_next_one_repairs(
    own: Settings, step: str, tmp_path: Path
) -> None:
    own = own.model_copy(update={"keep_snapshots": 3})
    for build_id in (1, 2, 3):
        change_build(own, drop_every=3 + build_id)
        publish(own, RUN_DATE, build_id, progress=quiet)
    change_build(own, drop_every=13)
    own = own.model_copy(update={"keep_snapshots": 2})

    kill_a_publish(own, step, 4)

    # Readers see the old night or the new one, whole, in the database and the Parquet.
    switched = step in SWITCHED
    assert served_night(own) == (4 if switched else 3)
    assert on_disk(own) == LEFT[step]
    # A snapshot that was never served is never listed; it is the one marked pending
    # (as is one killed right after its switch, until the next repair).
    listed = [s.build_id for s in snapshots(own)]
    assert listed == (LEFT[step] if switched else [b for b in LEFT[step] if b != 4])
    pending = [s.build_id for s in publishing._all_snapshots(own) if s.pending]
    assert pending == ([4] if step in {"snapshot", "serving"} else [])

    # The next rollback repairs first, and never serves the snapshot never served.
    other = own.model_copy(update={"warehouse_path": tmp_path / "copy" / "cjm.duckdb"})
    shutil.copytree(own.warehouse_dir, other.warehouse_dir, symlinks=True)
    assert rollback(other, progress=quiet).build_id == (3 if switched else 2)
    assert served_night(other) == (3 if switched else 2)
    assert temp_files(other) == []
    assert 4 in on_disk(other) if switched else 4 not in on_disk(other)

    # So does the next publish: the orphan is deleted, not kept as an older night.
    publish(own, RUN_DATE, 5, progress=quiet)
    assert served_night(own) == 5
    assert temp_files(own) == []
    assert not any(s.pending for s in publishing._all_snapshots(own))
    assert on_disk(own) == [4 if switched else 3, 5]
    assert rollback(own, progress=quiet).build_id == (4 if switched else 3)


def test_rollback_walks_back_one_snapshot_at_a_time(own: Settings) -> None:
    own = own.model_copy(update={"keep_snapshots": 3})
    for build_id in (1, 2, 3):
        change_build(own, drop_every=3 + build_id)
        publish(own, RUN_DATE, build_id, progress=quiet)
    counts = {s.build_id: mart_counts(s.path) for s in snapshots(own)}

    assert rollback(own, progress=quiet).build_id == 2
    assert served_build_id(own) == 2
    assert mart_counts(own.warehouse_path) == counts[2]
    assert pl.read_parquet(own.parquet_dir / "current" / "cjm_publish.parquet")["build_id"][0] == 2

    assert rollback(own, progress=quiet).build_id == 1
    assert served_build_id(own) == 1
    assert [s.build_id for s in snapshots(own) if s.is_served] == [1]

    served_sha = sha256(own.warehouse_path)
    with pytest.raises(PublishError, match="nothing to roll back to"):
        rollback(own, progress=quiet)
    assert sha256(own.warehouse_path) == served_sha


def test_rollback_with_one_snapshot_fails_clearly(own: Settings) -> None:
    with pytest.raises(PublishError, match="publish a build first"):
        rollback(own, progress=quiet)
    publish(own, RUN_DATE, 1, progress=quiet)
    with pytest.raises(PublishError, match="nothing to roll back to"):
        rollback(own, progress=quiet)
    assert served_build_id(own) == 1


def test_rollback_never_returns_to_a_snapshot_rolled_back_from(own: Settings) -> None:
    for build_id in (1, 2):
        publish(own, RUN_DATE, build_id, progress=quiet)
    rollback(own, progress=quiet)
    publish(own, RUN_DATE, 3, progress=quiet)

    assert rollback(own, progress=quiet).build_id == 1
    assert [(s.build_id, s.rolled_back) for s in snapshots(own)] == [
        (1, False),
        (2, True),
        (3, True),
    ]


def test_pruning_keeps_the_newest_and_never_the_served_one(own: Settings) -> None:
    own = own.model_copy(update={"keep_snapshots": 2})
    for build_id in (1, 2, 3, 4):
        publish(own, RUN_DATE, build_id, progress=quiet)

    assert [s.build_id for s in snapshots(own)] == [3, 4]
    assert on_disk(own) == [3, 4]
    assert all((s.parquet / "fct_journeys.parquet").exists() for s in snapshots(own))
    assert sorted(p.name for p in own.parquet_dir.iterdir()) == ["current"]

    rollback(own, progress=quiet)
    own = own.model_copy(update={"keep_snapshots": 1})
    assert prune(own, progress=quiet) == []
    assert [(s.build_id, s.is_served) for s in snapshots(own)] == [(3, True), (4, False)]
    assert served_build_id(own) == 3
    assert (own.parquet_dir / "current" / "fct_journeys.parquet").exists()


def test_a_second_publish_at_the_same_time_is_refused(own: Settings) -> None:
    own.warehouse_dir.mkdir(parents=True)
    # Another open file description of the lock file: to flock, another holder.
    with (own.warehouse_dir / ".cjm.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(LockError, match="holds the night lock"):
            publish(own, RUN_DATE, 1, progress=quiet)
    assert not own.warehouse_path.exists()
    assert on_disk(own) == []


def test_a_wal_next_to_the_served_file_stops_publishing(own: Settings) -> None:
    publish(own, RUN_DATE, 1, progress=quiet)
    served_sha = sha256(own.warehouse_path)
    publishing.wal_path(own.warehouse_path).write_bytes(b"written by a read-write reader")

    with pytest.raises(PublishError, match="opened the served database read-write"):
        publish(own, RUN_DATE, 2, progress=quiet)
    assert sha256(own.warehouse_path) == served_sha


def to_legacy_layout(settings: Settings) -> None:
    """Turn the warehouse back into the layout of earlier versions: one database file
    per snapshot, hard-linked as the served file, and its Parquet in parquet/<name>/."""
    served = publishing.served_name(settings)
    for snap in publishing._all_snapshots(settings):
        os.replace(snap.path, settings.snapshots_dir / f"{snap.name}.duckdb")
        os.replace(snap.parquet, settings.parquet_dir / snap.name)
        if snap.rolled_back:
            os.replace(
                snap.folder / "rolled-back",
                settings.snapshots_dir / f"{snap.name}.duckdb.rolled-back",
            )
        snap.folder.rmdir()
    (settings.warehouse_dir / "served").unlink()
    settings.warehouse_path.unlink()
    os.link(settings.snapshots_dir / f"{served}.duckdb", settings.warehouse_path)
    (settings.parquet_dir / "current").unlink()
    os.symlink(served, settings.parquet_dir / "current")


def test_a_warehouse_of_the_earlier_layout_moves_to_snapshot_folders(own: Settings) -> None:
    for build_id in (1, 2, 3):
        change_build(own, drop_every=3 + build_id)
        publish(own, RUN_DATE, build_id, progress=quiet)
    rollback(own, progress=quiet)
    counts = {s.build_id: mart_counts(s.path) for s in publishing._all_snapshots(own)}
    to_legacy_layout(own)
    served_inode = own.warehouse_path.stat().st_ino
    reader = duckdb.connect(str(own.warehouse_path), read_only=True)

    # Repeatable: a migration killed midway finishes the next time.
    publishing.migrate_legacy(own, progress=quiet)
    publishing.migrate_legacy(own, progress=quiet)
    assert [(s.build_id, s.is_served, s.rolled_back) for s in snapshots(own)] == [
        (1, False, False),
        (2, True, False),
        (3, False, True),
    ]
    # Moved, not copied: the served database is the very file readers had open.
    assert (own.snapshots_dir / publishing.served_name(own) / "cjm.duckdb").stat().st_ino == (
        served_inode
    )
    assert rollback(own, progress=quiet).build_id == 1
    assert served_night(own) == 1
    assert mart_counts(own.warehouse_path) == counts[1]
    assert reader.execute("select build_id from cjm_publish").fetchone()[0] == 2
    reader.close()
    assert not list(own.snapshots_dir.glob("*.duckdb*"))
    assert sorted(p.name for p in own.parquet_dir.iterdir()) == ["current"]


def cut_in_half(database: Path) -> None:
    """Cut a published database in half, as a failing disk or a careless copy would."""
    with database.open("r+b") as handle:
        handle.truncate(database.stat().st_size // 2)


def test_rollback_moves_away_from_a_damaged_served_file_and_skips_damaged_snapshots(
    own: Settings,
) -> None:
    own = own.model_copy(update={"keep_snapshots": 4})
    for build_id in (1, 2, 3, 4):
        change_build(own, drop_every=3 + build_id)
        publish(own, RUN_DATE, build_id, progress=quiet)
    counts = mart_counts(snapshots(own)[0].path)
    cut_in_half(snapshots(own)[-1].path)  # the served one
    cut_in_half(snapshots(own)[-2].path)

    with pytest.raises(DamagedDatabase, match="run `cjm rollback` to serve the newest good"):
        served_info(own.warehouse_path)
    messages: list[str] = []
    assert rollback(own, progress=messages.append).build_id == 2
    assert any(line.strip().startswith("skipped cjm-") and "b000003" in line for line in messages)
    assert served_night(own) == 2

    # Passed over, build 3 is marked like the night rolled back from: never served again.
    assert [(s.build_id, s.rolled_back) for s in snapshots(own)] == [
        (1, False),
        (2, False),
        (3, True),
        (4, True),
    ]
    assert rollback(own, progress=quiet).build_id == 1
    assert mart_counts(own.warehouse_path) == counts
    with pytest.raises(PublishError, match="nothing to roll back to"):
        rollback(own, progress=quiet)


def test_the_lake_a_build_read_travels_with_its_snapshot(own: Settings) -> None:
    lake = {"web/2026-10-01": [1234, 56, "0123abcd"], "crm/2026-10-01": [99, 3, "feed"]}
    publish(own, RUN_DATE, 7, progress=quiet, fingerprint="f1", lake=lake)

    stamp, read = read_published_build(own.warehouse_path)
    assert (stamp.build_id, stamp.run_date, stamp.fingerprint, read) == (7, RUN_DATE, "f1", lake)
    # The inventory is no mart: not counted, not exported.
    assert "cjm_lake_inventory" not in served_info(own.warehouse_path)["mart_rows"]
    assert not (own.parquet_dir / "current" / "cjm_lake_inventory.parquet").exists()
    # A restore (rollback) and a damaged state file both get it back.
    state = restore_build(own, snapshots(own)[-1].path)
    assert (state.build_id, state.lake) == (7, lake)
    state_path(own).write_text('{"build_id": 7, "run_da')
    assert read_state(own, progress=quiet)[0].lake == lake
    record_build(
        own, BuildPlan(RUN_DATE, False, 3, "", 8, 7, "f1", {"web/2026-10-02": [1, 1, "a"]})
    )
    assert read_state(own, progress=quiet)[0].lake == {"web/2026-10-02": [1, 1, "a"]}


def test_snapshot_names_sort_by_publish_time_not_run_date(own: Settings) -> None:
    publish(own, RUN_DATE, 1, progress=quiet)
    publish(own, date(2026, 10, 2), 2, progress=quiet)  # a backfill of an earlier date

    assert [s.build_id for s in snapshots(own)] == [1, 2]
    assert snapshots(own)[-1].is_served
    assert rollback(own, progress=quiet).run_date == RUN_DATE


def test_a_warehouse_of_the_earlier_layout_whose_served_copy_is_damaged_keeps_its_nights(
    own: Settings,
) -> None:
    """Served as a copy that was then damaged, the earlier layout names no served night:
    no snapshot may be taken for one never served, and rollback serves the newest good
    one (what `cjm summary` tells a reader of the damaged file to run)."""
    for build_id in (1, 2):
        change_build(own, drop_every=3 + build_id)
        publish(own, RUN_DATE, build_id, progress=quiet)
    counts = {s.build_id: mart_counts(s.path) for s in snapshots(own)}
    to_legacy_layout(own)
    [newest] = own.snapshots_dir.glob("*-b000002.duckdb")
    own.warehouse_path.unlink()
    shutil.copyfile(newest, own.warehouse_path)
    cut_in_half(own.warehouse_path)

    lines: list[str] = []
    assert prune(own.model_copy(update={"keep_snapshots": 1}), progress=lines.append) == []
    assert "  pruned nothing: no snapshot is served (`cjm rollback` serves the newest)" in lines
    assert [(s.build_id, s.is_served) for s in snapshots(own)] == [(1, False), (2, False)]

    lines = []
    assert rollback(own, progress=lines.append).build_id == 2
    assert lines[-1].startswith("nothing was served: serving the newest good snapshot, build 2")
    assert served_night(own) == 2
    assert mart_counts(own.warehouse_path) == counts[2]
    assert rollback(own, progress=quiet).build_id == 1
    publish(own, RUN_DATE, 3, progress=quiet)
    assert served_night(own) == 3
    assert on_disk(own) == [1, 2, 3]


def test_a_publish_whose_clock_runs_behind_keeps_the_previous_night(own: Settings) -> None:
    """The served night was named by a clock an hour ahead of this one (another host, or
    this one before its clock was set back): it is still the night before."""
    publish(own, RUN_DATE, 1, progress=quiet)
    [first] = snapshots(own)
    ahead = datetime.now(UTC) + timedelta(hours=1)
    renamed = publishing.snapshot_name(ahead, first.run_date, first.build_id)
    os.replace(first.folder, own.snapshots_dir / renamed)
    publishing.switch(own, renamed)

    change_build(own, drop_every=5)
    publish(own, RUN_DATE, 2, progress=quiet)

    assert [(s.build_id, s.is_served) for s in snapshots(own)] == [(1, False), (2, True)]
    assert snapshots(own)[-1].published_at > ahead  # named after the night it follows
    assert rollback(own, progress=quiet).build_id == 1
    assert served_night(own) == 1
    assert on_disk(own) == [1, 2]


ROLLBACK_KILLER = """
import os, signal
from cjm_pipeline.publish import rollback
from cjm_pipeline.settings import Settings

def progress(line):
    if line.strip().startswith("marked"):
        os.kill(os.getpid(), signal.SIGKILL)

rollback(Settings(), progress=progress)
"""


def test_a_rollback_killed_before_its_switch_leaves_the_served_night_unmarked(
    own: Settings,
) -> None:
    """Killed between marking the served night and switching away from it: the next
    publish finds the night served though marked, and removes the mark, so a later
    rollback still returns to that night instead of skipping it forever."""
    for build_id in (1, 2):
        change_build(own, drop_every=3 + build_id)
        publish(own, RUN_DATE, build_id, progress=quiet)
    killed = subprocess.run(
        [sys.executable, "-c", ROLLBACK_KILLER], env=env_of(own), cwd=PROJECT_ROOT, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    assert served_night(own) == 2
    assert [s.build_id for s in publishing._all_snapshots(own) if s.rolled_back] == [2]

    lines: list[str] = []
    publish(own, RUN_DATE, 3, progress=lines.append)

    assert any("is served although marked rolled back from" in line for line in lines)
    assert [(s.build_id, s.rolled_back) for s in snapshots(own)] == [
        (1, False),
        (2, False),
        (3, False),
    ]
    assert rollback(own, progress=quiet).build_id == 2
    assert served_night(own) == 2
