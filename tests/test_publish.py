"""Publishing the build database as the served one: real DuckDB files, real processes.

Every test publishes a private copy of the session's built database into its own
warehouse directory, so tests can change the build between publishes."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cjm_pipeline import publish as publishing
from cjm_pipeline.publish import PublishError, prune, publish, rollback, served_info, snapshots
from cjm_pipeline.settings import PROJECT_ROOT, Settings
from tests.conftest import MARTS, RUN_DATE, quiet


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


def test_publish_serves_a_stamped_copy_with_parquet(own: Settings) -> None:
    expected = mart_counts(own.build_path)

    result = publish(own, RUN_DATE, 7, progress=quiet)

    served = own.warehouse_path
    assert result.served == served
    assert os.path.samefile(served, result.snapshot)
    assert result.snapshot.parent == own.snapshots_dir
    assert result.bytes == served.stat().st_size
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


def block_parquet_dir(settings: Settings) -> None:
    """A file where the Parquet folder should be: fails after the snapshot is copied."""
    os.replace(settings.parquet_dir, settings.warehouse_dir / "parquet-aside")
    settings.parquet_dir.write_text("in the way")


def unblock_parquet_dir(settings: Settings) -> None:
    settings.parquet_dir.unlink()
    os.replace(settings.warehouse_dir / "parquet-aside", settings.parquet_dir)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (corrupt_build, "cannot open the build database"),
        (drop_a_mart, "has no table fct_sessions"),
        (block_parquet_dir, "is unchanged; fix the cause"),
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
    assert [s.build_id for s in snapshots(own)] == [1]
    if damage is block_parquet_dir:
        unblock_parquet_dir(own)
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

publish(Settings(), date.fromisoformat(sys.argv[1]), 2, progress=die_at(sys.argv[2]))
"""


@pytest.mark.parametrize("step", ["copied", "stamped", "exported"])
def test_a_killed_publish_leaves_the_served_file_as_it_was(own: Settings, step: str) -> None:
    publish(own, RUN_DATE, 1, progress=quiet)
    served_sha = sha256(own.warehouse_path)
    env = {
        **os.environ,
        "CJM_BUILD_PATH": str(own.build_path),
        "CJM_WAREHOUSE_PATH": str(own.warehouse_path),
    }

    killed = subprocess.run(
        [sys.executable, "-c", KILLER, RUN_DATE.isoformat(), step],
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
    )

    assert killed.returncode == -signal.SIGKILL
    assert temp_files(own), "the kill should have left temporary files behind"
    assert sha256(own.warehouse_path) == served_sha
    assert served_build_id(own) == 1
    publish(own, RUN_DATE, 3, progress=quiet)
    assert temp_files(own) == []
    assert [s.build_id for s in snapshots(own)] == [1, 3]
    folders = sorted(p.name for p in own.parquet_dir.iterdir() if p.name != "current")
    assert folders == [s.parquet_name for s in snapshots(own)]
    assert served_build_id(own) == 3


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
    folders = sorted(p.name for p in own.parquet_dir.iterdir() if p.name != "current")
    assert folders == [s.parquet_name for s in snapshots(own)]

    rollback(own, progress=quiet)
    own = own.model_copy(update={"keep_snapshots": 1})
    assert prune(own, progress=quiet) == []
    assert [(s.build_id, s.is_served) for s in snapshots(own)] == [(3, True), (4, False)]
    assert served_build_id(own) == 3
    assert (own.parquet_dir / "current" / "fct_journeys.parquet").exists()


def test_a_second_publish_at_the_same_time_is_refused(own: Settings) -> None:
    own.snapshots_dir.mkdir(parents=True)
    with (own.snapshots_dir / publishing.LOCK_NAME).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(PublishError, match="another publish or rollback"):
            publish(own, RUN_DATE, 1, progress=quiet)
    assert not own.warehouse_path.exists()


def test_a_wal_next_to_the_served_file_stops_publishing(own: Settings) -> None:
    publish(own, RUN_DATE, 1, progress=quiet)
    served_sha = sha256(own.warehouse_path)
    publishing.wal_path(own.warehouse_path).write_bytes(b"written by a read-write reader")

    with pytest.raises(PublishError, match="opened the served database read-write"):
        publish(own, RUN_DATE, 2, progress=quiet)
    assert sha256(own.warehouse_path) == served_sha


def test_without_hard_links_the_served_file_is_a_copy_still_recognised(
    own: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*_: object) -> None:
        raise OSError(errno.EPERM, "hard links not supported here")

    monkeypatch.setattr(publishing.os, "link", no_links)
    for build_id in (1, 2):
        publish(own, RUN_DATE, build_id, progress=quiet)

    newest = snapshots(own)[-1]
    assert not os.path.samefile(own.warehouse_path, newest.path)
    assert sha256(own.warehouse_path) == sha256(newest.path)
    assert newest.is_served
    assert rollback(own, progress=quiet).build_id == 1
    assert served_build_id(own) == 1


def test_snapshot_names_sort_by_publish_time_not_run_date(own: Settings) -> None:
    publish(own, RUN_DATE, 1, progress=quiet)
    publish(own, date(2026, 10, 2), 2, progress=quiet)  # a backfill of an earlier date

    assert [s.build_id for s in snapshots(own)] == [1, 2]
    assert snapshots(own)[-1].is_served
    assert rollback(own, progress=quiet).run_date == RUN_DATE
