"""Publishing: the validated build database becomes the served one, atomically.

What lives where (all under the directory of ``settings.warehouse_path``)::

    cjm.duckdb                                   served: a hard link to one snapshot
    snapshots/cjm-<published>-<run_date>-b<build>.duckdb    one per publish, oldest first
    snapshots/<snapshot>.rolled-back             marker: ``rollback`` moved away from it
    parquet/<snapshot without .duckdb>/<mart>.parquet       the marts of each snapshot
    parquet/current -> <snapshot without .duckdb>           the served snapshot's marts

A publish copies the checkpointed build database into a new snapshot, stamps the copy
with a ``cjm_publish`` table (build id, run date, time, snapshot name, and
``mart_rows``: a map from every mart to its row count),
exports its marts as Parquet, and only then swaps the served path over with one
``os.replace`` (and ``current`` with another). Until then it writes temporary names,
renamed to final ones only once complete, so a publish that fails or is killed leaves
the served file and ``current`` as they were; the next publish or rollback deletes the
temporary leftovers. (Killed between those renames and the swap, it leaves a complete
snapshot newer than the served one: listed, pruned in turn, never served by rollback.)

Readers open the served path read-only and keep the inode they opened: a reader that
was open during a publish goes on reading the previous night until it reconnects
(DuckDB caches one database instance per path in a process, so every connection to the
path must be closed before a new one sees the new night). Tools reading Parquet should
resolve ``current`` once (``os.path.realpath``) and read every file from that folder.

The served file and its snapshot are one inode (a hard link): that is safe only
because nothing opens either read-write. A process that opened the served file
read-write would change the snapshot too, and leave ``cjm.duckdb.wal`` next to the
served path, which DuckDB refuses to replay onto any other file; publish and rollback
then stop with an error instead of breaking every reader.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from cjm_pipeline.settings import MARTS, Settings

# The BI contract: a build without every one of these is not published. Tables added
# later with one of MART_PREFIXES are counted and exported as well.
MART_PREFIXES: tuple[str, ...] = ("fct_", "dim_", "agg_")
PUBLISH_TABLE = "cjm_publish"
CURRENT = "current"
TMP_PREFIX = ".tmp-"
ROLLED_BACK_SUFFIX = ".rolled-back"
LOCK_NAME = ".publish.lock"
# The publish time leads the name so that names sort in publishing order, which is what
# "newest" (pruning) and "previous" (rollback) mean, even after a backfill of an older
# run date; microseconds keep two publishes in one second apart.
SNAPSHOT_NAME = re.compile(
    r"^cjm-(?P<published>\d{8}T\d{6}\.\d{6}Z)-(?P<run_date>\d{4}-\d{2}-\d{2})"
    r"-b(?P<build_id>\d+)\.duckdb$"
)
STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"


class PublishError(RuntimeError):
    """Publishing or rolling back failed; the message says where and what to do."""


@dataclass(frozen=True)
class Snapshot:
    name: str
    path: Path
    run_date: date
    build_id: int
    published_at: datetime
    is_served: bool = False
    rolled_back: bool = False

    @property
    def parquet_name(self) -> str:
        return self.name.removesuffix(".duckdb")


@dataclass(frozen=True)
class Stamp:
    """What ``cjm_publish`` says about a snapshot besides its mart counts."""

    name: str
    run_date: date
    build_id: int
    published_at: datetime
    fingerprint: str = ""  # of the settings, seeds and models the build was made with


@dataclass(frozen=True)
class PublishResult:
    snapshot: Path
    served: Path
    parquet: Path
    seconds: float
    bytes: int
    mart_rows: dict[str, int]
    steps: dict[str, float] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)


def snapshot_name(published_at: datetime, run_date: date, build_id: int) -> str:
    return f"cjm-{published_at:{STAMP_FORMAT}}-{run_date.isoformat()}-b{build_id:06d}.duckdb"


def parse_snapshot(path: Path) -> Snapshot | None:
    """The snapshot a file name describes, or None for any other file."""
    match = SNAPSHOT_NAME.match(path.name)
    if match is None:
        return None
    published = datetime.strptime(match["published"], STAMP_FORMAT).replace(tzinfo=UTC)
    rolled_back = path.with_name(path.name + ROLLED_BACK_SUFFIX).exists()
    return Snapshot(
        path.name,
        path,
        date.fromisoformat(match["run_date"]),
        int(match["build_id"]),
        published,
        rolled_back=rolled_back,
    )


def wal_path(database: Path) -> Path:
    return database.with_name(database.name + ".wal")


def sql_string(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_config(settings: Settings) -> dict[str, str]:
    return {
        "memory_limit": settings.duckdb_memory_limit,
        "threads": str(settings.duckdb_threads),
        # Mart rows have no meaningful order, and without it COPY streams in parallel.
        "preserve_insertion_order": "false",
    }


def fsync_path(path: Path) -> None:
    """Flush a file or a directory (its entries: renames, links) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(directory: Path, name: str) -> Path:
    return directory / f"{TMP_PREFIX}{os.getpid()}-{name}"


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def remove_temps(settings: Settings) -> list[Path]:
    """Delete what a failed or killed publish left behind (only called under the lock)."""
    served = settings.warehouse_path
    found = [
        *settings.snapshots_dir.glob(f"{TMP_PREFIX}*"),
        *settings.parquet_dir.glob(f"{TMP_PREFIX}*"),
        *served.parent.glob(f"{TMP_PREFIX}*-{served.name}"),
    ]
    for path in found:
        remove_path(path)
    return found


