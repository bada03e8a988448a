"""The ingestion runner: landing files of one source and date -> canonical lake.

For each (source, date): parse every landing file with the source's adapter, drop
events already seen (in the same batch, or on another landing date within the
dedupe lookback), write the accepted events and the quarantine as Parquet
partitions, and write a manifest whose counts always reconcile:
``read = accepted + quarantined + duplicates``.

Each partition is one file replaced atomically, so re-ingesting a date leaves the
lake exactly as one ingest would, and a reader never sees half a partition.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType

import polars as pl

from cjm_pipeline.settings import ALL_SOURCES, Settings
from transforms import crm, email, reviews, social, web
from transforms.common import AdapterResult, BatchContext, whole_file_rejected
from transforms.readers import UnreadableFileError
from transforms.schema import CANONICAL_SCHEMA, CRM_SCHEMA, QUARANTINE_SCHEMA

ADAPTERS: dict[str, ModuleType] = {
    "web": web,
    "email": email,
    "social": social,
    "reviews": reviews,
    "crm": crm,
}

EVENTS_FILE = "events.parquet"
QUARANTINE_FILE = "quarantine.parquet"
CRM_FILE = "customers.parquet"


@dataclass
class FileCount:
    file: str
    read: int
    accepted: int
    quarantined: int
    note: str = ""


@dataclass
class Manifest:
    source: str
    date: str
    status: str  # ok | missing
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicates_in_batch: int = 0
    duplicates_other_dates: int = 0
    files: list[FileCount] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def reconciles(self) -> bool:
        return self.read == self.accepted + self.quarantined + self.duplicates

    def write(self, path: Path) -> None:
        _atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Manifest:
        data = json.loads(path.read_text())
        data["files"] = [FileCount(**f) for f in data["files"]]
        return cls(**data)


def landing_files(folder: Path, globs: Iterable[str]) -> list[Path]:
    found = {p for g in globs for p in folder.glob(g) if p.is_file() and not p.name.startswith(".")}
    return sorted(found)


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
    """Ingest every (date, source) batch.

    Parsing, the expensive part, depends on nothing but the batch's own files, so
    with ``workers > 1`` batches are parsed in parallel processes. Committing
    (deduplication against other dates, then the writes) runs in this process in
    date order per source, as cross-date deduplication expects. A bounded number
    of parsed batches wait in memory at a time.
    """
    sources = [_checked(source) for source in sources]
    tasks = [(source, day) for day in dates for source in sources]
    manifests: list[Manifest] = []
    seen = {source: SeenIds(settings, source) for source, _ in tasks}

    def commit(batch: Batch) -> None:
        manifest = commit_batch(settings, batch, seen[batch.manifest.source])
        _report(manifest, progress)
        manifests.append(manifest)

    if workers <= 1 or len(tasks) == 1:
        for source, day in tasks:
            commit(parse_batch(settings, source, day))
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
    return commit_batch(settings, parse_batch(settings, _checked(source), day))


def _checked(source: str) -> str:
    if source not in ADAPTERS:
        raise ValueError(f"unknown source {source!r}; choose from {', '.join(ALL_SOURCES)}")
    return source


def _report(manifest: Manifest, progress: Callable[[str], None]) -> None:
    progress(_progress_line(manifest))
    for message in manifest.messages:
        progress(f"    {message}")


def parse_batch(settings: Settings, source: str, day: date) -> Batch:
    """Parse every landing file of one source and date (no writes to the lake)."""
    adapter = ADAPTERS[source]
    iso = day.isoformat()
    batch = Batch(Manifest(source=source, date=iso, status="ok"))
    manifest = batch.manifest
    folder = settings.landing_dir / source / iso
    if not folder.is_dir():
        manifest.status = "missing"
        manifest.messages.append(
            f"no landing folder {folder}: nothing to ingest for {source} on {iso} "
            "(check the date, or point CJM_DATA_DIR at the landing root)"
        )
        return batch

    ctx = BatchContext(
        source=source,
        landing_date=day,
        landing_root=settings.landing_dir,
        salt=settings.salt,
        max_event_age_days=settings.max_event_age_days,
        future_tolerance_hours=settings.future_tolerance_hours,
    )
    files = landing_files(folder, adapter.FILE_GLOBS)
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
                result.events.height,
                result.quarantine.height,
                note,
            )
        )

    schema = CRM_SCHEMA if source == "crm" else CANONICAL_SCHEMA
    accepted = pl.concat([r.events for r in results]) if results else pl.DataFrame(schema=schema)
    if source != "crm":
        # Within the batch the first delivery in file order wins; everything that does
        # not depend on other dates is done here, in the (parallel) parse step.
        first = accepted.filter(pl.col("event_id").is_first_distinct())
        manifest.duplicates_in_batch = accepted.height - first.height
        accepted = first.sort("occurred_at", "event_id")
    batch.accepted = accepted
    batch.quarantine = (
        pl.concat([r.quarantine for r in results])
        if results
        else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    )
    manifest.read = sum(r.read for r in results)
    manifest.quarantined = batch.quarantine.height
    manifest.quarantined_by_reason = dict(
        sorted(Counter(batch.quarantine["reason"].to_list()).items())
    )
    return batch


def commit_batch(settings: Settings, batch: Batch, seen: SeenIds | None = None) -> Manifest:
    """Deduplicate a parsed batch against the lake, write it, and write its manifest.

    ``seen`` carries the neighbouring partitions' event ids between the commits
    of one run; without it they are read from the lake.
    """
    manifest = batch.manifest
    source, iso = manifest.source, manifest.date
    if batch.accepted is not None and batch.quarantine is not None:
        day = date.fromisoformat(iso)
        if source == "crm":
            _write_parquet(batch.accepted, settings.crm_partition(iso) / CRM_FILE)
            manifest.accepted = manifest.read - manifest.quarantined
        else:
            seen = seen or SeenIds(settings, source)
            events = _dedupe(seen, day, batch.accepted, manifest)
            _write_parquet(events, settings.events_partition(source, iso) / EVENTS_FILE)
            keyed = _keyed(events["event_id"])
            seen.put(day, keyed)
            _remove_from_later_dates(seen, day, keyed)
        _write_parquet(
            batch.quarantine, settings.quarantine_partition(source, iso) / QUARANTINE_FILE
        )
    manifest.seconds = round(time.time() - batch.started, 3)
    if not manifest.reconciles():
        raise AssertionError(f"counts do not reconcile for {source} {iso}: {manifest}")
    manifest.write(settings.manifest_path(source, iso))
    return manifest


def _parse(adapter: ModuleType, path: Path, ctx: BatchContext) -> tuple[AdapterResult, str]:
    rel = ctx.relative(path)
    try:
        if path.stat().st_size == 0:
            empty = AdapterResult(
                pl.DataFrame(schema=CRM_SCHEMA if ctx.source == "crm" else CANONICAL_SCHEMA),
                pl.DataFrame(schema=QUARANTINE_SCHEMA),
                0,
            )
            return empty, f"{rel} is empty: nothing to read"
        return adapter.parse_file(path, ctx), ""
    except (UnreadableFileError, OSError) as exc:
        message = (
            f"could not read the file ({exc}); it was quarantined whole, the rest still landed"
        )
        return whole_file_rejected(ctx, path, "unreadable_file", message), f"{rel}: {message}"


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
    if earlier:
        shared = _shared_ids(pl.concat(earlier), _keyed(events["event_id"]))
        if shared.len():
            fresh = events.filter(~pl.col("event_id").is_in(shared.implode()))
    manifest.duplicates_other_dates = events.height - fresh.height
    manifest.duplicates = manifest.duplicates_in_batch + manifest.duplicates_other_dates
    manifest.accepted = fresh.height
    return fresh


def _remove_from_later_dates(seen: SeenIds, day: date, keyed: pl.DataFrame) -> None:
    """A re-delivered event belongs to the earliest landing date that holds it.

    When an earlier date is ingested after a later one (a backfill), the later
    partitions lose the events the earlier one now holds, and their manifests say so.
    """
    settings = seen.settings
    for other, later_ids in seen.neighbours(day, later=True):
        shared = _shared_ids(later_ids, keyed)
        if shared.len() == 0:
            continue
        path = settings.events_partition(seen.source, other.isoformat()) / EVENTS_FILE
        events = pl.read_parquet(path)
        kept = events.filter(~pl.col("event_id").is_in(shared.implode()))
        removed = events.height - kept.height
        _write_parquet(kept, path)
        seen.put(other, _keyed(kept["event_id"]))
        manifest_path = settings.manifest_path(seen.source, other.isoformat())
        if manifest_path.exists():
            later = Manifest.load(manifest_path)
            later.accepted -= removed
            later.duplicates += removed
            later.duplicates_other_dates += removed
            later.write(manifest_path)


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.write_parquet(tmp, compression="zstd", compression_level=1, statistics=True)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _progress_line(m: Manifest) -> str:
    if m.status == "missing":
        return f"{m.date} {m.source:<8} no landing folder"
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
