"""The ingestion runner: landing files of one source and date -> canonical lake.

For each (source, date): parse every landing file with the source's adapter, drop
events already seen (in the same batch, or on another landing date within the
dedupe lookback), write the accepted events and the quarantine as Parquet
partitions, and write a manifest whose counts always reconcile, per file and in
total: ``read = accepted + quarantined + duplicates``.

The landing folder is a trust boundary. Only regular files directly in it are read;
links, sub-folders, FIFOs, hidden files and files of another format are listed in the
manifest with the reason they were skipped, never opened (a file whose name has no
known extension is opened for its first bytes, to tell its format). Any failure while reading
one file quarantines that file whole with its reason, and the rest of the night lands.

Partitions and the manifest that describes them change as one step: the new files are
written under temporary names, a journal naming them is written next to the manifest,
then the files are renamed into place and the journal becomes the manifest. A run
killed anywhere leaves either the old state or a journal the next ingest of the
source completes (``recover``), so a manifest always reconciles with its partition.
Re-ingesting a date leaves the lake exactly as one ingest would, and a reader never
sees half a partition.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing
import os
import stat
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType

import polars as pl

from cjm_pipeline.files import atomic_write_text, fsync_path
from cjm_pipeline.settings import ALL_SOURCES, Settings
from transforms import crm, email, orders, pii, reviews, social, web
from transforms.common import AdapterResult, BatchContext, whole_file_rejected
from transforms.readers import Limits, UnreadableFileError, extension, named_format, sniff
from transforms.schema import CANONICAL_SCHEMA, CRM_SCHEMA, QUARANTINE_SCHEMA

ADAPTERS: dict[str, ModuleType] = {
    "web": web,
    "email": email,
    "social": social,
    "reviews": reviews,
    "orders": orders,
    "crm": crm,
}

EVENTS_FILE = "events.parquet"
QUARANTINE_FILE = "quarantine.parquet"
CRM_FILE = "customers.parquet"
# Extensions of formats no source reads: a file so named is skipped without being opened.
FOREIGN_EXTENSIONS = frozenset(
    {".parquet", ".avro", ".orc", ".xlsx", ".xls", ".xml", ".zip", ".pdf"}
)


class LakeWriteError(OSError):
    """Writing the lake failed (a full disk, say); what was there is left as it was."""

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass
class FileCount:
    file: str
    read: int
    accepted: int
    quarantined: int
    note: str = ""
    duplicates: int = 0
    quarantined_whole: str = ""  # the reason, when the file was quarantined whole

    def reconciles(self) -> bool:
        return self.read == self.accepted + self.quarantined + self.duplicates


@dataclass
class Skipped:
    """An entry of the landing folder that was not read, and why."""

    entry: str
    reason: str


@dataclass
class Manifest:
    source: str
    date: str
    status: str  # ok | missing | refused (the landing folder is behind a link or outside)
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicates_in_batch: int = 0
    duplicates_other_dates: int = 0
    # Rows written to the events partition: the accepted records, except for a source
    # whose record makes several events (orders), where the counts above are records.
    events: int = 0
    files: list[FileCount] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def reconciles(self) -> bool:
        totals = self.read == self.accepted + self.quarantined + self.duplicates
        return totals and all(f.reconciles() for f in self.files)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        data = dict(data)
        data["files"] = [FileCount(**f) for f in data.get("files", [])]
        data["skipped"] = [Skipped(**s) for s in data.get("skipped", [])]
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_dict(json.loads(path.read_text()))


def landing_files(
    folder: Path, globs: Iterable[str], limits: Limits | None = None
) -> tuple[list[Path], list[Skipped]]:
    """The files of a landing folder to read, and every other entry with its reason.

    Nothing is followed here: an entry is read only if it is a regular file directly in
    the folder (not a link) and not hidden, and either its name matches one of the
    source's patterns (in any case) or its name has no known extension and its content
    is a format the source reads (``readers.sniff``: how an S3 destination names its
    objects). Only such a file is opened here, for its first bytes. A file whose
    extension names another format is skipped unopened. (The folder itself was checked
    by ``_outside``.)
    """
    globs = tuple(globs)
    files: list[Path] = []
    skipped: list[Skipped] = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name = pii.mask_string(entry.name)
            why = _why_skipped(entry, globs, limits or Limits())
            if why:
                skipped.append(Skipped(name, why))
            else:
                files.append(Path(entry.path))
    return files, skipped


def _outside(folder: Path, root: Path) -> str:
    """Why a landing folder may not be read ('' when it may): a link on the way from
    the data directory to it would let a landing folder point anywhere."""
    try:
        relative = folder.relative_to(root)
    except ValueError:
        return f"{folder} is not inside the data directory {root}"
    step = root
    for part in relative.parts:
        step = step / part
        if step.is_symlink():
            return (
                f"{step} is a symbolic link: landing folders are not read through links "
                "(copy the files into a real folder, or point CJM_DATA_DIR at the real one)"
            )
    resolved, base = folder.resolve(), root.resolve()
    if not resolved.is_relative_to(base):
        return f"{folder} resolves to {resolved}, outside the data directory {base}"
    return ""


def _why_skipped(entry: os.DirEntry, globs: tuple[str, ...], limits: Limits) -> str:
    """Why a landing folder entry is not read ('' when it is)."""
    mode = entry.stat(follow_symlinks=False).st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link: links are not followed (copy the file itself into the folder)"
    if stat.S_ISDIR(mode):
        return "a folder: landing folders are flat (put the files directly in the date's folder)"
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        )
        return f"{kind}, not a regular file: never read"
    if entry.name.startswith("."):
        return "a hidden file: hidden files are not read"
    names = (Path(entry.name), Path(entry.name.lower()))
    if any(name.match(pattern) for name in names for pattern in globs):
        return ""
    expected = f"expected {', '.join(globs)}"
    formats = {f for f in ("json", "csv") if any(f in pattern for pattern in globs)}
    if named_format(names[0]) or extension(names[0]) in FOREIGN_EXTENSIONS:
        return f"not a file this source reads ({expected})"
    content = sniff(Path(entry.path), limits)
    if content in formats:
        return ""
    described = {
        "json": "JSON",
        "csv": "CSV",
        "text": "text that is neither JSON nor CSV",
        "binary": "not text",
        "empty": "empty",
    }.get(content, content)
    return (
        f"no known extension, and its content is {described}: not a format this source "
        f"reads ({expected}, or such content under any name)"
    )


@dataclass
class Batch:
    """One source and landing date, parsed but not yet deduplicated or written."""

    manifest: Manifest
    accepted: pl.DataFrame | None = None
    quarantine: pl.DataFrame | None = None
    started: float = field(
        default_factory=time.time
    )  # wall clock: parse and commit may run in different processes


def ingest(
    settings: Settings,
    dates: Iterable[date],
    sources: Iterable[str] = ALL_SOURCES,
    progress: Callable[[str], None] = print,
    workers: int = 1,
) -> list[Manifest]:
    """Ingest every (date, source) batch, holding each source's lake lock (see
    ``_ingest``)."""
    sources = [_checked(source) for source in sources]
    with _lake_locks(settings, sources, progress):
        return _ingest(settings, list(dates), sources, progress, workers)


@contextlib.contextmanager
def _lake_locks(
    settings: Settings, sources: list[str], progress: Callable[[str], None]
) -> Iterator[None]:
    """One ingest of a source at a time, whatever warehouse it serves: the lake is the
    data directory's, and recovery must never touch another ingest's files in flight.
    The kernel drops the locks if the process dies."""
    settings.lake_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        for source in sorted(sources):
            handle = stack.enter_context((settings.lake_dir / f".ingest-{source}.lock").open("a"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                progress(f"waiting for another ingest of {source} to finish")
                fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _ingest(
    settings: Settings,
    dates: list[date],
    sources: list[str],
    progress: Callable[[str], None],
    workers: int,
) -> list[Manifest]:
    """Ingest every (date, source) batch.

    Parsing, the expensive part, depends on nothing but the batch's own files, so
    with ``workers > 1`` batches are parsed in parallel processes. Committing
    (deduplication against other dates, then the writes) runs in this process in
    date order per source, as cross-date deduplication expects. A bounded number
    of parsed batches wait in memory at a time.
    """
    for source in sources:
        for note in recover(settings, source):
            progress(note)
    tasks = [(source, day) for day in dates for source in sources]
    manifests: list[Manifest] = []
    seen = {source: SeenIds(settings, source) for source, _ in tasks}

    # A source with no landing folder at all is one this deployment does not deliver
    # (a marketplace has no web feed): said once, not once per date.
    undelivered = [s for s in sources if not (settings.landing_dir / s).is_dir()]

    def commit(batch: Batch) -> None:
        manifest = commit_batch(settings, batch, seen[batch.manifest.source])
        if not (manifest.status == "missing" and manifest.source in undelivered):
            _report(manifest, progress)
        manifests.append(manifest)

    def undelivered_note() -> None:
        for source in undelivered:
            progress(
                f"{source:<8} no landing folder {settings.landing_dir / source} at all: "
                f"not delivered, nothing ingested on {len(dates)} date(s)"
            )

    if workers <= 1 or len(tasks) == 1:
        for source, day in tasks:
            commit(parse_batch(settings, source, day))
        undelivered_note()
        return manifests
    context = multiprocessing.get_context("spawn")
    pending: deque[Future[Batch]] = deque()
    # One Polars and DuckDB thread per worker process: the processes are the parallelism,
    # and more threads than cores only adds contention.
    single_threaded = {"POLARS_MAX_THREADS": "1", "CJM_DUCKDB_THREADS": "1"}
    with (
        _environment(single_threaded),
        ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool,
    ):
        for source, day in tasks:
            pending.append(pool.submit(parse_batch, settings, source, day))
            if len(pending) > 8 * workers:
                commit(pending.popleft().result())
        while pending:
            commit(pending.popleft().result())
    undelivered_note()
    return manifests


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for processes started inside the block."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ingest_one(settings: Settings, source: str, day: date) -> Manifest:
    """Ingest one source for one landing date."""
    with _lake_locks(settings, [_checked(source)], print):
        recover(settings, source)
        return commit_batch(settings, parse_batch(settings, source, day))


def _checked(source: str) -> str:
    if source not in ADAPTERS:
        raise ValueError(f"unknown source {source!r}; choose from {', '.join(ALL_SOURCES)}")
    return source


def _report(manifest: Manifest, progress: Callable[[str], None]) -> None:
    progress(_progress_line(manifest))
    # A date with no landing folder is one line, its message included.
    said = manifest.messages[1:] if manifest.status == "missing" else manifest.messages
    for message in said:
        progress(f"    {message}")
    for entry in manifest.skipped:
        progress(f"    skipped {entry.entry}: {entry.reason}")


def batch_context(settings: Settings, source: str, day: date) -> BatchContext:
    return BatchContext(
        source=source,
        landing_date=day,
        landing_root=settings.landing_dir,
        salt=settings.salt,
        max_event_age_days=settings.max_event_age_days,
        time_zone=settings.source_time_zones.get(source, "UTC"),
        future_tolerance_hours=settings.future_tolerance_hours,
        limits=Limits(
            max_file_bytes=int(settings.max_file_bytes),
            max_compression_ratio=settings.max_compression_ratio,
            max_line_bytes=int(settings.max_line_bytes),
            max_field_chars=settings.max_field_chars,
        ),
        max_file_rejects=settings.max_file_rejects,
        deny=settings.identity_deny_values,
    )


def parse_batch(settings: Settings, source: str, day: date) -> Batch:
    """Parse every landing file of one source and date (no writes to the lake)."""
    adapter = ADAPTERS[source]
    iso = day.isoformat()
    batch = Batch(Manifest(source=source, date=iso, status="ok"))
    manifest = batch.manifest
    folder = settings.landing_dir / source / iso
    refused = _outside(folder, settings.data_dir)
    if refused or (folder.exists() and not folder.is_dir()):
        # Said loudly: the gate stops the night on a refused folder rather than
        # publishing a night that silently lacks a source.
        refused = refused or f"{folder} is not a folder"
        manifest.status = "refused"
        manifest.skipped.append(Skipped(folder.name, refused))
        manifest.messages.append(f"the landing folder was refused: {refused}")
        return batch
    if not folder.is_dir():
        manifest.status = "missing"
        manifest.messages.append(
            f"no landing folder {folder}: nothing to ingest for {source} on {iso} "
            "(check the date, or point CJM_DATA_DIR at the landing root)"
        )
        return batch

    ctx = batch_context(settings, source, day)
    files, manifest.skipped = landing_files(folder, adapter.FILE_GLOBS, ctx.limits)
    if not files:
        manifest.messages.append(
            f"landing folder {folder} holds no {source} files "
            f"(expected {', '.join(adapter.FILE_GLOBS)})"
        )
    results: list[AdapterResult] = []
    for path in files:
        result, note = _parse(adapter, path, ctx)
        if note:
            manifest.messages.append(note)
        results.append(result)
        manifest.files.append(
            FileCount(
                ctx.relative(path),
                result.read,
                result.accepted,
                result.quarantined,
                "; ".join(result.notes),
                quarantined_whole=result.quarantined_whole,
            )
        )

    schema = CRM_SCHEMA if source == "crm" else CANONICAL_SCHEMA
    accepted = pl.concat([r.events for r in results]) if results else pl.DataFrame(schema=schema)
    if source != "crm":
        # Within the batch the first delivery in file order wins; everything that does
        # not depend on other dates is done here, in the (parallel) parse step.
        first = pl.col("event_id").is_first_distinct()
        kept = accepted.filter(first)
        _count_duplicates(manifest, _dropped_records(source, accepted.filter(~first), kept))
        accepted = kept
        manifest.duplicates_in_batch = sum(f.duplicates for f in manifest.files)
        accepted = accepted.sort("occurred_at", "event_id")
    batch.accepted = accepted
    batch.quarantine = (
        pl.concat([r.quarantine for r in results])
        if results
        else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    )
    manifest.read = sum(r.read for r in results)
    manifest.quarantined = sum(r.quarantined for r in results)
    by_reason = batch.quarantine.group_by("reason").agg(pl.col("records").sum())
    manifest.quarantined_by_reason = dict(sorted(by_reason.iter_rows()))
    return batch


def record_key(source: str) -> tuple[str, ...] | None:
    """The event columns that name the record an event came from, for a source whose
    record makes several events (None: one event per record)."""
    return getattr(ADAPTERS[source], "RECORD_KEY", None)


def _records(source: str, events: pl.DataFrame) -> pl.DataFrame:
    """One row per record the events came from (each with its ``source_file``)."""
    key = record_key(source)
    return events.select("source_file") if key is None else events.select(key).unique()


def _dropped_records(source: str, dropped: pl.DataFrame, kept: pl.DataFrame) -> pl.DataFrame:
    """The records all of whose events were dropped as duplicates: a record that still
    has a new event (a re-exported order with a new status) is accepted, not a
    duplicate. One row per record, with its ``source_file``."""
    key = record_key(source)
    if key is None or dropped.height == 0:
        return dropped.select("source_file")
    return _records(source, dropped).join(_records(source, kept), on=list(key), how="anti")


def _count_duplicates(manifest: Manifest, dropped: pl.DataFrame, sign: int = 1) -> None:
    """Move the ``dropped`` records of each file (one row each, with its
    ``source_file``) from its accepted count to its duplicates."""
    if dropped.height == 0:
        return
    by_file = dict(dropped.group_by("source_file").len().iter_rows())
    for count in manifest.files:
        moved = sign * by_file.get(count.file, 0)
        count.accepted -= moved
        count.duplicates += moved


def commit_batch(settings: Settings, batch: Batch, seen: SeenIds | None = None) -> Manifest:
    """Deduplicate a parsed batch against the lake, then write it and its manifest as
    one step (see ``write_partitions``).

    ``seen`` carries the neighbouring partitions' event ids between the commits
    of one run; without it they are read from the lake.
    """
    manifest = batch.manifest
    source, iso = manifest.source, manifest.date
    frames: dict[Path, pl.DataFrame] = {}
    manifests = [manifest]
    later: dict[date, pl.DataFrame] = {}
    if batch.accepted is not None and batch.quarantine is not None:
        day = date.fromisoformat(iso)
        if source == "crm":
            frames[settings.crm_partition(iso) / CRM_FILE] = batch.accepted
            manifest.accepted = manifest.read - manifest.quarantined
        else:
            seen = seen or SeenIds(settings, source)
            events = _dedupe(seen, day, batch.accepted, manifest)
            frames[settings.events_partition(source, iso) / EVENTS_FILE] = events
            keyed = _keyed(events["event_id"])
            seen.put(day, keyed)
            for other, shared in _later_dates_holding(seen, day, keyed):
                path, later[other], other_manifest = _without(seen, other, shared)
                frames[path] = later[other]
                manifests += [other_manifest] if other_manifest else []
        frames[settings.quarantine_partition(source, iso) / QUARANTINE_FILE] = batch.quarantine
    manifest.seconds = round(time.time() - batch.started, 3)
    if not manifest.reconciles():
        raise RuntimeError(f"counts do not reconcile for {source} {iso}: {manifest}")
    # The date and the later ones it takes re-delivered events from change as one step.
    write_partitions(settings, source, iso, frames, manifests)
    for other, kept in later.items():
        seen.put(other, _keyed(kept["event_id"]))
    return manifest


def _parse(adapter: ModuleType, path: Path, ctx: BatchContext) -> tuple[AdapterResult, str]:
    """One file through its adapter. Whatever goes wrong while reading it (a bad
    format, a limit passed, a bug met by a strange record) quarantines that file whole
    with the reason, and the rest of the batch goes on."""
    rel = ctx.relative(path)
    try:
        if path.stat().st_size == 0:
            return AdapterResult.empty(ctx.source), f"{rel} is empty: nothing to read"
        return adapter.parse_file(path, ctx), ""
    except (UnreadableFileError, OSError) as exc:
        reason = getattr(exc, "reason", "unreadable_file")
        problem = str(exc) if isinstance(exc, UnreadableFileError) else f"{exc.strerror or exc}"
        message = f"could not read the file ({problem}); it was quarantined whole, the rest landed"
    # A record the adapter cannot handle must not stop the night; a panic inside Polars
    # (a BaseException, which a worker process also could not send back) is one too.
    except (Exception, pl.exceptions.PanicException) as exc:
        reason = "parse_error"
        message = (
            f"the {ctx.source} adapter failed on this file ({type(exc).__name__}: "
            f"{pii.masked_excerpt(str(exc), 300)}); it was quarantined whole and the rest "
            "landed: report it "
            "with the file's quarantine detail"
        )
    message = pii.mask_string(message)
    return whole_file_rejected(ctx, path, reason, message), f"{rel}: {message}"


def _keyed(event_ids: pl.Series) -> pl.DataFrame:
    """Event ids with a 64-bit key (their first 16 hex digits) for fast membership tests.

    Keys only find candidates; every match is confirmed on the full id.
    """
    return pl.DataFrame(
        {
            "key": event_ids.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64),
            "event_id": event_ids,
        }
    )


def _shared_ids(candidates: pl.DataFrame, keyed: pl.DataFrame) -> pl.Series:
    """The ids of ``candidates`` that ``keyed`` also holds (exact, found by key first)."""
    matched = candidates.join(keyed.select("key"), on="key", how="semi")
    return matched.join(keyed, on=["key", "event_id"], how="semi")["event_id"]


class SeenIds:
    """The event ids of one source's partitions around the dates being committed.

    Each partition's ids are read once per run and kept while they are within the
    dedupe lookback, so a multi-day run does not re-read every neighbour each day.
    """

    def __init__(self, settings: Settings, source: str):
        self.settings = settings
        self.source = source
        self._ids: dict[date, pl.DataFrame | None] = {}

    def get(self, day: date) -> pl.DataFrame | None:
        if day not in self._ids:
            path = self.settings.events_partition(self.source, day.isoformat()) / EVENTS_FILE
            self._ids[day] = (
                _keyed(pl.read_parquet(path, columns=["event_id"])["event_id"])
                if path.exists()
                else None
            )
        return self._ids[day]

    def put(self, day: date, keyed: pl.DataFrame) -> None:
        self._ids[day] = keyed
        horizon = timedelta(days=2 * self.settings.dedupe_lookback_days)
        for old in [d for d in self._ids if abs(d - day) > horizon]:
            del self._ids[old]

    def neighbours(self, day: date, later: bool) -> list[tuple[date, pl.DataFrame]]:
        step = 1 if later else -1
        days = [
            day + timedelta(days=step * k) for k in range(1, self.settings.dedupe_lookback_days + 1)
        ]
        return [(d, ids) for d in days if (ids := self.get(d)) is not None]


def _dedupe(seen: SeenIds, day: date, events: pl.DataFrame, manifest: Manifest) -> pl.DataFrame:
    """Drop the events an earlier landing date already holds (the batch is deduplicated)."""
    earlier = [keyed for _, keyed in seen.neighbours(day, later=False)]
    fresh = events
    dropped = 0
    if earlier:
        shared = _shared_ids(pl.concat(earlier), _keyed(events["event_id"]))
        if shared.len():
            is_shared = pl.col("event_id").is_in(shared.implode())
            fresh = events.filter(~is_shared)
            records = _dropped_records(seen.source, events.filter(is_shared), fresh)
            _count_duplicates(manifest, records)
            dropped = records.height
    manifest.duplicates_other_dates = dropped
    manifest.duplicates = manifest.duplicates_in_batch + manifest.duplicates_other_dates
    manifest.accepted = _records(seen.source, fresh).height
    manifest.events = fresh.height
    return fresh


def _later_dates_holding(
    seen: SeenIds, day: date, keyed: pl.DataFrame
) -> list[tuple[date, pl.Series]]:
    """The later landing dates that hold some of ``day``'s events, and those events."""
    found = []
    for other, later_ids in seen.neighbours(day, later=True):
        shared = _shared_ids(later_ids, keyed)
        if shared.len():
            found.append((other, shared))
    return found


