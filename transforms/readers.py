"""Bounded, robust record readers for JSON lines and CSV landing files.

A landing file is untrusted. It is opened without following links and only if it is a
regular file; it is read up to ``Limits.max_file_bytes`` after decompression, and a
compressed file that grows more than ``Limits.max_compression_ratio`` times is refused as
a decompression bomb. A UTF-8 byte order mark is dropped and a UTF-16 or UTF-32 file is
converted to UTF-8, so every later step (and the masking of personal data) sees text.

The readers yield the file in chunks of at most ``CHUNK_RECORDS`` records, so the
working memory of a file does not grow with the number of records it holds. Every
string leaf comes back as ``pl.String``, so that type problems are found by the
adapters' validation rules (with a reason per record) rather than by a parser that
gives up on the whole file. Records that cannot be parsed at all come back as rejects
with their line number: a line or a CSV field over its limit, invalid UTF-8, invalid
JSON (nested too deep included).

JSON lines are decoded by Polars in sub-chunks. A sub-chunk that fails to decode is
bisected until the offending lines are isolated, so a file with a few broken lines
costs little more than a clean one, and each broken line is named.

The format is told by content, not by name: a gzip file is recognised by its magic
bytes, and a JSON file whose first line opens a value it does not close (a pretty-printed
array or object, as a webhook body is saved) is read as one document (``_read_document``)
rather than line by line. ``sniff`` names the format of a file whose name does not.

A CSV export is read in the dialect it is written in: comma, semicolon, tab or pipe
separated (``csv_delimiter`` tells which from the header row), with the same quoting
rules. A semicolon- or tab-separated file that writes its numbers with a decimal comma
has them read as numbers (``_decimal_comma_columns``).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import json
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from transforms import pii

CHUNK_LINES = 1024  # lines per Polars decode call
CHUNK_RECORDS = 100_000  # records per chunk handed to an adapter
_READ_BLOCK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
SNIFF_BYTES = 64 << 10  # what ``sniff`` reads (after decompression) to tell a format
_NOT_JSON_SPACE = re.compile(r"[^ \t\r\n]")
_NOT_JSON_SPACE_BYTES = re.compile(rb"[^ \t\r\n]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f]")
# What a rejected document tail keeps of its text (the quarantine cuts it further).
_TAIL_RAW_CHARS = 4096
_SURROGATE = re.compile("[\udc80-\udcff]")
# Decoding releases the GIL, so sub-chunks decode in parallel across Polars' threads; a
# process that runs with one Polars thread (a parallel ingest worker) decodes inline.
_pool = ThreadPoolExecutor(
    max_workers=max(1, pl.thread_pool_size()), thread_name_prefix="cjm-decode"
)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UnreadableFileError(Exception):
    """The file cannot be opened, decompressed or understood as a whole."""

    reason = "unreadable_file"


class FileTooLargeError(UnreadableFileError):
    """The file is over a size limit: refused whole, before it can cost memory."""

    reason = "file_too_large"


@dataclass(frozen=True)
class Limits:
    """What one landing file may cost (see the CJM_MAX_* settings)."""

    max_file_bytes: int = 1 << 30
    max_compression_ratio: float = 200.0
    max_line_bytes: int = 8 << 20
    max_field_chars: int = 1 << 20


@dataclass
class Reject:
    line: int
    reason: str
    message: str
    raw: str


@dataclass
class ParsedFile:
    """Decoded records of a chunk (one column per native field, plus ``_line`` and
    ``_raw``), the records rejected while reading, and notes about the file."""

    records: pl.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Records of the whole file, when the reader knows them from its first chunk.
    records_in_file: int | None = None

    @property
    def read(self) -> int:
        return self.records.height + len(self.rejects)


def _open_regular(path: Path) -> io.BufferedReader:
    """Open a landing file for reading: never through a link, never a FIFO or device."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnreadableFileError(f"cannot open it ({exc.strerror})") from exc
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise UnreadableFileError("it is not a regular file")
    return handle


def _too_large(limits: Limits) -> FileTooLargeError:
    return FileTooLargeError(
        f"it holds more than {limits.max_file_bytes:,} bytes (CJM_MAX_FILE_BYTES); "
        "split the export into smaller files or raise the limit"
    )


