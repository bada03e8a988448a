"""Pieces every profile shares: landing files, ground truth, malforming, time and ids."""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import polars as pl

# Marks where latin-1 bytes go in a CSV line; plain ASCII, so it never changes quoting.
_LATIN1_MARK = "CJMLATIN1MARK"

# A format's own breakages: kind -> edit of the payload (payload, future time, rng).
Edits = dict[str, Callable[[dict, str, random.Random], None]]


def iso(t: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as the exports write it."""
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def new_uuid(rng: random.Random) -> str:
    """A version 4 UUID drawn from ``rng`` (deterministic for a seed)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def csv_line(values: list) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode()


def json_line(payload: dict) -> bytes:
    return (json.dumps(payload, separators=(",", ":")) + "\n").encode()


@dataclass
class Rec:
    """One record before serialisation: its source, true time, stage and payload."""

    source: str
    at: datetime
    stage: str
    event_type: str
    native_id: str
    payload: dict
    customer: str


class LandingFiles:
    """Appends records to one file per source and landing day, counting lines.

    ``names`` gives each source's file name; ``headers`` the header row of the CSV
    sources, written when a file is opened.
    """

    def __init__(
        self,
        landing: Path,
        start: date,
        names: dict[str, str],
        headers: dict[str, list[str]] | None = None,
    ):
        self.landing = landing
        self.start = start
        self.names = names
        self.headers = headers or {}
        self.files: dict[tuple[str, int], BinaryIO] = {}
        self.lines: dict[tuple[str, int], int] = {}

    def relative(self, source: str, day: int) -> str:
        return f"{source}/{(self.start + timedelta(days=day)).isoformat()}/{self.names[source]}"

    def _open(self, source: str, day: int) -> None:
        folder = self.landing / source / (self.start + timedelta(days=day)).isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        self.files[(source, day)] = (folder / self.names[source]).open("wb")
        self.lines[(source, day)] = 0
        if source in self.headers:
            self.emit(source, day, csv_line(self.headers[source]))

    def emit(self, source: str, day: int, data: bytes) -> tuple[str, int]:
        """Append ``data``; returns the file (relative to landing) and its first line."""
        key = (source, day)
        if key not in self.files:
            self._open(source, day)
        self.files[key].write(data)
        line = self.lines[key] + 1
        self.lines[key] += data.count(b"\n")
        return self.relative(source, day), line

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()


RECORD_COLUMNS = (
    "source",
    "native_id",
    "file",
    "line",
    "landing_date",
    "customer_key",
    "persona",
    "stage",
    "native_event",
    "occurred_at",
    "status",
    "reason",
    "late_days",
)


class TruthWriter:
    """Ground truth: one row per written record (Parquet parts, one per chunk), plus
    ``customers.csv``, ``identifiers.csv`` and ``crm_rows.csv`` at the end."""

    def __init__(self, truth: Path):
        self.truth = truth
        (truth / "records").mkdir(parents=True, exist_ok=True)
        for old in (truth / "records").glob("part-*.parquet"):
            old.unlink()
        self.rows: dict[str, list] = {k: [] for k in RECORD_COLUMNS}
        self.customers: list[dict] = []
        self.identifiers: list[dict] = []
        self.crm_rows: list[dict] = []
        self.part = 0

    def record(
        self,
        rec: Rec,
        customer_key: str,
        persona: str,
        where: tuple[str, int],
        status: str,
        reason: str | None,
        late: int,
    ) -> None:
        file, line = where
        values = (
            rec.source,
            rec.native_id,
            file,
            line,
            file.split("/")[1],
            customer_key,
            persona,
            rec.stage,
            rec.event_type,
            rec.at,
            status,
            reason,
            late,
        )
        for column, value in zip(RECORD_COLUMNS, values, strict=True):
            self.rows[column].append(value)

    def customer(self, row: dict, identifiers: list[tuple[str, str]]) -> None:
        """A customer's row and every identifier (kind, value) that is theirs."""
        self.customers.append(row)
        key = row["customer_key"]
        self.identifiers += [{"kind": k, "value": v, "customer_key": key} for k, v in identifiers]

    def crm(self, customer_key: str, where: tuple[str, int]) -> None:
        self.crm_rows.append({"customer_key": customer_key, "file": where[0], "line": where[1]})

    def flush(self) -> None:
        if not self.rows["source"]:
            return
        frame = pl.DataFrame(
            self.rows,
            schema_overrides={"occurred_at": pl.Datetime("us", "UTC"), "reason": pl.String},
        )
        frame.write_parquet(self.truth / "records" / f"part-{self.part:05d}.parquet")
        self.part += 1
        for v in self.rows.values():
            v.clear()

    def close(self) -> None:
        self.flush()
        pl.DataFrame(self.customers).write_csv(self.truth / "customers.csv")
        pl.DataFrame(self.identifiers).write_csv(self.truth / "identifiers.csv")
        pl.DataFrame(
            self.crm_rows, schema={"customer_key": pl.String, "file": pl.String, "line": pl.Int64}
        ).write_csv(self.truth / "crm_rows.csv")


def write_summary(truth: Path, stats: dict) -> None:
    (truth / "summary.json").write_text(json.dumps(stats, indent=2) + "\n")


def malform_json(
    rng: random.Random, payload: dict, kinds: list[str], edits: Edits, land_at: datetime
) -> tuple[bytes, str]:
    """A broken JSON line of ``payload`` and the quarantine reason ingestion must give.

    ``invalid_json`` (a cut line) and ``invalid_utf8`` (latin-1 bytes) work for any
    payload; every other kind is the format's own edit.
    """
    kind = rng.choice(kinds)
    p = dict(payload)
    future = _future(rng, land_at)
    if kind == "invalid_json":
        text = json.dumps(p, separators=(",", ":"))
        return (text[: rng.randint(10, len(text) - 5)] + "\n").encode(), kind
    if kind == "invalid_utf8":
        text = json.dumps(p, separators=(",", ":"), ensure_ascii=False)
        return (text[:-1] + ',"note":"caf\u00e9"}\n').encode("latin-1", errors="replace"), kind
    edits[kind](p, future, rng)
    return json_line(p), kind


def malform_csv(
    rng: random.Random,
    row: dict,
    columns: list[str],
    kinds: list[str],
    edits: Edits,
    land_at: datetime,
    latin1_column: str,
) -> tuple[bytes, str]:
    """A broken CSV line of ``row`` and its quarantine reason: ``invalid_csv`` (an extra
    field), ``invalid_utf8`` (latin-1 bytes before the value of ``latin1_column``), or
    the format's own edit."""
    kind = rng.choice(kinds)
    p = dict(row)
    future = _future(rng, land_at)
    if kind == "invalid_csv":
        return csv_line([p.get(c) or "" for c in columns] + ["extra"]), kind
    if kind == "invalid_utf8":
        p[latin1_column] = _LATIN1_MARK + (p.get(latin1_column) or "")
        line = csv_line([p.get(c) or "" for c in columns])
        return line.replace(_LATIN1_MARK.encode(), "caf\u00e9 ".encode("latin-1"), 1), kind
    edits[kind](p, future, rng)
    return csv_line([p.get(c) or "" for c in columns]), kind


def _future(rng: random.Random, land_at: datetime) -> str:
    """A time far past the landing day, beyond any tolerance for clock skew."""
    return iso(land_at + timedelta(days=rng.randint(400, 4000)))


def set_fields(**values: object) -> Callable[[dict, str, random.Random], None]:
    """An edit that sets fixed values (a field set to None is blanked)."""

    def edit(p: dict, _future: str, _rng: random.Random) -> None:
        p.update(values)

    return edit


def drop_fields(*names: str) -> Callable[[dict, str, random.Random], None]:
    def edit(p: dict, _future: str, _rng: random.Random) -> None:
        for name in names:
            p.pop(name, None)

    return edit