def _without(
    seen: SeenIds, other: date, shared: pl.Series
) -> tuple[Path, pl.DataFrame, Manifest | None]:
    """A re-delivered event belongs to the earliest landing date that holds it.

    When an earlier date is ingested after a later one (a backfill), the later
    partition loses the events the earlier one now holds, and its manifest says so:
    returns the later partition's path, what it keeps, and its updated manifest.
    """
    settings = seen.settings
    path = settings.events_partition(seen.source, other.isoformat()) / EVENTS_FILE
    events = pl.read_parquet(path)
    is_shared = pl.col("event_id").is_in(shared.implode())
    kept = events.filter(~is_shared)
    records = _dropped_records(seen.source, events.filter(is_shared), kept)
    removed = records.height
    manifest_path = settings.manifest_path(seen.source, other.isoformat())
    later = None
    if manifest_path.exists():
        later = Manifest.load(manifest_path)
        later.accepted -= removed
        later.duplicates += removed
        later.duplicates_other_dates += removed
        later.events = kept.height
        _count_duplicates(later, records)
    return path, kept, later


# Writing the lake: partitions and their manifest as one step ------------------------

JOURNAL_SUFFIX = ".journal"


def _journal_path(settings: Settings, source: str, iso: str) -> Path:
    manifest = settings.manifest_path(source, iso)
    return manifest.with_name(f".{manifest.name}{JOURNAL_SUFFIX}")