@contextmanager
def publish_lock(settings: Settings) -> Iterator[None]:
    """One publish or rollback at a time; the kernel drops the lock if the process dies."""
    settings.snapshots_dir.mkdir(parents=True, exist_ok=True)
    lock_file = settings.snapshots_dir / LOCK_NAME
    with lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise PublishError(
                f"another publish or rollback holds {lock_file}; wait for it to finish "
                "and try again"
            ) from exc
        yield


def check_keep(settings: Settings) -> int:
    if settings.keep_snapshots < 1:
        raise PublishError(
            f"CJM_KEEP_SNAPSHOTS={settings.keep_snapshots}: it counts the served snapshot, "
            "so it must be at least 1 (2 or more to be able to roll back)"
        )
    return settings.keep_snapshots


def check_served_wal(served: Path) -> None:
    """A WAL next to the served path belongs to the file being replaced: DuckDB refuses
    to replay it onto the new one, so every reader of the new night would fail."""
    wal = wal_path(served)
    if wal.exists():
        raise PublishError(
            f"{wal} exists: a process opened the served database read-write (readers must "
            "open it read_only), which also changed the snapshot it links to. Find and stop "
            f"that process (`lsof {served}`), move {wal} away, then publish again"
        )


def checkpoint_and_copy(build: Path, dest: Path, config: dict[str, str]) -> None:
    """Fold the build's WAL into its file, then copy the file while still holding
    DuckDB's exclusive lock, so no build can write into it mid-copy."""
    if not build.exists():
        raise PublishError(f"no build database at {build}: run `cjm build` first")
    try:
        con = duckdb.connect(str(build), config=config)
    except duckdb.Error as exc:
        raise PublishError(
            f"cannot open the build database {build}: {exc}. If a build is still running, "
            "wait for it; if the file is damaged, rebuild it with "
            "`cjm build --date <run date> --full-refresh`"
        ) from exc
    try:
        con.execute("checkpoint")
        if wal_path(build).exists():
            raise PublishError(
                f"{wal_path(build)} is still there after a checkpoint of {build}: another "
                "connection may hold a transaction open; stop it and publish again"
            )
        shutil.copyfile(build, dest)
    finally:
        con.close()


def mart_tables(con: duckdb.DuckDBPyConnection, where: Path) -> list[str]:
    """The contract's marts, then any other fct_/dim_/agg_ tables, by name."""
    found = {
        name
        for (name,) in con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = current_database() and table_schema = 'main' "
            "and table_type = 'BASE TABLE'"
        ).fetchall()
    }
    missing = [mart for mart in MARTS if mart not in found]
    if missing:
        raise PublishError(
            f"the build database {where} has no table {', '.join(missing)}: a build that "
            "did not finish every mart is not published; run `cjm build` again"
        )
    extra = sorted(name for name in found - set(MARTS) if name.startswith(MART_PREFIXES))
    return [*MARTS, *extra]