def read_bytes(path: Path, limits: Limits | None = None) -> bytes:
    """The file's bytes, decompressed when they are gzip (by content, whatever the
    name), within the limits."""
    limits = limits or Limits()
    with _open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            magic = handle.read(len(GZIP_MAGIC))
            handle.seek(0)
            if magic != GZIP_MAGIC:
                data = handle.read(limits.max_file_bytes + 1)
                if len(data) > limits.max_file_bytes:
                    raise _too_large(limits)
                return data
            return _gunzip(handle, size, limits)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFileError(f"{type(exc).__name__}: {exc}") from exc


def _gunzip(handle: io.BufferedReader, compressed: int, limits: Limits) -> bytes:
    """Decompress in blocks, stopping as soon as a limit is passed (a 50 KB bomb must
    not get the chance to become gigabytes)."""
    ceiling = min(limits.max_file_bytes, max(compressed, 1) * limits.max_compression_ratio)
    parts: list[bytes] = []
    total = 0
    with gzip.GzipFile(fileobj=handle) as unzipped:
        while block := unzipped.read(_READ_BLOCK):
            total += len(block)
            if total > ceiling:
                if total > limits.max_file_bytes:
                    raise _too_large(limits)
                raise FileTooLargeError(
                    f"its {compressed:,} compressed bytes grow more than "
                    f"{limits.max_compression_ratio:g} times (CJM_MAX_COMPRESSION_RATIO): "
                    "refused as a decompression bomb"
                )
            parts.append(block)
    return b"".join(parts)


def _utf16_without_bom(sample: bytes) -> str | None:
    """'utf-16-le' or '-be' when the sample looks like UTF-16 text without a BOM: its NUL
    bytes (the high bytes of ASCII characters: the newlines, braces and commas of any
    export, however little of its text is ASCII) sit on one side of the byte pairs.
    UTF-8 text holds no NUL byte."""
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 2 and even * 10 <= odd and _newlines_pair(sample, b"\n\x00"):
        return "utf-16-le"
    if even >= 2 and odd * 10 <= even and _newlines_pair(sample, b"\x00\n"):
        return "utf-16-be"
    return None


def _newlines_pair(sample: bytes, newline: bytes) -> bool:
    """Every newline of UTF-16 text is one byte pair: a sample with a newline byte at
    the pair's place but not that pair is UTF-8 that happens to hold NUL bytes."""
    place = 0 if newline[0] == 0x0A else 1
    pairs = (sample[i : i + 2] for i in range(0, len(sample) - 1, 2))
    return all(pair == newline for pair in pairs if pair[place] == 0x0A)


def to_utf8(data: bytes) -> tuple[bytes, list[str]]:
    """UTF-8 bytes of the file, and what was changed to get them (for the manifest)."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    encoding = encoding or _utf16_without_bom(data[:4096])
    if encoding is None:
        return data, []
    if encoding == "utf-8-sig":
        return data[len(codecs.BOM_UTF8) :], ["a UTF-8 byte order mark was removed"]
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"it looks like {encoding.upper()} text but byte {exc.start + 1} does not decode; "
            "re-export the file as UTF-8"
        ) from exc
    return text.lstrip("\ufeff").encode("utf-8"), [
        f"read as {encoding.upper()}, converted to UTF-8"
    ]


def read_text(path: Path, limits: Limits) -> tuple[bytes, list[str]]:
    return to_utf8(read_bytes(path, limits))


# What a landing file's name says of its format (after a final .gz, in lower case). A
# .txt file says nothing: its content tells (``sniff``).
# The names a source's landing files may have, by format (any case, optionally gzipped).
JSON_GLOBS = ("*.jsonl", "*.jsonl.gz", "*.ndjson", "*.ndjson.gz", "*.json", "*.json.gz")
CSV_GLOBS = ("*.csv", "*.csv.gz", "*.tsv", "*.tsv.gz")
NAMED_FORMATS = {
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
}
# The delimiters a CSV export may use; a tie between them goes to the first.
CSV_DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# Rows after the header that ``csv_delimiter`` checks for a consistent split.
_SAMPLE_ROWS = 5
# A number written with a decimal comma, and one written with a decimal point. A comma
# followed by exactly three digits (1,250) may as well group thousands: only a value
# with another number of digits after its comma (4,5; 12,50) shows a decimal comma.
_DECIMAL_COMMA = r"^\s*[+-]?\d+,\d+\s*$"
_ONLY_DECIMAL_COMMA = r"^\s*[+-]?\d+,(?:\d{1,2}|\d{4,})\s*$"
_DECIMAL_POINT = r"^\s*[+-]?\d*\.\d+\s*$"


def extension(path: Path) -> str:
    """The last extension of a file's name, in lower case, after a final .gz."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def named_format(path: Path) -> str:
    """'json' or 'csv' when the name's extension says so ('' when it does not)."""
    return NAMED_FORMATS.get(extension(path), "")


