"""Publishing: the validated build database becomes the served one, atomically.

What lives where (all under the directory of ``settings.warehouse_path``)::

    snapshots/<snapshot>/cjm.duckdb               one folder per publish, oldest first
    snapshots/<snapshot>/parquet/<mart>.parquet   its marts as Parquet
    snapshots/<snapshot>/pending                  marker: written by a publish, not served yet
    snapshots/<snapshot>/rolled-back              marker: ``rollback`` moved away from it
    served -> snapshots/<snapshot>                which snapshot is served: the one switch
    cjm.duckdb -> served/cjm.duckdb               the served database (a fixed link)
    parquet/current -> ../served/parquet          the served marts (a fixed link)

    <snapshot> = cjm-<published at>-<run date>-b<build id>

A publish copies the checkpointed build database into a temporary folder, stamps the
copy with a ``cjm_publish`` table (build id, run date, time, snapshot name, fingerprint,
and ``mart_rows``: a map from every mart to its row count) and a
``staging.cjm_lake_inventory`` table (the lake partitions the build read), exports the
marts as Parquet next to it, marks it ``pending``, renames the folder into
``snapshots/``, and only then switches ``served`` with one atomic ``os.replace``, after
which the mark is removed. The served database and ``parquet/current`` both go through
``served``, so that one rename switches both: a reader never finds the database of one
night beside the Parquet files of another.

The marts, the dimensions and ``cjm_publish`` are in the schema ``main``, where a BI
tool looks first; the staging views, intermediate tables and rule seeds the build keeps
beside them are in the schemas ``staging``, ``intermediate`` and ``rules``. What a
build of the earlier one-schema layout left in ``main`` is dropped by the first publish
after the layers moved (see ``drop_moved_relations``).

Every kill point leaves a state the next publish, rollback or prune repairs (each starts
by repairing, under the night lock): temporary folders are deleted; a ``pending``
snapshot that is not served was never served (a publish killed before its switch): it
is never listed, never served by a rollback, and deleted; the marks a kill left on the
served snapshot (``pending`` after its switch, ``rolled-back`` before a rollback's) are
removed; a missing fixed link is made again. Only a snapshot marked ``pending`` is ever
deleted as never served, so neither a clock running behind (names are times) nor a
``served`` link that is lost can make a served night look like one never served; when
nothing is served, nothing is deleted, and ``rollback`` serves the newest good snapshot.
A snapshot is deleted by renaming it to a temporary name first, so none is ever seen
half deleted.

Readers open the served path read-only and keep the file they opened: a reader that was
open during a publish goes on reading the previous night until it reconnects (DuckDB
caches one database instance per path in a process, so every connection to the path
must be closed before a new one sees the new night). Tools reading Parquet should
resolve ``current`` once (``os.path.realpath``) and read every file from that folder.

A process that opened the served file read-write would change the snapshot itself, and
leave ``cjm.duckdb.wal`` next to the path it opened, which DuckDB refuses to replay onto
any other file; publish and rollback then stop with an error instead of breaking every
reader.

Warehouses published by earlier versions (one ``snapshots/<snapshot>.duckdb`` file per
night, hard-linked as the served file) are moved to this layout by the first publish,
rollback or prune, without copying a database.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from cjm_pipeline.files import fsync_path
from cjm_pipeline.lock import night_lock
from cjm_pipeline.settings import MARTS, Settings

# The BI contract: a build without every one of these is not published. Tables added
# later with one of MART_PREFIXES are counted and exported as well.
MART_PREFIXES: tuple[str, ...] = ("fct_", "dim_", "agg_")
PUBLISH_TABLE = "cjm_publish"
INVENTORY_TABLE = "cjm_lake_inventory"
# The schemas of the layers under the marts (models/macros/schemas.sql): staging views,
# intermediate tables and the rule seeds. The marts, the dimensions and cjm_publish are in
# main, the schema a BI tool opens by default.
LAYER_SCHEMAS: tuple[str, ...] = ("staging", "intermediate", "rules")
# Beside the staging views over the lake, out of the marts' schema; snapshots published
# before it moved there have it in main, which ``inventory_name`` still finds.
INVENTORY_SCHEMA = "staging"
DB_FILE = "cjm.duckdb"
PARQUET = "parquet"
SERVED = "served"
CURRENT = "current"
TMP_PREFIX = ".tmp-"
ROLLED_BACK = "rolled-back"
PENDING = "pending"
# The publish time leads the name so that names sort in publishing order, which is what
# "newest" (pruning) and "previous" (rollback) mean, even after a backfill of an older
# run date; microseconds keep two publishes in one second apart, and a publish is never
# named before a snapshot already there (see ``publish_time``).
SNAPSHOT_NAME = re.compile(
    r"^cjm-(?P<published>\d{8}T\d{6}\.\d{6}Z)-(?P<run_date>\d{4}-\d{2}-\d{2})"
    r"-b(?P<build_id>\d+)$"
)
LEGACY_SUFFIX = ".duckdb"
LEGACY_ROLLED_BACK = ".rolled-back"
STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"


class PublishError(RuntimeError):
    """Publishing or rolling back failed; the message says where and what to do."""


class DamagedDatabase(PublishError):
    """A published database cannot be read; the message names it and what to do."""


@dataclass(frozen=True)
class Snapshot:
    name: str
    folder: Path
    run_date: date
    build_id: int
    published_at: datetime
    is_served: bool = False
    rolled_back: bool = False
    pending: bool = False  # its publish had not switched to it (yet, or ever)

    @property
    def path(self) -> Path:
        """The snapshot's database."""
        return self.folder / DB_FILE

    @property
    def parquet(self) -> Path:
        return self.folder / PARQUET


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
    snapshot: Path  # the snapshot's folder
    served: Path
    parquet: Path
    seconds: float
    bytes: int
    mart_rows: dict[str, int]
    steps: dict[str, float] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)