def stamp_snapshot(
    path: Path, source: Path, stamp: Stamp, config: dict[str, str]
) -> dict[str, int]:
    """Add ``cjm_publish`` (one row saying what this file is) and return the mart counts."""
    with duckdb.connect(str(path), config=config) as con:
        tables = mart_tables(con, source)
        counts = {
            t: con.execute(f"select count(*) from {sql_name(t)}").fetchone()[0] for t in tables
        }
        con.execute(f"drop table if exists {PUBLISH_TABLE}")
        # A map rather than a column per mart: the table keeps one schema as marts come.
        con.execute(
            f"create table {PUBLISH_TABLE} as select ?::bigint as build_id, ?::date as run_date, "
            "?::timestamp as published_at, ?::varchar as snapshot, ?::varchar as fingerprint, "
            "map(?::varchar[], ?::bigint[]) as mart_rows",
            [
                stamp.build_id,
                stamp.run_date,
                stamp.published_at.replace(tzinfo=None),
                stamp.name,
                stamp.fingerprint,
                list(counts),
                list(counts.values()),
            ],
        )
        con.execute("checkpoint")
    if wal_path(path).exists():
        raise PublishError(f"{wal_path(path)} was left after stamping {path}; publish again")
    return counts


def export_parquet(database: Path, folder: Path, tables: list[str], config: dict[str, str]) -> int:
    """Write each table of ``database`` to ``folder/<table>.parquet``; returns bytes written."""
    folder.mkdir(parents=True)
    with duckdb.connect(str(database), read_only=True, config=config) as con:
        for table in [*tables, PUBLISH_TABLE]:
            target = folder / f"{table}.parquet"
            con.execute(
                f"copy {sql_name(table)} to {sql_string(target)} (format parquet, compression zstd)"
            )
    written = 0
    for file in folder.iterdir():
        fsync_path(file)
        written += file.stat().st_size
    fsync_path(folder)
    return written


def publish_parquet(
    database: Path, parquet_dir: Path, name: str, tables: list[str], config: dict[str, str]
) -> tuple[Path, int]:
    """Export under a temporary name, then rename: a folder with a final name is complete."""
    parquet_dir.mkdir(parents=True, exist_ok=True)
    staging = temp_path(parquet_dir, name)
    written = export_parquet(database, staging, tables, config)
    final = parquet_dir / name
    os.replace(staging, final)
    fsync_path(parquet_dir)
    return final, written


def serve(snapshot: Path, served: Path) -> bool:
    """Make ``served`` the snapshot with one atomic rename; True if it is a hard link."""
    check_served_wal(served)
    staging = temp_path(served.parent, served.name)
    staging.unlink(missing_ok=True)
    try:
        os.link(snapshot, staging)
        linked = True
    except OSError as exc:
        if exc.errno not in {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.EOPNOTSUPP}:
            raise
        # No hard links here (some network or FUSE file systems): serve a copy instead,
        # recognised later by the snapshot name stamped inside it.
        shutil.copyfile(snapshot, staging)
        fsync_path(staging)
        linked = False
    os.replace(staging, served)
    fsync_path(served.parent)
    return linked


def point_current(parquet_dir: Path, folder_name: str) -> None:
    staging = temp_path(parquet_dir, CURRENT)
    staging.unlink(missing_ok=True)
    # A relative target keeps working if the warehouse directory is moved or mounted
    # elsewhere.
    os.symlink(folder_name, staging)
    os.replace(staging, parquet_dir / CURRENT)
    fsync_path(parquet_dir)


def served_info(path: Path) -> dict[str, object]:
    """The ``cjm_publish`` row of a served (or snapshot) file, read-only: build_id,
    run_date, published_at (UTC), snapshot (its name) and mart_rows (mart -> rows)."""
    if not path.exists():
        raise PublishError(f"no database at {path}: nothing has been published yet")
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            cursor = con.execute(f"select * from {PUBLISH_TABLE}")
            names = [column[0] for column in cursor.description]
            row = cursor.fetchone()
    except duckdb.CatalogException as exc:
        raise PublishError(
            f"{path} has no {PUBLISH_TABLE} table: it was not written by a publish (`cjm run`)"
        ) from exc
    values = dict(zip(names, row, strict=True))
    values["published_at"] = values["published_at"].replace(tzinfo=UTC)
    return values


def served_snapshot_name(served: Path, paths: list[Path]) -> str | None:
    """Which snapshot is served: the one sharing its inode, else the one named inside it
    (when the file system could not hard-link and the served file is a copy)."""
    if not served.exists():
        return None
    for path in paths:
        if os.path.samefile(path, served):
            return path.name
    try:
        name = served_info(served)["snapshot"]
    except (PublishError, duckdb.Error):
        return None
    return name if any(path.name == name for path in paths) else None