def sniff(path: Path, limits: Limits) -> str:
    """What the content of a file is, from its first ``SNIFF_BYTES`` (decompressed when
    gzip): 'json' (the first character that is not white space is [ or {), 'csv' (text
    whose first line holds a comma, or a semicolon, tab or pipe that splits the next
    lines into as many fields), 'text', 'binary' (control characters), 'empty', or
    'unreadable: <why>'. Only the beginning is read, within the limits."""
    try:
        with _open_regular(path) as handle:
            head = handle.read(SNIFF_BYTES)
    except UnreadableFileError as exc:
        return f"unreadable: {exc}"
    if head.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(wbits=31).decompress(head, SNIFF_BYTES)
        except zlib.error as exc:
            return f"unreadable: it starts as gzip but does not decompress ({exc})"
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    encoding = encoding or _utf16_without_bom(head[:4096]) or "utf-8"
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    first = _NOT_JSON_SPACE.search(text)
    if first is None:
        return "empty"
    if text[first.start()] in "[{":
        return "json"
    if _CONTROL.search(text):
        return "binary"
    # From the start of the first line that is not blank (a tab may open it).
    text = text[text.rfind("\n", 0, first.start()) + 1 :]
    first_line = text.split("\n", 1)[0]
    if "," in first_line or any(
        _splits_evenly(text, len(head) >= SNIFF_BYTES, d)
        for d in CSV_DELIMITERS[1:]
        if d in first_line
    ):
        return "csv"
    return "text"


def _splits_evenly(text: str, cut: bool, delimiter: str) -> bool:
    """Whether ``delimiter`` splits the text's first line into fields and the rows after
    it into as many (at least one row: a line of prose may hold a semicolon too)."""
    header, rows = _sample_rows(text, cut, delimiter)
    return len(header) > 1 and bool(rows) and all(len(r) == len(header) for r in rows)


def is_csv(path: Path, limits: Limits) -> bool:
    """Whether a file of a source that reads CSV and JSON is CSV: by its name's
    extension, or by its content when the name has none that says."""
    return (named_format(path) or sniff(path, limits)) == "csv"


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


def _json_loads(raw: str) -> tuple[object, str]:
    """A line's JSON value, or why it is not one ('' when it parsed)."""
    try:
        return json.loads(raw), ""
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, "not valid JSON (nested too deeply)"


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
    value, problem = _json_loads(raw)
    if problem:
        return None, "invalid_json", problem
    if isinstance(value, list):
        # Only where a record makes several events (orders): elements sharing a line
        # could not be told apart when their events are counted back to records.
        return (
            None,
            "wrong_type",
            (
                f"the line holds a JSON array of {len(value):,} values, not one object: write "
                "one record per line (JSON lines), or pretty-print the array, one record per line"
            ),
        )
    if not isinstance(value, dict):
        return None, "wrong_type", f"the record is a JSON {type(value).__name__}, not an object"
    if normalize is not None:
        value = normalize(value)
    try:
        return pl.Series([json.dumps(value)]).str.json_decode(dtype), "", ""
    except pl.exceptions.PolarsError as exc:
        first = str(exc).splitlines()[0].replace("error deserializing JSON: ", "")
        return None, "wrong_type", f"a field has the wrong type ({pii.masked_excerpt(first, 200)})"


def _split_arrays(frame: pl.DataFrame) -> pl.DataFrame:
    """Lines holding a JSON array become one row per element, keeping their line number."""
    is_array = pl.col("_raw").str.starts_with("[")
    arrays = frame.filter(is_array)
    if arrays.height == 0:
        return frame
    lines: list[int] = []
    raws: list[str] = []
    for line, raw in arrays.select("_line", "_raw").iter_rows():
        elements, _ = _json_loads(raw)
        if isinstance(elements, list) and elements:
            lines.extend([line] * len(elements))
            raws.extend(json.dumps(e) for e in elements)
        else:
            lines.append(line)
            raws.append(raw)
    shaped = [r.startswith("{") and r.endswith("}") for r in raws]
    exploded = pl.DataFrame({"_line": lines, "_raw": raws, "_shaped": shaped}, schema=frame.schema)
    return pl.concat([frame.filter(~is_array), exploded]).sort("_line", maintain_order=True)