def snapshot_name(published_at: datetime, run_date: date, build_id: int) -> str:
    return f"cjm-{published_at:{STAMP_FORMAT}}-{run_date.isoformat()}-b{build_id:06d}"


def parse_snapshot(folder: Path, complete: bool = True) -> Snapshot | None:
    """The snapshot a folder holds, or None for anything else (a folder without its
    database is not a snapshot, unless ``complete`` is False)."""
    match = SNAPSHOT_NAME.match(folder.name)
    if match is None or (complete and not (folder / DB_FILE).is_file()):
        return None
    published = datetime.strptime(match["published"], STAMP_FORMAT).replace(tzinfo=UTC)
    return Snapshot(
        folder.name,
        folder,
        date.fromisoformat(match["run_date"]),
        int(match["build_id"]),
        published,
        rolled_back=(folder / ROLLED_BACK).exists(),
        pending=(folder / PENDING).exists(),
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


def temp_path(directory: Path, name: str) -> Path:
    return directory / f"{TMP_PREFIX}{os.getpid()}-{name}"


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def served_link(settings: Settings) -> Path:
    """The symlink whose one rename switches the served night."""
    return settings.warehouse_dir / SERVED


def served_name(settings: Settings) -> str | None:
    """The name of the snapshot ``served`` points at (whether or not it is whole), or
    None when nothing is served (never yet, or the link was lost or points elsewhere)."""
    link = served_link(settings)
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    if target.is_absolute():  # made by hand: any path to this warehouse's snapshots will do
        inside = target.parent.resolve() == settings.snapshots_dir.resolve()
    else:
        inside = target.parent == Path(settings.snapshots_dir.name)
    return target.name if inside and SNAPSHOT_NAME.match(target.name) else None


def _all_snapshots(settings: Settings) -> list[Snapshot]:
    if not settings.snapshots_dir.is_dir():
        return []
    served = served_name(settings)
    found = (parse_snapshot(p) for p in sorted(settings.snapshots_dir.iterdir()))
    return [replace(s, is_served=s.name == served) for s in found if s is not None]


def never_served(snapshot: Snapshot) -> bool:
    """Whether a publish wrote the snapshot and stopped before serving it. The ``pending``
    mark is removed once it is served, and by ``repair`` if a kill came in between."""
    return snapshot.pending and not snapshot.is_served


def snapshots(settings: Settings) -> list[Snapshot]:
    """Published snapshots, oldest first, with the served one marked. Snapshots that
    were never served (a publish killed before its switch) are not listed."""
    return [s for s in _all_snapshots(settings) if not never_served(s)]


def snapshot_build_ids(settings: Settings) -> list[int]:
    """The build ids of every snapshot on disk, served or not."""
    if not settings.snapshots_dir.is_dir():
        return []
    names = (p.name.removesuffix(LEGACY_SUFFIX) for p in settings.snapshots_dir.iterdir())
    return [int(m["build_id"]) for m in map(SNAPSHOT_NAME.match, names) if m]


# Repairs: everything a failed or killed publish, rollback or prune can leave ---------------


def remove_temps(settings: Settings) -> list[Path]:
    """Delete what a failed or killed publish left behind (only called under the lock)."""
    found = [
        *settings.snapshots_dir.glob(f"{TMP_PREFIX}*"),
        *settings.snapshots_dir.glob(f"*/{TMP_PREFIX}*"),
        *settings.warehouse_dir.glob(f"{TMP_PREFIX}*"),
        *settings.parquet_dir.glob(f"{TMP_PREFIX}*"),
    ]
    for path in found:
        remove_path(path)
    return found


def link(target: str, at: Path) -> None:
    """Make ``at`` a symlink to ``target`` with one atomic rename. A relative target
    keeps working if the warehouse directory is moved or mounted elsewhere."""
    staging = temp_path(at.parent, at.name)
    staging.unlink(missing_ok=True)
    os.symlink(target, staging)
    os.replace(staging, at)
    fsync_path(at.parent)


def ensure_links(settings: Settings) -> None:
    """The fixed links through ``served``: made once, after the first switch (before
    it they would point nowhere), and again if one goes missing."""
    if served_name(settings) is None:
        return
    fixed = {
        settings.warehouse_path: f"{SERVED}/{DB_FILE}",
        settings.parquet_dir / CURRENT: f"../{SERVED}/{PARQUET}",
    }
    settings.parquet_dir.mkdir(parents=True, exist_ok=True)
    for path, target in fixed.items():
        if not (path.is_symlink() and os.readlink(path) == target):
            link(target, path)


def switch(settings: Settings, snapshot: str) -> None:
    """Serve ``snapshot``: one rename of ``served``, which both fixed links go through."""
    link(f"{settings.snapshots_dir.name}/{snapshot}", served_link(settings))
    ensure_links(settings)


def delete_snapshot(snapshot: Snapshot, settings: Settings) -> None:
    # Renamed first: a deletion killed midway leaves a temporary folder, never a
    # snapshot with part of its files.
    doomed = temp_path(settings.snapshots_dir, snapshot.name)
    os.replace(snapshot.folder, doomed)
    fsync_path(settings.snapshots_dir)
    shutil.rmtree(doomed)


def repair(settings: Settings, progress: Callable[[str], None] = print) -> None:
    """Bring the warehouse to a consistent state (under the night lock)."""
    migrate_legacy(settings, progress)
    stale = remove_temps(settings)
    if stale:
        progress(f"  removed {len(stale)} temporary file(s) of an earlier failed publish")
    served = served_name(settings)
    if served is None:
        return  # nothing to tell a snapshot never served from one served: delete nothing
    _clear_marks_of_served(settings.snapshots_dir / served, progress)
    for orphan in filter(never_served, _all_snapshots(settings)):
        delete_snapshot(orphan, settings)
        progress(f"  deleted {orphan.name}: a publish stopped before serving it")
    ensure_links(settings)


def _clear_marks_of_served(folder: Path, progress: Callable[[str], None]) -> None:
    """The served snapshot holds a mark only when a kill came between it and a switch:
    ``pending`` after a publish switched to it, ``rolled-back`` before a rollback
    switched away from it (that rollback did not happen: the night stays served)."""
    if (folder / PENDING).exists():
        (folder / PENDING).unlink()
        fsync_path(folder)
    if (folder / ROLLED_BACK).exists():
        (folder / ROLLED_BACK).unlink()
        fsync_path(folder)
        progress(
            f"  {folder.name} is served although marked rolled back from: a rollback stopped "
            "before switching away from it; the mark is removed (run `cjm rollback` again to "
            "leave it)"
        )


def migrate_legacy(settings: Settings, progress: Callable[[str], None] = print) -> None:
    """Move snapshots of the earlier layout (``snapshots/<snapshot>.duckdb``, its
    Parquet in ``parquet/<snapshot>/``) into folders, by hard links and renames. Each
    step can be repeated, so a migration killed midway finishes the next time."""
    folder_of = settings.snapshots_dir
    legacy = [
        p
        for p in (sorted(folder_of.iterdir()) if folder_of.is_dir() else [])
        if SNAPSHOT_NAME.match(p.name.removesuffix(LEGACY_SUFFIX))
        and p.name.endswith(LEGACY_SUFFIX)
        and p.is_file()
    ]
    if not legacy:
        return
    served = _legacy_served(settings, legacy)
    for path in legacy:
        name = path.name.removesuffix(LEGACY_SUFFIX)
        folder = folder_of / name
        folder.mkdir(exist_ok=True)
        if not (folder / DB_FILE).exists():
            _link_or_copy(path, folder / DB_FILE)
        old_parquet = settings.parquet_dir / name
        if old_parquet.is_dir() and not (folder / PARQUET).exists():
            os.replace(old_parquet, folder / PARQUET)
        marker = path.with_name(path.name + LEGACY_ROLLED_BACK)
        if marker.exists():
            os.replace(marker, folder / ROLLED_BACK)
        fsync_path(folder)
        path.unlink()  # last: until now the old file still names this snapshot
    if served is not None and served_name(settings) is None:
        link(f"{folder_of.name}/{served}", served_link(settings))
    for leftover in settings.parquet_dir.iterdir() if settings.parquet_dir.is_dir() else []:
        if SNAPSHOT_NAME.match(leftover.name) and leftover.is_dir():
            remove_path(leftover)  # Parquet of a snapshot pruned before the migration
    progress(f"  moved {len(legacy)} snapshot(s) to one folder each (database and Parquet)")


def _legacy_served(settings: Settings, legacy: list[Path]) -> str | None:
    served = settings.warehouse_path
    if not served.is_file() or served.is_symlink():
        return None
    folders = [p for p in settings.snapshots_dir.iterdir() if (p / DB_FILE).is_file()]
    for path in [*legacy, *(p / DB_FILE for p in folders)]:
        if os.path.samefile(path, served):
            return path.name.removesuffix(LEGACY_SUFFIX) if path in legacy else path.parent.name
    try:  # served as a copy (no hard links there): the stamp names it
        return str(served_info(served)["snapshot"]).removesuffix(LEGACY_SUFFIX)
    except PublishError:
        return None


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError as exc:
        if exc.errno not in {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.EOPNOTSUPP}:
            raise
        staging = temp_path(dest.parent, dest.name)
        shutil.copyfile(source, staging)
        fsync_path(staging)
        os.replace(staging, dest)


# Reading published databases ----------------------------------------------------------------


def served_info(path: Path, label: str = "served database") -> dict[str, object]:
    """The ``cjm_publish`` row of a served (or snapshot) file, read-only: build_id,
    run_date, published_at (UTC), snapshot (its name) and mart_rows (mart -> rows).
    Raises ``DamagedDatabase`` when the file cannot be read."""
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
    except duckdb.Error as exc:
        raise damaged(path, exc, label) from exc
    values = dict(zip(names, row, strict=True))
    values["published_at"] = values["published_at"].replace(tzinfo=UTC)
    return values


def damaged(
    path: Path, exc: BaseException | str, label: str = "served database"
) -> DamagedDatabase:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DamagedDatabase(
        f"the {label} {path} is damaged ({detail}): run `cjm rollback` to serve the newest "
        "good snapshot"
    )


def database_problem(path: Path, published: bool = True) -> str | None:
    """Why a database cannot be used, or None when it reads: it opens read-only and lists
    its tables, and a ``published`` one also has its stamp and every mart holds the rows
    stamped. (A damaged data block deeper in the file shows only at the query that
    reads it.)"""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            con.execute("select count(*) from duckdb_tables()").fetchall()
            if not published:
                return None
            (stamped,) = con.execute(f"select mart_rows from {PUBLISH_TABLE}").fetchone()
            for mart, rows in stamped.items():
                found = con.execute(f"select count(*) from {sql_name(mart)}").fetchone()[0]
                if found != rows:
                    return f"{mart} has {found:,} rows, {rows:,} when published"
    except duckdb.Error as exc:
        return str(exc).splitlines()[0]
    return None


def inventory_name(con: duckdb.DuckDBPyConnection) -> str | None:
    """The qualified name of the lake inventory in this database, if it has one."""
    found = con.execute(
        "select schema_name from duckdb_tables() where database_name = current_database() "
        "and table_name = ? order by schema_name = ? desc",
        [INVENTORY_TABLE, INVENTORY_SCHEMA],
    ).fetchall()
    return f"{sql_name(found[0][0])}.{sql_name(INVENTORY_TABLE)}" if found else None


def read_inventory(con: duckdb.DuckDBPyConnection) -> dict[str, list[object]] | None:
    """The lake partitions a published build read (None for snapshots without them)."""
    table = inventory_name(con)
    if table is None:
        return None
    rows = con.execute(f"select partition, bytes, rows, digest from {table}").fetchall()
    return {key: [size, count, digest] for key, size, count, digest in rows}


def read_published_build(path: Path) -> tuple[Stamp, dict[str, list[object]] | None]:
    """The stamp and lake inventory of a published database (to rebuild a build state)."""
    info = served_info(path)
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            lake = read_inventory(con)
    except duckdb.Error as exc:
        raise damaged(path, exc) from exc
    stamp = Stamp(
        str(info["snapshot"]),
        info["run_date"],
        int(info["build_id"]),
        info["published_at"],
        str(info.get("fingerprint") or ""),
    )
    return stamp, lake


# Publishing ---------------------------------------------------------------------------------


def check_keep(settings: Settings) -> int:
    if settings.keep_snapshots < 1:
        raise PublishError(
            f"CJM_KEEP_SNAPSHOTS={settings.keep_snapshots}: it counts the served snapshot, "
            "so it must be at least 1 (2 or more to be able to roll back)"
        )
    return settings.keep_snapshots


def check_served_wal(settings: Settings) -> None:
    """A WAL next to the served path belongs to the file being replaced: DuckDB refuses
    to replay it onto the new one, so every reader of the new night would fail."""
    served = settings.warehouse_path
    for wal in (wal_path(served), wal_path(served_link(settings) / DB_FILE)):
        if wal.exists():
            raise PublishError(
                f"{wal} exists: a process opened the served database read-write (readers "
                "must open it read_only), which also changed its snapshot. Find and stop "
                f"that process (`lsof {served}`), move {wal} away, then publish again"
            )


def checkpoint_and_copy(build: Path, dest: Path, config: dict[str, str]) -> list[str]:
    """Fold the build's WAL into its file, then copy the file while still holding
    DuckDB's exclusive lock, so no build can write into it mid-copy. What an earlier
    layout left in main is dropped first (see ``drop_moved_relations``; returned)."""
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
        moved = drop_moved_relations(con)
        con.execute("checkpoint")
        if wal_path(build).exists():
            raise PublishError(
                f"{wal_path(build)} is still there after a checkpoint of {build}: another "
                "connection may hold a transaction open; stop it and publish again"
            )
        shutil.copyfile(build, dest)
    finally:
        con.close()
    return moved


def drop_moved_relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Drop what a build of the earlier layout left in main: a table or view there whose
    name is also a relation of a layer schema (the layer now builds it there). Returns
    the names dropped."""
    in_schemas = ", ".join(sql_string(schema) for schema in LAYER_SCHEMAS)
    relations = (
        "select schema_name, table_name as name, 'table' as kind from duckdb_tables() "
        "where database_name = current_database() union all "
        "select schema_name, view_name, 'view' from duckdb_views() "
        "where database_name = current_database() and not internal"
    )
    moved = con.execute(
        f"with relations as ({relations}) select name, kind from relations "
        f"where schema_name = 'main' and name in (select name from relations "
        f"where schema_name in ({in_schemas})) order by kind = 'table', name"
    ).fetchall()
    for name, kind in moved:
        con.execute(f"drop {kind} main.{sql_name(name)}")
    return [name for name, _ in moved]


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
    path: Path,
    source: Path,
    stamp: Stamp,
    config: dict[str, str],
    lake: dict[str, list[object]] | None = None,
) -> dict[str, int]:
    """Add ``cjm_publish`` (one row saying what this file is) and, when given, the lake
    partitions the build read; return the mart counts."""
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
        while (old := inventory_name(con)) is not None:
            con.execute(f"drop table {old}")
        if lake is not None:
            inventory = f"{INVENTORY_SCHEMA}.{INVENTORY_TABLE}"
            con.execute(f"create schema if not exists {INVENTORY_SCHEMA}")
            con.execute(
                f"create table {inventory} (partition varchar, bytes bigint, rows bigint, "
                "digest varchar)"
            )
            con.executemany(
                f"insert into {inventory} values (?, ?, ?, ?)",
                [[key, *value] for key, value in sorted(lake.items())],
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


def prepare_snapshot(
    settings: Settings,
    staging: Path,
    stamp: Stamp,
    steps: dict[str, float],
    progress: Callable[[str], None],
    lake: dict[str, list[object]] | None = None,
) -> dict[str, int]:
    """Everything before the snapshot is named: the stamped copy and its Parquet in the
    folder ``staging``. Returns the mart counts."""
    config = duckdb_config(settings)
    database = staging / DB_FILE
    staging.mkdir(parents=True)
    mark = time.perf_counter()
    moved = checkpoint_and_copy(settings.build_path, database, config)
    if moved:
        progress(
            f"  dropped {len(moved)} relation(s) an earlier layout left in main, now built "
            f"in {', '.join(LAYER_SCHEMAS)}: {', '.join(moved)}"
        )
    steps["copy"] = time.perf_counter() - mark
    progress(f"  copied {database.stat().st_size / 1e6:,.0f} MB in {steps['copy']:.1f} s")

    mark = time.perf_counter()
    counts = stamp_snapshot(database, settings.build_path, stamp, config, lake)
    fsync_path(database)
    steps["stamp"] = time.perf_counter() - mark
    progress(f"  stamped {PUBLISH_TABLE}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))

    mark = time.perf_counter()
    written = export_parquet(database, staging / PARQUET, list(counts), config)
    (staging / PENDING).write_text(f"{stamp.name}\n")
    fsync_path(staging / PENDING)
    fsync_path(staging)
    steps["parquet"] = time.perf_counter() - mark
    progress(
        f"  exported {len(counts) + 1} Parquet files ({written / 1e6:,.1f} MB) "
        f"in {steps['parquet']:.1f} s"
    )
    return counts


def prune_unlocked(settings: Settings, progress: Callable[[str], None] = print) -> list[str]:
    listing = snapshots(settings)
    if not any(snap.is_served for snap in listing):
        # The served night is unknown (its link was lost): it may be any of them.
        progress("  pruned nothing: no snapshot is served (`cjm rollback` serves the newest)")
        return []
    keep = {snap.name for snap in listing[-check_keep(settings) :]}
    keep |= {snap.name for snap in listing if snap.is_served}
    gone = [snap for snap in listing if snap.name not in keep]
    for snap in gone:
        delete_snapshot(snap, settings)
        progress(f"  pruned {snap.name}")
    return [snap.name for snap in gone]


def prune(settings: Settings, progress: Callable[[str], None] = print) -> list[str]:
    """Keep the newest ``keep_snapshots`` snapshots and the served one; returns the deleted."""
    with night_lock(settings, "prune", progress=progress):
        repair(settings, progress)
        gone = prune_unlocked(settings, progress)
    progress(f"pruned {len(gone)} snapshot(s)")
    return gone


def publish(
    settings: Settings,
    run_date: date,
    build_id: int,
    progress: Callable[[str], None] = print,
    fingerprint: str = "",
    lake: dict[str, list[object]] | None = None,
) -> PublishResult:
    """Publish the build database as the served one (see the module docstring).

    ``lake`` is the plan's inventory of the lake partitions, kept in the snapshot so a
    rollback restores it with the build. Holds the night lock (taken again if the
    caller holds it; ``LockError`` at once if another process does). Raises
    PublishError when the build is missing, locked, damaged or lacks a mart, when a
    step before the switch fails (disk full, a path in the way), or when the served
    file has a WAL; what readers see is then as it was.
    """
    check_keep(settings)
    if settings.build_path.resolve() == settings.warehouse_path.resolve():
        raise PublishError(
            f"CJM_BUILD_PATH and CJM_WAREHOUSE_PATH are both {settings.build_path}: the build "
            "must write to its own file, which publish copies to the served path"
        )
    began = time.perf_counter()
    steps: dict[str, float] = {}
    progress(f"publish build {build_id} as of {run_date} from {settings.build_path}")
    with night_lock(settings, "publish", progress=progress):
        settings.snapshots_dir.mkdir(parents=True, exist_ok=True)
        repair(settings, progress)
        check_served_wal(settings)
        published_at = publish_time(settings)
        name = snapshot_name(published_at, run_date, build_id)
        stamp = Stamp(name, run_date, build_id, published_at, fingerprint)
        snapshot = settings.snapshots_dir / name
        staging = temp_path(settings.snapshots_dir, name)
        try:
            try:
                counts = prepare_snapshot(settings, staging, stamp, steps, progress, lake)
            except (OSError, duckdb.Error) as exc:
                raise PublishError(
                    f"publishing build {build_id} from {settings.build_path} failed: {exc}. "
                    f"What readers see of {settings.warehouse_path} is unchanged; fix the "
                    "cause and publish again"
                ) from exc
            size = (staging / DB_FILE).stat().st_size

            mark = time.perf_counter()
            os.replace(staging, snapshot)
            fsync_path(settings.snapshots_dir)
            progress(f"  snapshot {name} written")
            switch(settings, name)
            steps["swap"] = time.perf_counter() - mark
            progress(f"  serving {settings.warehouse_path} -> {snapshot / DB_FILE}")
            (snapshot / PENDING).unlink()
            fsync_path(snapshot)

            mark = time.perf_counter()
            pruned = prune_unlocked(settings, progress)
            steps["prune"] = time.perf_counter() - mark
        finally:
            remove_temps(settings)
    seconds = time.perf_counter() - began
    progress(f"published build {build_id} ({size / 1e6:,.0f} MB) in {seconds:.1f} s")
    return PublishResult(
        snapshot,
        settings.warehouse_path,
        snapshot / PARQUET,
        seconds,
        size,
        counts,
        steps,
        pruned,
    )


def publish_time(settings: Settings) -> datetime:
    """Now, or just after the newest snapshot's time if a clock ran behind the one that
    named it, so that names keep sorting in publishing order."""
    now = datetime.now(UTC)
    newest = max((s.published_at for s in _all_snapshots(settings)), default=None)
    return now if newest is None or now > newest else newest + timedelta(microseconds=1)


def ensure_parquet(snapshot: Snapshot, settings: Settings) -> Path:
    """The snapshot's Parquet folder, exported again if it was lost."""
    if snapshot.parquet.is_dir():
        return snapshot.parquet
    with duckdb.connect(str(snapshot.path), read_only=True) as con:
        tables = mart_tables(con, snapshot.path)
    staging = temp_path(snapshot.folder, PARQUET)
    export_parquet(snapshot.path, staging, tables, duckdb_config(settings))
    os.replace(staging, snapshot.parquet)
    fsync_path(snapshot.folder)
    return snapshot.parquet


def rollback(settings: Settings, progress: Callable[[str], None] = print) -> Snapshot:
    """Serve the newest good snapshot published before the served one and return it.

    The snapshot rolled back from is marked, so a later rollback (even after new
    publishes) never serves it again; repeated rollbacks walk further back. A snapshot
    that cannot be read is skipped (and named). The served one may itself be damaged:
    that is what a rollback is for. When nothing is served although snapshots are kept
    (the ``served`` link was lost, or an earlier layout's served file was damaged), the
    newest good one is served. Raises PublishError when nothing good and older is kept
    or nothing was ever published.
    """
    with night_lock(settings, "cjm rollback", progress=progress):
        repair(settings, progress)
        served = served_name(settings)
        listing = snapshots(settings)
        if served is None and not listing:
            raise PublishError(
                f"nothing is served from {settings.snapshots_dir} yet: publish a build first"
            )
        # The served snapshot, even when its database is gone.
        current = (
            None
            if served is None
            else parse_snapshot(settings.snapshots_dir / served, complete=False)
        )
        target, skipped = _rollback_target(listing, current)
        for snap, problem in skipped:
            progress(f"  skipped {snap.name}: it cannot be read ({problem})")
        if target is None:
            raise _nothing_to_roll_back_to(settings, current, len(skipped))
        check_served_wal(settings)
        ensure_parquet(target, settings)
        # Marked before the switch: the damaged ones passed over would otherwise look like
        # any other kept night. If this dies before the switch, the next repair finds the
        # served snapshot marked and removes that mark: no rollback happened.
        marked = [s.folder for s, _ in skipped]
        marked += [current.folder] if current is not None and current.folder.is_dir() else []
        for folder in marked:
            (folder / ROLLED_BACK).write_text(datetime.now(UTC).isoformat() + "\n")
            fsync_path(folder)
        if marked:
            progress(f"  marked {len(marked)} snapshot(s) rolled back from")
        try:
            switch(settings, target.name)
        except BaseException:
            for folder in marked:
                (folder / ROLLED_BACK).unlink(missing_ok=True)
            raise
        remove_temps(settings)
    if current is None:
        progress(
            f"nothing was served: serving the newest good snapshot, build {target.build_id} "
            f"({target.run_date}): {settings.warehouse_path} -> {target.path}"
        )
    else:
        progress(
            f"rolled back from build {current.build_id} ({current.run_date}) to build "
            f"{target.build_id} ({target.run_date}): serving {settings.warehouse_path} -> "
            f"{target.path}"
        )
    return replace(target, is_served=True)


def _nothing_to_roll_back_to(
    settings: Settings, current: Snapshot | None, damaged_count: int
) -> PublishError:
    older = "" if current is None else "older "
    damaged_note = f"; {damaged_count} {older}one(s) cannot be read" if damaged_count else ""
    where = "no snapshot kept" if current is None else f"{current.name} is the oldest snapshot left"
    return PublishError(
        f"nothing to roll back to: {where} in {settings.snapshots_dir} that was not rolled "
        f"back from{damaged_note} (CJM_KEEP_SNAPSHOTS={settings.keep_snapshots})"
    )


def _rollback_target(
    listing: list[Snapshot], current: Snapshot | None
) -> tuple[Snapshot | None, list[tuple[Snapshot, str]]]:
    """The newest good snapshot before ``current`` (or of all, when nothing is served)
    and not rolled back from, and the damaged ones passed over on the way."""
    skipped = []
    older = [s for s in listing if (current is None or s.name < current.name) and not s.rolled_back]
    for candidate in reversed(older):
        problem = database_problem(candidate.path)
        if problem is None:
            return candidate, skipped
        skipped.append((candidate, problem))
    return None, skipped