def _temp_name(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}.tmp")


def write_partitions(
    settings: Settings,
    source: str,
    iso: str,
    frames: dict[Path, pl.DataFrame],
    manifests: list[Manifest],
) -> None:
    """Replace partition files and the manifests that describe them, as one step.

    The files are written and flushed under temporary names first; then a journal
    (next to the manifest of ``source`` on ``iso``) names each rename to do and holds
    the new manifests; then the renames are done and the journal's manifests become
    current. A failure before the journal exists (a full disk) removes the temporary
    files and leaves the lake as it was; after it, the next ingest of the source
    completes the journal (``recover``).
    """
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    journal_path = _journal_path(settings, source, iso)
    staged: dict[Path, Path] = {}
    try:
        for path, frame in frames.items():
            temp = _temp_name(path, tag)
            staged[temp] = path
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(temp, compression="zstd", compression_level=1, statistics=True)
            fsync_path(temp)
        journal = {
            "renames": {
                str(t.relative_to(settings.lake_dir)): str(p.relative_to(settings.lake_dir))
                for t, p in staged.items()
            },
            "manifests": [asdict(manifest) for manifest in manifests],
        }
        atomic_write_text(journal_path, json.dumps(journal) + "\n")
    except (OSError, pl.exceptions.ComputeError) as exc:
        # Polars reports a failed write (a full disk) as a ComputeError naming the OS error.
        for temp in staged:
            temp.unlink(missing_ok=True)
        where = list(staged.values())[-1] if staged else journal_path
        problem = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise LakeWriteError(
            getattr(exc, "errno", None),
            f"writing {where} failed ({problem}); the lake is as it was before "
            f"this ingest of {source} {iso}: free space or fix the cause, then ingest the "
            "date again",
        ) from exc
    try:
        _apply_journal(settings, journal_path)
    except OSError as exc:
        raise LakeWriteError(
            exc.errno,
            f"completing the ingest journal {journal_path} failed ({exc.strerror or exc}); "
            f"the next ingest of {source} completes it once the cause is fixed",
        ) from exc