def page_records(value: object, path: str) -> list | None:
    """The list of records at ``path`` (dotted) in a page of an API's response, or None
    when the value is not such a page."""
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, list) else None


def _unwrap_pages(frame: pl.DataFrame, path: str) -> pl.DataFrame:
    """Lines that are pages holding their records at ``path`` become the JSON array of
    those records (split by ``_split_arrays``); a page with no records is dropped. Any
    other line is left as it is."""
    first_key = json.dumps(path.split(".")[0])
    maybe = pl.col("_shaped") & pl.col("_raw").str.contains(first_key, literal=True)
    pages = frame.filter(maybe)
    if pages.height == 0:
        return frame
    lines: list[int] = []
    raws: list[str] = []
    for line, raw in pages.select("_line", "_raw").iter_rows():
        value, _ = _json_loads(raw)
        records = page_records(value, path)
        if records is None:
            lines.append(line)
            raws.append(raw)
        elif records:
            lines.append(line)
            raws.append(json.dumps(records, ensure_ascii=False))
    shaped = [r.startswith("{") for r in raws]
    unwrapped = pl.DataFrame({"_line": lines, "_raw": raws, "_shaped": shaped}, schema=frame.schema)
    return pl.concat([frame.filter(~maybe), unwrapped]).sort("_line", maintain_order=True)


def _too_long(lines: pl.DataFrame, limit: int) -> tuple[pl.DataFrame, list[Reject]]:
    """Split off the lines longer than the limit; they are rejected without being parsed."""
    long = pl.col("_raw").str.len_bytes() > limit
    over = lines.filter(long)
    rejects = [
        Reject(
            line,
            "record_too_large",
            f"the record is {len(raw.encode()):,} bytes, over CJM_MAX_LINE_BYTES ({limit:,})",
            raw,
        )
        for line, raw in over.select("_line", "_raw").iter_rows()
    ]
    return (lines.filter(~long) if rejects else lines), rejects


def read_jsonl(
    path: Path,
    limits: Limits,
    dtype: pl.Struct,
    normalize: Callable[[dict], dict] | None = None,
    split_arrays: bool = False,
    records_at: str | None = None,
) -> Iterator[ParsedFile]:
    """Read a JSON lines file (optionally gzipped) in chunks; a line holds one object.

    A file that is one pretty-printed document is read as such (``_read_document``).
    With ``split_arrays`` a line may also hold an array of objects (a webhook POST
    body), each becoming a record with that line's number. With ``records_at`` (a
    dotted path) a line or document may also be a page of an API's response holding
    its records in a list at that path (``{"reviews": [...], "nextPageToken": ...}``):
    each record of the list becomes a record at the page's line, the rest of the page
    is dropped, and arrays are split as well. ``normalize`` is
    applied only to lines that failed the fast path, so that a format's legal
    variants (a SendGrid ``category`` given as a string instead of a list, say)
    are accepted without slowing down the common case.
    """
    data, notes = read_text(path, limits)
    document = _read_document(data) if _may_be_document(data) else None
    if document is not None:
        del data
        yield from _document_chunks(
            document, limits, dtype, normalize, notes, split_arrays, records_at
        )
        return
    data, rejects = _blank_invalid_utf8(data)
    stripped = pl.col("_raw").str.strip_chars()
    lines = (
        pl.read_lines(data, name="_raw", row_index_name="_line", row_index_offset=1)
        .lazy()
        .select(pl.col("_line").cast(pl.Int64), pl.col("_raw").str.strip_chars_end("\r"))
        .filter(stripped != "")
        .collect()
    )
    del data
    # A page of records is held to the line limit record by record, once unwrapped.
    page_limit = limits.max_line_bytes if records_at is not None else None
    if page_limit is None:
        lines, long = _too_long(lines, limits.max_line_bytes)
        rejects += long
    if lines.height == 0:
        yield ParsedFile(_empty_records(dtype), sorted(rejects, key=lambda r: r.line), notes)
        return
    for start in range(0, lines.height, CHUNK_RECORDS):
        chunk = lines.slice(start, CHUNK_RECORDS)
        parsed = _parse_json_chunk(chunk, dtype, normalize, split_arrays, records_at, page_limit)
        if start == 0:
            parsed.rejects = sorted(parsed.rejects + rejects, key=lambda r: r.line)
            parsed.notes = notes
            # A line is a record, unless a line may hold an array (or a page) of them.
            whole = not split_arrays and records_at is None
            parsed.records_in_file = lines.height + len(rejects) if whole else None
        yield parsed


