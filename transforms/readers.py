"""Robust record readers for JSON lines and CSV landing files.

Both readers return every string leaf as ``pl.String`` so that type problems are
found by the adapters' validation rules (with a reason per record) rather than by
a parser that gives up on the whole file. Lines that cannot be parsed at all come
back as rejects with their line number.

JSON lines are decoded by Polars in chunks. A chunk that fails to decode is
bisected until the offending lines are isolated, so a file with a few broken lines
costs little more than a clean one, and each broken line is named.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

CHUNK_LINES = 1024
_SURROGATE = re.compile("[\udc80-\udcff]")
# Decoding releases the GIL, so chunks decode in parallel across Polars' threads; a
# process that runs with one Polars thread (a parallel ingest worker) decodes inline.
_pool = ThreadPoolExecutor(
    max_workers=max(1, pl.thread_pool_size()), thread_name_prefix="cjm-decode"
)


class UnreadableFileError(Exception):
    """The file cannot be opened, decompressed or understood as a whole."""


@dataclass
class Reject:
    line: int
    reason: str
    message: str
    raw: str


@dataclass
class ParsedFile:
    """Decoded records (one column per native field, plus ``_line`` and ``_raw``)."""

    records: pl.DataFrame
    rejects: list[Reject] = field(default_factory=list)

    @property
    def read(self) -> int:
        return self.records.height + len(self.rejects)


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UnreadableFileError(f"{type(exc).__name__}: {exc}") from exc
    return data


def _blank_invalid_utf8(data: bytes) -> tuple[bytes, list[Reject]]:
    """Blank out lines that are not valid UTF-8 (keeping line numbers) and reject them.

    A valid file costs one decode. Otherwise only the lines holding non-ASCII
    bytes (found with one vectorised scan) are decoded one by one.
    """
    try:
        data.decode("utf-8")
        return data, []
    except UnicodeDecodeError:
        pass
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == 0x0A)
    suspect_lines = np.unique(np.searchsorted(newlines, np.flatnonzero(raw >= 0x80)))
    rejects: list[Reject] = []
    kept: list[bytes] = []
    copied_to = 0
    for index in suspect_lines.tolist():
        line_start = int(newlines[index - 1]) + 1 if index > 0 else 0
        line_end = int(newlines[index]) if index < len(newlines) else len(data)
        line = data[line_start:line_end]
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.append(
                Reject(
                    index + 1,
                    "invalid_utf8",
                    f"byte {exc.start + 1} of the line is not UTF-8 (re-export the file as UTF-8)",
                    line.decode("utf-8", errors="replace"),
                )
            )
            kept.append(data[copied_to:line_start])
            copied_to = line_end
    kept.append(data[copied_to:])
    return b"".join(kept), rejects


def _decode_range(
    lines: pl.Series, dtype: pl.Struct, start: int, stop: int
) -> tuple[list[tuple[int, pl.Series]], list[int]]:
    try:
        return [(start, lines.slice(start, stop - start).str.json_decode(dtype))], []
    except pl.exceptions.PolarsError:
        if stop - start == 1:
            return [], [start]
        mid = (start + stop) // 2
        good_a, bad_a = _decode_range(lines, dtype, start, mid)
        good_b, bad_b = _decode_range(lines, dtype, mid, stop)
        return good_a + good_b, bad_a + bad_b


def _classify_json_line(
    raw: str, dtype: pl.Struct, normalize: Callable[[dict], dict] | None
) -> tuple[pl.Series | None, str, str]:
    """Why one line failed to decode, or its decoded value once normalised."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, "invalid_json", f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(value, dict):
        return None, "wrong_type", f"the record is a JSON {type(value).__name__}, not an object"
    if normalize is not None:
        value = normalize(value)
    try:
        return pl.Series([json.dumps(value)]).str.json_decode(dtype), "", ""
    except pl.exceptions.PolarsError as exc:
        first = str(exc).splitlines()[0].replace("error deserializing JSON: ", "")
        return None, "wrong_type", f"a field has the wrong type ({first})"


def _split_arrays(frame: pl.DataFrame) -> pl.DataFrame:
    """Lines holding a JSON array become one row per element, keeping their line number."""
    is_array = pl.col("_raw").str.starts_with("[")
    arrays = frame.filter(is_array)
    if arrays.height == 0:
        return frame
    lines: list[int] = []
    raws: list[str] = []
    for line, raw in arrays.select("_line", "_raw").iter_rows():
        try:
            elements = json.loads(raw)
        except json.JSONDecodeError:
            elements = None
        if isinstance(elements, list) and elements:
            lines.extend([line] * len(elements))
            raws.extend(json.dumps(e) for e in elements)
        else:
            lines.append(line)
            raws.append(raw)
    shaped = [r.startswith("{") and r.endswith("}") for r in raws]
    exploded = pl.DataFrame({"_line": lines, "_raw": raws, "_shaped": shaped}, schema=frame.schema)
    return pl.concat([frame.filter(~is_array), exploded]).sort("_line", maintain_order=True)