def _apply_journal(settings: Settings, journal_path: Path) -> None:
    """Do a journal's renames (those not done yet), then make its manifest current."""
    journal = json.loads(journal_path.read_text())
    folders = set()
    for temp, final in journal["renames"].items():
        source, target = settings.lake_dir / temp, settings.lake_dir / final
        if source.exists():
            os.replace(source, target)
            folders.add(target.parent)
    for folder in folders:
        fsync_path(folder)
    for data in journal["manifests"]:
        manifest = Manifest.from_dict(data)
        atomic_write_text(
            settings.manifest_path(manifest.source, manifest.date), manifest.to_json()
        )
    journal_path.unlink()
    fsync_path(journal_path.parent)


def recover(settings: Settings, source: str) -> list[str]:
    """Finish what a killed ingest of ``source`` left: complete every journal (its
    files were written before it was), then delete temporary files no journal names.
    Returns a line per repair."""
    notes = []
    manifests = settings.lake_dir / "manifests"
    for journal_path in sorted(manifests.glob(f"date=*/.{source}.json{JOURNAL_SUFFIX}")):
        try:
            _apply_journal(settings, journal_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LakeWriteError(
                getattr(exc, "errno", None),
                f"the ingest journal {journal_path} could not be completed ({exc}); "
                "delete it and ingest its date again",
            ) from exc
        notes.append(f"completed an interrupted ingest of {source} ({journal_path.parent.name})")
    kinds = [f"events/source={source}", f"quarantine/source={source}"]
    if source == "crm":
        kinds = ["crm_customers", "quarantine/source=crm"]
    leftovers = {
        *(p for kind in kinds for p in (settings.lake_dir / kind).glob("date=*/.*.tmp")),
        *manifests.glob(f"date=*/.{source}.json.*.tmp"),
    }
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    if leftovers:
        notes.append(f"removed {len(leftovers)} temporary file(s) of an interrupted ingest")
    return notes


def _progress_line(m: Manifest) -> str:
    if m.status == "missing":
        return f"{m.date} {m.source:<8} {m.messages[0] if m.messages else 'no landing folder'}"
    if m.status == "refused":
        return f"{m.date} {m.source:<8} landing folder refused"
    return (
        f"{m.date} {m.source:<8} read {m.read:>9,}  accepted {m.accepted:>9,}  "
        f"quarantined {m.quarantined:>7,}  duplicates {m.duplicates:>7,}  ({m.seconds:.1f} s)"
    )


def summary(manifests: list[Manifest]) -> str:
    """A short table of counts in and out per source, and quarantine reasons."""
    lines = [f"{'source':<8} {'read':>11} {'accepted':>11} {'quarantined':>11} {'duplicates':>11}"]
    reasons: Counter[str] = Counter()
    for source in ALL_SOURCES:
        ms = [m for m in manifests if m.source == source]
        if not ms:
            continue
        lines.append(
            f"{source:<8} {sum(m.read for m in ms):>11,} {sum(m.accepted for m in ms):>11,} "
            f"{sum(m.quarantined for m in ms):>11,} {sum(m.duplicates for m in ms):>11,}"
        )
        for m in ms:
            reasons.update(m.quarantined_by_reason)
    total_read = sum(m.read for m in manifests)
    lines.append(
        f"{'total':<8} {total_read:>11,} {sum(m.accepted for m in manifests):>11,} "
        f"{sum(m.quarantined for m in manifests):>11,} {sum(m.duplicates for m in manifests):>11,}"
    )
    if reasons:
        lines.append(
            "quarantined by reason: " + ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items()))
        )
    missing = [m for m in manifests if m.status == "missing"]
    if missing:
        lines.append(f"{len(missing)} source-date(s) had no landing folder")
    return "\n".join(lines)