def _may_be_document(data: bytes) -> bool:
    """True when the first line opens a JSON array or object that it does not close:
    the file may be one document spread over lines (``_read_document`` decides)."""
    first = _NOT_JSON_SPACE_BYTES.search(data)
    if first is None or data[first.start() : first.start() + 1] not in (b"[", b"{"):
        return False
    end = data.find(b"\n", first.start())
    if end == -1:
        return False
    try:
        json.loads(data[first.start() : end].decode("utf-8", errors="surrogateescape"))
    except (ValueError, RecursionError):
        return True
    return False


@dataclass
class _Document:
    lines: list[int]
    raws: list[str]
    rejects: list[Reject]


class _Break(Exception):
    def __init__(self, at: int, message: str) -> None:
        super().__init__(message)
        self.at = at
        self.message = message


def _read_document(data: bytes) -> _Document | None:
    """The records of a file read as JSON documents (pretty-printed or not) separated by
    white space, or None when its first record cannot be read (then it is JSON lines).

    A top-level array stands for its elements. Every element (or top-level value) is a
    record, at the line where it starts; its text is kept as written. A record holding
    bytes that are not UTF-8 is rejected alone. Where the document breaks (invalid JSON,
    a missing comma, the end of the file before the closing bracket), the records before
    the break stand and the rest of the file is one record rejected as ``invalid_json``
    at the line where the break starts.
    """
    text = data.decode("utf-8", errors="surrogateescape")
    decoder = json.JSONDecoder()
    found = _Document([], [], [])
    counted = [0, 1]  # position up to which newlines are counted, and the line there

    def line_at(pos: int) -> int:
        counted[1] += text.count("\n", counted[0], pos)
        counted[0] = pos
        return counted[1]

    def skip(pos: int) -> int:
        match = _NOT_JSON_SPACE.search(text, pos)
        return match.start() if match else len(text)

    def record(pos: int) -> int:
        try:
            _, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise _Break(pos, f"{exc.msg}, line {exc.lineno} column {exc.colno}") from exc
        except RecursionError as exc:
            raise _Break(pos, "nested too deeply") from exc
        raw = text[pos:end]
        if _SURROGATE.search(raw):
            found.rejects.append(
                Reject(
                    line_at(pos),
                    "invalid_utf8",
                    "the record holds bytes that are not UTF-8 (re-export the file as UTF-8)",
                    raw.encode("utf-8", errors="surrogateescape").decode("utf-8", "replace"),
                )
            )
        else:
            found.lines.append(line_at(pos))
            found.raws.append(raw)
        return skip(end)

    pos = skip(0)
    try:
        while pos < len(text):
            if text[pos] != "[":
                pos = record(pos)
                continue
            pos = skip(pos + 1)
            if text[pos : pos + 1] == "]":
                pos = skip(pos + 1)
                continue
            while True:
                pos = record(pos)
                if text[pos : pos + 1] not in (",", "]"):
                    what = "the end of the file" if pos == len(text) else "another character"
                    raise _Break(pos, f"expected ',' or ']' after an array element, found {what}")
                closed = text[pos] == "]"
                pos = skip(pos + 1)
                if closed:
                    break
    except _Break as broke:
        if not found.lines and not found.rejects:
            return None
        start = line_at(broke.at)
        found.rejects.append(
            Reject(
                start,
                "invalid_json",
                f"not valid JSON ({broke.message}): the document cannot be read past this "
                f"point, and the rest of the file from line {start} is this one record",
                text[broke.at : broke.at + _TAIL_RAW_CHARS]
                .encode("utf-8", errors="surrogateescape")
                .decode("utf-8", "replace"),
            )
        )
    return found


