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

import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType

import polars as pl

from cjm_pipeline.settings import SOURCES, Settings
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
ALL_SOURCES: tuple[str, ...] = (*SOURCES, "crm")
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


def ingest(
    settings: Settings,
    dates: Iterable[date],
    sources: Iterable[str] = ALL_SOURCES,
    progress: Callable[[str], None] = print,
    workers: int = 1,
) -> list[Manifest]:
    """Ingest the dates of each source in date order.

    Sources are independent (each writes only its own partitions), so with
    ``workers > 1`` they run in parallel processes; the dates of one source
    always run in order in one process, as cross-date deduplication expects.
    """
    dates = list(dates)
    sources = list(sources)
    if workers <= 1 or len(sources) == 1:
        manifests = []
        for source in sources:
            for manifest in ingest_source(settings, source, dates):
                _report(manifest, progress)
                manifests.append(manifest)
        return manifests
    by_source: dict[str, list[Manifest]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(ingest_source, settings, s, dates): s for s in sources}
        for future in as_completed(futures):
            by_source[futures[future]] = future.result()
            for manifest in by_source[futures[future]]:
                _report(manifest, progress)
    return [m for s in sources for m in by_source[s]]


def ingest_source(settings: Settings, source: str, dates: list[date]) -> list[Manifest]:
    return [ingest_one(settings, source, day) for day in dates]


def _report(manifest: Manifest, progress: Callable[[str], None]) -> None:
    progress(_progress_line(manifest))
    for message in manifest.messages:
        progress(f"    {message}")


def ingest_one(settings: Settings, source: str, day: date) -> Manifest:
    if source not in ADAPTERS:
        raise ValueError(f"unknown source {source!r}; choose from {', '.join(ALL_SOURCES)}")
    started = time.perf_counter()
    adapter = ADAPTERS[source]
    iso = day.isoformat()
    manifest = Manifest(source=source, date=iso, status="ok")
    folder = settings.landing_dir / source / iso
    if not folder.is_dir():
        manifest.status = "missing"
        manifest.messages.append(
            f"no landing folder {folder}: nothing to ingest for {source} on {iso} "
            "(check the date, or point CJM_DATA_DIR at the landing root)"
        )
        manifest.seconds = round(time.perf_counter() - started, 3)
        manifest.write(settings.manifest_path(source, iso))
        return manifest

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
    quarantine = (
        pl.concat([r.quarantine for r in results])
        if results
        else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    )
    manifest.read = sum(r.read for r in results)
    manifest.quarantined = quarantine.height
    manifest.quarantined_by_reason = dict(sorted(Counter(quarantine["reason"].to_list()).items()))

    if source == "crm":
        _write_parquet(accepted, settings.crm_partition(iso) / CRM_FILE)
        manifest.accepted = manifest.read - manifest.quarantined
    else:
        events = _dedupe(settings, source, day, accepted, manifest)
        _write_parquet(
            events.sort("occurred_at", "event_id"),
            settings.events_partition(source, iso) / EVENTS_FILE,
        )
        _remove_from_later_dates(settings, source, day, events["event_id"])
    _write_parquet(quarantine, settings.quarantine_partition(source, iso) / QUARANTINE_FILE)

    manifest.seconds = round(time.perf_counter() - started, 3)
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


def _neighbour_files(settings: Settings, source: str, day: date, later: bool) -> list[Path]:
    step = 1 if later else -1
    files = []
    for offset in range(1, settings.dedupe_lookback_days + 1):
        other = (day + timedelta(days=step * offset)).isoformat()
        path = settings.events_partition(source, other) / EVENTS_FILE
        if path.exists():
            files.append(path)
    return files


def _dedupe(
    settings: Settings, source: str, day: date, accepted: pl.DataFrame, manifest: Manifest
) -> pl.DataFrame:
    unique = accepted.unique("event_id", keep="first", maintain_order=True)
    manifest.duplicates_in_batch = accepted.height - unique.height
    earlier = _neighbour_files(settings, source, day, later=False)
    if earlier:
        seen = pl.scan_parquet(earlier).select("event_id").collect()
        fresh = unique.join(seen, on="event_id", how="anti")
    else:
        fresh = unique
    manifest.duplicates_other_dates = unique.height - fresh.height
    manifest.duplicates = manifest.duplicates_in_batch + manifest.duplicates_other_dates
    manifest.accepted = fresh.height
    return fresh


def _remove_from_later_dates(
    settings: Settings, source: str, day: date, event_ids: pl.Series
) -> None:
    """A re-delivered event belongs to the earliest landing date that holds it.

    When an earlier date is ingested after a later one (a backfill), the later
    partitions lose the events the earlier one now holds, and their manifests say so.
    """
    ids = event_ids.to_frame()
    for path in _neighbour_files(settings, source, day, later=True):
        events = pl.read_parquet(path)
        kept = events.join(ids, on="event_id", how="anti")
        removed = events.height - kept.height
        if removed == 0:
            continue
        _write_parquet(kept, path)
        other = path.parent.name.removeprefix("date=")
        manifest_path = settings.manifest_path(source, other)
        if manifest_path.exists():
            later = Manifest.load(manifest_path)
            later.accepted -= removed
            later.duplicates += removed
            later.duplicates_other_dates += removed
            later.write(manifest_path)


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.write_parquet(tmp, compression="zstd", statistics=True)
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