def read_jsonl(
    path: Path,
    dtype: pl.Struct,
    normalize: Callable[[dict], dict] | None = None,
    split_arrays: bool = False,
) -> ParsedFile:
    """Read a JSON lines file (optionally gzipped); a line holds one object.

    With ``split_arrays`` a line may also hold an array of objects (a webhook POST
    body), each becoming a record with that line's number. ``normalize`` is
    applied only to lines that failed the fast path, so that a format's legal
    variants (a SendGrid ``category`` given as a string instead of a list, say)
    are accepted without slowing down the common case.
    """
    data, rejects = _blank_invalid_utf8(read_bytes(path))
    stripped = pl.col("_raw").str.strip_chars()
    frame = (
        pl.read_lines(data, name="_raw", row_index_name="_line", row_index_offset=1)
        .lazy()
        .select(
            pl.col("_line").cast(pl.Int64),
            pl.col("_raw").str.strip_chars_end("\r"),
            # A line that is not {...} cannot be a record: it goes straight to the slow
            # path so that truncated lines do not make whole chunks fail to decode.
            (stripped.str.starts_with("{") & stripped.str.ends_with("}")).alias("_shaped"),
        )
        .filter(stripped != "")
        .collect()
    )
    if split_arrays:
        frame = _split_arrays(frame)
    shaped = frame.filter("_shaped")
    misshapen = frame.filter(~pl.col("_shaped"))
    lines = shaped["_raw"]

    bounds = [(s, min(s + CHUNK_LINES, len(lines))) for s in range(0, len(lines), CHUNK_LINES)]
    decode = lambda b: _decode_range(lines, dtype, *b)  # noqa: E731
    results = list(_pool.map(decode, bounds) if pl.thread_pool_size() > 1 else map(decode, bounds))
    decoded = [part for res in results for _, part in res[0]]
    failed = [i for res in results for i in res[1]]

    # The failures and the misshapen lines: name what is wrong, or accept the
    # line once the format's legal variants are normalised.
    slow = pl.concat([shaped[failed], misshapen]) if failed else misshapen
    repaired_rows: list[int] = []
    repaired: list[pl.Series] = []
    for row, (line, raw) in enumerate(slow.select("_line", "_raw").iter_rows()):
        value, reason, message = _classify_json_line(raw, dtype, normalize)
        if value is None:
            rejects.append(Reject(line, reason, message, raw))
        else:
            repaired_rows.append(row)
            repaired.append(value)

    base = shaped
    if failed:
        base = shaped.with_row_index("_i").filter(~pl.col("_i").is_in(failed)).drop("_i")
    parts = [base.with_columns(pl.concat(decoded).alias("_rec"))] if decoded else []
    if repaired:
        parts.append(slow[repaired_rows].with_columns(pl.concat(repaired).alias("_rec")))
    if parts:
        records = pl.concat(parts).drop("_shaped").unnest("_rec")
    else:
        empty = pl.DataFrame(schema={"_line": pl.Int64, "_raw": pl.String, "_rec": dtype})
        records = empty.unnest("_rec")
    if repaired:
        records = records.sort("_line")
    rejects.sort(key=lambda r: r.line)
    return ParsedFile(records, rejects)


def read_csv(
    path: Path, columns: list[str], required: list[str], pii_columns: tuple[str, ...] = ()
) -> ParsedFile:
    """Read a CSV export with a header row; every value is a string.

    Quoted fields may span lines; ``_line`` is the line where a record starts.
    ``_raw`` is the record with its PII columns replaced, so that a record rejected
    later can be quarantined without them; a record whose field count does not
    match the header cannot be aligned with it, so its fields are withheld.
    """
    data = read_bytes(path)
    text = data.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        return ParsedFile(_empty_csv_frame(columns))
    missing = [c for c in required if c not in header]
    if missing:
        raise UnreadableFileError(
            f"the header lacks the required column(s) {', '.join(missing)}; found {header}"
        )
    index = {c: header.index(c) for c in columns if c in header}
    pii_positions = {i for i, h in enumerate(header) if h in pii_columns}
    cols: dict[str, list[str | None]] = {c: [] for c in columns}
    line_numbers: list[int] = []
    raws: list[str] = []
    rejects: list[Reject] = []
    start = reader.line_num + 1
    for row in reader:
        line = start
        start = reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            rejects.append(
                Reject(
                    line,
                    "invalid_csv",
                    f"the record has {len(row)} fields where the header has {len(header)}",
                    f"[{len(row)} fields withheld: they cannot be matched to the header]",
                )
            )
            continue
        raw = ",".join("[redacted]" if i in pii_positions and v else v for i, v in enumerate(row))
        if any(_SURROGATE.search(v) for v in row):
            rejects.append(
                Reject(
                    line,
                    "invalid_utf8",
                    "the record holds bytes that are not UTF-8 (re-export the file as UTF-8)",
                    raw.encode("utf-8", errors="surrogateescape").decode("utf-8", "replace"),
                )
            )
            continue
        for c in columns:
            i = index.get(c)
            value = row[i] if i is not None else None
            cols[c].append(value if value != "" else None)
        line_numbers.append(line)
        raws.append(raw)
    frame = pl.DataFrame(
        {"_line": line_numbers, "_raw": raws, **cols},
        schema={"_line": pl.Int64, "_raw": pl.String, **dict.fromkeys(columns, pl.String)},
    )
    return ParsedFile(frame, rejects)


def _empty_csv_frame(columns: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        schema={"_line": pl.Int64, "_raw": pl.String, **dict.fromkeys(columns, pl.String)}
    )