def _document_chunks(
    document: _Document,
    limits: Limits,
    dtype: pl.Struct,
    normalize: Callable[[dict], dict] | None,
    notes: list[str],
    split_arrays: bool = False,
    records_at: str | None = None,
) -> Iterator[ParsedFile]:
    """A document's records in chunks, through the same checks as JSON lines (a record
    that is an array stands for its elements, as a line does, when arrays are split)."""
    records = pl.DataFrame(
        {"_line": document.lines, "_raw": document.raws},
        schema={"_line": pl.Int64, "_raw": pl.String},
    )
    page_limit = limits.max_line_bytes if records_at is not None else None
    rejects = []
    if page_limit is None:
        records, rejects = _too_long(records, limits.max_line_bytes)
    rejects += document.rejects
    total = records.height + len(rejects)
    notes = [*notes, "read as one JSON document, not line by line"]
    if records.height == 0:
        yield ParsedFile(_empty_records(dtype), sorted(rejects, key=lambda r: r.line), notes, total)
        return
    for start in range(0, records.height, CHUNK_RECORDS):
        chunk = records.slice(start, CHUNK_RECORDS)
        parsed = _parse_json_chunk(chunk, dtype, normalize, split_arrays, records_at, page_limit)
        if start == 0:
            parsed.rejects = sorted(parsed.rejects + rejects, key=lambda r: r.line)
            parsed.notes = notes
            whole = not split_arrays and records_at is None
            parsed.records_in_file = total if whole else None
        yield parsed


def _empty_records(dtype: pl.Struct) -> pl.DataFrame:
    return pl.DataFrame(schema={"_line": pl.Int64, "_raw": pl.String, "_rec": dtype}).unnest("_rec")


def _parse_json_chunk(
    chunk: pl.DataFrame,
    dtype: pl.Struct,
    normalize: Callable[[dict], dict] | None,
    split_arrays: bool,
    records_at: str | None = None,
    record_limit: int | None = None,
) -> ParsedFile:
    stripped = pl.col("_raw").str.strip_chars()
    # A line that is not {...} cannot be a record: it goes straight to the slow path so
    # that truncated lines do not make whole sub-chunks fail to decode.
    frame = chunk.with_columns(
        (stripped.str.starts_with("{") & stripped.str.ends_with("}")).alias("_shaped")
    )
    if records_at is not None:
        frame = _unwrap_pages(frame, records_at)
    if split_arrays or records_at is not None:
        frame = _split_arrays(frame)
    long: list[Reject] = []
    if record_limit is not None:
        frame, long = _too_long(frame, record_limit)
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
    rejects: list[Reject] = long
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
    records = pl.concat(parts).drop("_shaped").unnest("_rec") if parts else _empty_records(dtype)
    if repaired:
        records = records.sort("_line")
    rejects.sort(key=lambda r: r.line)
    return ParsedFile(records, rejects)


def read_csv(
    path: Path,
    limits: Limits,
    columns: list[str],
    required: list[str | tuple[str, ...]],
    pii_columns: tuple[str, ...] = (),
    numbers: tuple[str, ...] = (),
    delimiter: str | None = None,
) -> Iterator[ParsedFile]:
    """Read a CSV export with a header row in chunks; every value is a string.

    A required entry that is a tuple names alternatives: the header needs one of them.
    The delimiter is ``csv_delimiter``'s (unless given); any but a comma is said in the
    notes. ``numbers`` are the columns that hold numbers: those a semicolon- or
    tab-separated file writes with decimal commas are given decimal points
    (``_decimal_comma_columns``).

    Quoted fields may span lines; ``_line`` is the line where a record starts.
    ``_raw`` is the record with its PII columns replaced, so that a record rejected
    later can be quarantined without them; a record whose field count does not
    match the header cannot be aligned with it, so its fields are withheld.
    """
    data, notes = read_text(path, limits)
    text = data.decode("utf-8", errors="surrogateescape")
    del data
    # The field limit is the csv module's own guard; it is global to the process, and
    # every reader sets it before it reads.
    csv.field_size_limit(limits.max_field_chars)
    delimiter = delimiter or csv_delimiter(text, columns)
    if delimiter != ",":
        notes = [*notes, f"read as {DELIMITER_NAMES[delimiter]}-separated"]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        yield ParsedFile(_empty_csv_frame(columns), notes=notes)
        return
    except csv.Error as exc:
        raise UnreadableFileError(f"the header row cannot be read as CSV ({exc})") from exc
    _check_header(header, columns, required)
    index = {c: header.index(c) for c in columns if c in header}
    pii_positions = {i for i, h in enumerate(header) if h in pii_columns}
    chunk = _CsvChunk(columns, delimiter)
    decimal_commas: list[str] | None = None  # decided on the first chunk
    start = reader.line_num + 1
    while True:
        line = start
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            start = reader.line_num + 1
            reason = "record_too_large" if "field limit" in str(exc) else "invalid_csv"
            detail = (
                f"a field is longer than CJM_MAX_FIELD_CHARS ({limits.max_field_chars:,})"
                if reason == "record_too_large"
                else f"the record is not valid CSV ({exc})"
            )
            chunk.rejects.append(Reject(line, reason, detail, "[fields withheld]"))
            continue
        start = reader.line_num + 1
        chunk.add(row, line, header, index, pii_positions, limits)
        if chunk.read >= CHUNK_RECORDS:
            parsed, decimal_commas = _finished(chunk, notes, numbers, decimal_commas)
            yield parsed
            notes = []
            chunk = _CsvChunk(columns, delimiter)
    yield _finished(chunk, notes, numbers, decimal_commas)[0]