def snapshots(settings: Settings) -> list[Snapshot]:
    """Published snapshots, oldest first, with the served one marked."""
    if not settings.snapshots_dir.is_dir():
        return []
    paths = sorted(p for p in settings.snapshots_dir.iterdir() if SNAPSHOT_NAME.match(p.name))
    served = served_snapshot_name(settings.warehouse_path, paths)
    listing = [parse_snapshot(path) for path in paths]
    return [replace(snap, is_served=snap.name == served) for snap in listing if snap]


def delete_snapshot(snapshot: Snapshot, parquet_dir: Path) -> None:
    # The file goes first: a folder without its snapshot is an orphan pruned later, while
    # a snapshot without its folder would be re-exported on rollback.
    snapshot.path.unlink(missing_ok=True)
    for leftover in (snapshot.path.name + ROLLED_BACK_SUFFIX, snapshot.path.name + ".wal"):
        snapshot.path.with_name(leftover).unlink(missing_ok=True)
    remove_path(parquet_dir / snapshot.parquet_name)


def prune_unlocked(settings: Settings) -> list[str]:
    listing = snapshots(settings)
    keep = {snap.name for snap in listing[-check_keep(settings) :]}
    keep |= {snap.name for snap in listing if snap.is_served}
    gone = [snap for snap in listing if snap.name not in keep]
    for snap in gone:
        delete_snapshot(snap, settings.parquet_dir)
    # Parquet folders whose snapshot was deleted by a pruning that did not finish.
    kept_folders = {snap.parquet_name for snap in listing if snap.name in keep}
    current = settings.parquet_dir / CURRENT
    if current.is_symlink():
        kept_folders.add(os.readlink(current))
    if settings.parquet_dir.is_dir():
        for folder in settings.parquet_dir.iterdir():
            if SNAPSHOT_NAME.match(folder.name + ".duckdb") and folder.name not in kept_folders:
                remove_path(folder)
    return [snap.name for snap in gone]


def prune(settings: Settings, progress: Callable[[str], None] = print) -> list[str]:
    """Keep the newest ``keep_snapshots`` snapshots and the served one; returns the deleted."""
    with publish_lock(settings):
        gone = prune_unlocked(settings)
    progress(f"pruned {len(gone)} snapshot(s)" + (f": {', '.join(gone)}" if gone else ""))
    return gone