def csv_delimiter(text: str, columns: Iterable[str]) -> str:
    """The delimiter a CSV export is written with, from its beginning: of
    ``CSV_DELIMITERS``, the one that splits the header row into the most distinct known
    ``columns``; among those, one that splits the next rows into as many fields as the
    header. A tie goes to the comma (the first), and so does a header in which no
    delimiter finds a known column name."""
    head = text[:SNIFF_BYTES]
    known = set(columns)
    scores = {d: _split_score(head, len(head) < len(text), d, known) for d in CSV_DELIMITERS}
    return max(CSV_DELIMITERS, key=scores.__getitem__)


def _split_score(head: str, cut: bool, delimiter: str, known: set[str]) -> tuple[int, bool]:
    """How well ``delimiter`` splits ``head``: the known column names of its header row
    (0 when it has none) and whether the sample rows have the header's field count."""
    header, rows = _sample_rows(head, cut, delimiter)
    names = len({h.strip().lstrip("\ufeff") for h in header} & known)
    if not names:
        return 0, False
    return names, rows is not None and all(len(r) == len(header) for r in rows)


def _sample_rows(head: str, cut: bool, delimiter: str) -> tuple[list[str], list[list[str]] | None]:
    """The header row of ``head`` split by ``delimiter``, and up to ``_SAMPLE_ROWS``
    non-blank rows after it (None when they are not valid CSV). A row that ``head``
    may cut short (``cut``: the file goes on) is left out."""
    reader = csv.reader(io.StringIO(head, newline=""), delimiter=delimiter)
    try:
        header = next(reader, [])
    except csv.Error:
        return [], None
    try:
        rows = list(itertools.islice(reader, _SAMPLE_ROWS + 1))
    except csv.Error:
        return header, None
    if cut and len(rows) <= _SAMPLE_ROWS:
        rows = rows[:-1]
    return header, [r for r in rows[:_SAMPLE_ROWS] if r and not (len(r) == 1 and not r[0].strip())]


def _decimal_comma_columns(
    records: pl.DataFrame, numbers: tuple[str, ...], delimiter: str
) -> list[str]:
    """The number columns to read with a decimal comma: in a semicolon- or tab-separated
    file only (where a comma cannot be the delimiter), those whose values in the first
    chunk are written with a decimal comma (``4,5``) and never with a decimal point. A
    column that also holds ``12.50`` uses the point, so a comma there is not a decimal
    one and such a value stays wrong; so does a column whose commas are all followed by
    three digits (``1,250``: thousands grouped, or a decimal, nobody can tell)."""
    if delimiter not in (";", "\t"):
        return []
    found = []
    for name in numbers:
        if name not in records.columns:
            continue
        values = records[name].drop_nulls()
        if (
            values.str.contains(_ONLY_DECIMAL_COMMA).any()
            and not values.str.contains(_DECIMAL_POINT).any()
        ):
            found.append(name)
    return found


def _finished(
    chunk: _CsvChunk, notes: list[str], numbers: tuple[str, ...], decimal_commas: list[str] | None
) -> tuple[ParsedFile, list[str]]:
    """A chunk's records, with the decimal commas of the number columns that use them
    written as points (``_raw`` keeps the values as exported); which columns use them
    is decided on the first chunk (``decimal_commas`` is None until then)."""
    parsed = chunk.parsed(notes)
    if decimal_commas is None:
        decimal_commas = _decimal_comma_columns(parsed.records, numbers, chunk.delimiter)
        if decimal_commas:
            note = f"decimal commas read as decimal points in {', '.join(decimal_commas)}"
            parsed.notes = [*parsed.notes, note]
    if decimal_commas:
        parsed.records = parsed.records.with_columns(
            pl.when(pl.col(name).str.contains(_DECIMAL_COMMA))
            .then(pl.col(name).str.replace(",", ".", literal=True))
            .otherwise(pl.col(name))
            .alias(name)
            for name in decimal_commas
        )
    return parsed, decimal_commas


def _check_header(
    header: list[str], columns: list[str], required: list[str | tuple[str, ...]]
) -> None:
    """A header that lacks a required column refuses the file. The message shows the
    header's own cells only when it is clearly a header (most cells are known column
    names): otherwise the first line is data, and its values may be personal."""
    alternatives = [(c,) if isinstance(c, str) else c for c in required]
    missing = [" or ".join(names) for names in alternatives if not set(names) & set(header)]
    if not missing:
        return
    known = [h for h in header if h in columns]
    if len(known) * 2 >= len(header):
        found = f"the header has {', '.join(header[:40])}"
    else:
        found = (
            f"its first line has {len(header)} fields and {len(known)} known column name(s): "
            "it does not look like a header row (values not shown); "
            f"the first line must name the columns: {', '.join(columns)}"
        )
    raise UnreadableFileError(
        f"the header lacks the required column(s) {', '.join(missing)}; {found}"
    )


@dataclass
class _CsvChunk:
    columns: list[str]
    delimiter: str = ","
    cols: dict[str, list[str | None]] = field(default_factory=dict)
    lines: list[int] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cols = {c: [] for c in self.columns}

    @property
    def read(self) -> int:
        return len(self.lines) + len(self.rejects)

    def add(
        self,
        row: list[str],
        line: int,
        header: list[str],
        index: dict[str, int],
        pii_positions: set[int],
        limits: Limits,
    ) -> None:
        if not row or (len(row) == 1 and not row[0].strip()):
            return
        if len(row) != len(header):
            self.rejects.append(
                Reject(
                    line,
                    "invalid_csv",
                    f"the record has {len(row)} fields where the header has {len(header)}",
                    f"[{len(row)} fields withheld: they cannot be matched to the header]",
                )
            )
            return
        raw = self.delimiter.join(
            "[redacted]" if i in pii_positions and v else v for i, v in enumerate(row)
        )
        size = sum(len(v) for v in row)
        if size > limits.max_line_bytes:
            self.rejects.append(
                Reject(
                    line,
                    "record_too_large",
                    f"the record is {size:,} characters, over CJM_MAX_LINE_BYTES "
                    f"({limits.max_line_bytes:,})",
                    raw,
                )
            )
            return
        if any(_SURROGATE.search(v) for v in row):
            self.rejects.append(
                Reject(
                    line,
                    "invalid_utf8",
                    "the record holds bytes that are not UTF-8 (re-export the file as UTF-8)",
                    raw.encode("utf-8", errors="surrogateescape").decode("utf-8", "replace"),
                )
            )
            return
        for c in self.columns:
            i = index.get(c)
            value = row[i] if i is not None else None
            self.cols[c].append(value if value != "" else None)
        self.lines.append(line)
        self.raws.append(raw)

    def parsed(self, notes: list[str]) -> ParsedFile:
        frame = pl.DataFrame(
            {"_line": self.lines, "_raw": self.raws, **self.cols},
            schema={"_line": pl.Int64, "_raw": pl.String, **dict.fromkeys(self.columns, pl.String)},
        )
        return ParsedFile(frame, self.rejects, notes)


def _empty_csv_frame(columns: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        schema={"_line": pl.Int64, "_raw": pl.String, **dict.fromkeys(columns, pl.String)}
    )