def prepare_snapshot(
    settings: Settings,
    staging: Path,
    stamp: Stamp,
    steps: dict[str, float],
    progress: Callable[[str], None],
) -> tuple[dict[str, int], Path]:
    """Everything before the swap: the stamped copy at ``staging`` and its Parquet folder.
    Returns the mart counts and the folder."""
    config = duckdb_config(settings)
    mark = time.perf_counter()
    checkpoint_and_copy(settings.build_path, staging, config)
    steps["copy"] = time.perf_counter() - mark
    progress(f"  copied {staging.stat().st_size / 1e6:,.0f} MB in {steps['copy']:.1f} s")

    mark = time.perf_counter()
    counts = stamp_snapshot(staging, settings.build_path, stamp, config)
    fsync_path(staging)
    steps["stamp"] = time.perf_counter() - mark
    progress(f"  stamped {PUBLISH_TABLE}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))

    mark = time.perf_counter()
    folder_name = stamp.name.removesuffix(".duckdb")
    folder, written = publish_parquet(
        staging, settings.parquet_dir, folder_name, list(counts), config
    )
    steps["parquet"] = time.perf_counter() - mark
    progress(
        f"  exported {len(counts) + 1} Parquet files ({written / 1e6:,.1f} MB) "
        f"in {steps['parquet']:.1f} s"
    )
    return counts, folder


def publish(
    settings: Settings,
    run_date: date,
    build_id: int,
    progress: Callable[[str], None] = print,
    fingerprint: str = "",
) -> PublishResult:
    """Publish the build database as the served one (see the module docstring).

    Raises PublishError when the build is missing, locked, damaged or lacks a mart, when
    a step before the swap fails (disk full, a path in the way), when another publish
    runs, or when the served file has a WAL; the served file, its snapshots and
    ``parquet/current`` are then as they were.
    """
    check_keep(settings)
    if settings.build_path.resolve() == settings.warehouse_path.resolve():
        raise PublishError(
            f"CJM_BUILD_PATH and CJM_WAREHOUSE_PATH are both {settings.build_path}: the build "
            "must write to its own file, which publish copies to the served path"
        )
    began = time.perf_counter()
    steps: dict[str, float] = {}
    served = settings.warehouse_path
    published_at = datetime.now(UTC)
    name = snapshot_name(published_at, run_date, build_id)
    stamp = Stamp(name, run_date, build_id, published_at, fingerprint)
    snapshot = settings.snapshots_dir / name
    progress(f"publish build {build_id} as of {run_date} from {settings.build_path}")
    with publish_lock(settings):
        stale = remove_temps(settings)
        if stale:
            progress(f"  removed {len(stale)} temporary file(s) of an earlier failed publish")
        check_served_wal(served)
        staging = temp_path(settings.snapshots_dir, name)
        try:
            try:
                counts, folder = prepare_snapshot(settings, staging, stamp, steps, progress)
            except (OSError, duckdb.Error) as exc:
                raise PublishError(
                    f"publishing build {build_id} from {settings.build_path} failed: {exc}. "
                    f"The served file {served} is unchanged; fix the cause and publish again"
                ) from exc
            size = staging.stat().st_size

            mark = time.perf_counter()
            os.replace(staging, snapshot)
            fsync_path(settings.snapshots_dir)
            linked = serve(snapshot, served)
            point_current(settings.parquet_dir, folder.name)
            steps["swap"] = time.perf_counter() - mark
            progress(
                f"  serving {served} -> {snapshot}" + ("" if linked else " (a copy: no hard links)")
            )

            mark = time.perf_counter()
            pruned = prune_unlocked(settings)
            steps["prune"] = time.perf_counter() - mark
        finally:
            remove_temps(settings)
    if pruned:
        progress(f"  pruned {', '.join(pruned)}")
    seconds = time.perf_counter() - began
    progress(f"published build {build_id} ({size / 1e6:,.0f} MB) in {seconds:.1f} s")
    return PublishResult(snapshot, served, folder, seconds, size, counts, steps, pruned)


def ensure_parquet(snapshot: Snapshot, settings: Settings) -> Path:
    """The snapshot's Parquet folder, exported again if it was lost."""
    folder = settings.parquet_dir / snapshot.parquet_name
    if folder.is_dir():
        return folder
    with duckdb.connect(str(snapshot.path), read_only=True) as con:
        tables = mart_tables(con, snapshot.path)
    return publish_parquet(
        snapshot.path, settings.parquet_dir, snapshot.parquet_name, tables, duckdb_config(settings)
    )[0]


def rollback(settings: Settings, progress: Callable[[str], None] = print) -> Snapshot:
    """Serve the snapshot published before the served one and return it.

    The snapshot rolled back from is marked, so a later rollback (even after new
    publishes) never serves it again; repeated rollbacks walk further back. Raises
    PublishError when nothing older is kept or the served file is not a snapshot.
    """
    served = settings.warehouse_path
    with publish_lock(settings):
        remove_temps(settings)
        listing = snapshots(settings)
        current = next((snap for snap in listing if snap.is_served), None)
        if current is None:
            raise PublishError(
                f"the served file {served} is not one of the snapshots in "
                f"{settings.snapshots_dir}: publish a build first"
            )
        older = [s for s in listing if s.name < current.name and not s.rolled_back]
        if not older:
            raise PublishError(
                f"nothing to roll back to: {current.name} is the oldest snapshot left in "
                f"{settings.snapshots_dir} that was not rolled back from "
                f"(CJM_KEEP_SNAPSHOTS={settings.keep_snapshots})"
            )
        target = older[-1]
        check_served_wal(served)
        folder = ensure_parquet(target, settings)
        marker = current.path.with_name(current.name + ROLLED_BACK_SUFFIX)
        # Marked before the swap: if this dies in between, running rollback again still
        # moves away from the snapshot it was asked to leave.
        marker.write_text(datetime.now(UTC).isoformat() + "\n")
        try:
            serve(target.path, served)
        except BaseException:
            marker.unlink(missing_ok=True)
            raise
        point_current(settings.parquet_dir, folder.name)
        remove_temps(settings)
    progress(
        f"rolled back from build {current.build_id} ({current.run_date}) to build "
        f"{target.build_id} ({target.run_date}): serving {served} -> {target.path}"
    )
    return replace(target, is_served=True)
