"""Layouts: how a vendor's social or review export maps onto the canonical event.

A layout is a YAML file in ``transforms/layouts/<source>/<name>.yaml``: no code. It
names the columns (CSV) or JSON paths (JSON lines; ``a.b`` is key ``b`` inside ``a``)
a record's canonical fields come from, the columns a file must hold for the layout to
apply (``required``), and how to read each value (timestamp format and zone, rating
scale, value maps). The README's "Bringing your exports" section is the reference.

Which layout reads a file:
1. the one named in a ``_layout`` file of the source's landing folder
   (``landing/<source>/_layout``, one line: the layout's name), if there is one;
2. otherwise the layout whose required columns the file's header (CSV) or first record
   (JSON; the first record of the first page when the file holds pages of an API's
   response, as a layout's ``records`` path says) holds; when several do, the most
   specific one (the most required columns, then the most columns present) wins;
3. otherwise a CSV file is refused whole, with one message naming the closest layout
   and what it lacks; a JSON lines file is read with the project's own layout
   (``cjm``), whose rules then name what each record lacks.

Every layout is checked when it is loaded: a wrong key, format, zone or scale is an
error naming the file, never a silent default.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import yaml

from transforms import pii
from transforms.common import (
    AdapterResult,
    BatchContext,
    Rule,
    excerpt,
    json_object,
    missing_id_rule,
    number,
    parse_epoch_seconds,
    parse_timestamp,
    run_adapter,
    timestamp_rules,
    url_param,
    url_path,
)
from transforms.readers import (
    GZIP_MAGIC,
    Limits,
    ParsedFile,
    UnreadableFileError,
    _open_regular,
    csv_delimiter,
    is_csv,
    page_records,
    read_csv,
    read_jsonl,
    to_utf8,
)

LAYOUT_DIR = Path(__file__).parent / "layouts"
OWN = "cjm"  # the project's own format: the layout a JSON lines file falls back to
LAYOUT_FILE = "_layout"
PEEK_BYTES = 1 << 20  # enough for any header row or first record worth reading

# Canonical fields a layout may map, per source.
COMMON_FIELDS = frozenset(
    {"id", "occurred_at", "platform", "email", "handle", "user_id", "text", "url", "campaign"}
)
FIELDS = {
    "reviews": COMMON_FIELDS
    | {"rating", "title", "language", "order_id", "recommended", "sentiment"},
    "social": COMMON_FIELDS | {"kind", "in_reply_to", "sentiment", "language", "title"},
}
NEEDED = {
    "reviews": ("id", "occurred_at", "platform"),
    "social": ("id", "occurred_at", "platform", "kind"),
}
OPTIONS = frozenset(
    {
        "column",
        "value",
        "hash",
        "format",
        "zone",
        "scale",
        "stars",
        "map",
        "unless",
        "default",
        "list",
    }
)
TIME_FORMATS = frozenset({"iso8601", "date", "epoch_s", "epoch_ms", "epoch_us", "rfc2822"})
# RFC 2822's obsolete zone names (section 4.3) and their offsets.
RFC2822_ZONES = {
    "(?:GMT|UTC?|Z)": "+0000",
    "EST": "-0500",
    "EDT": "-0400",
    "CST": "-0600",
    "CDT": "-0500",
    "MST": "-0700",
    "MDT": "-0600",
    "PST": "-0800",
    "PDT": "-0700",
}
EPOCH_UNITS = {"epoch_s": 1, "epoch_ms": 1_000, "epoch_us": 1_000_000}
STAR_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"), 1
    )
}
IDENTITY = ("email", "handle", "user_id", "order_id")
LIST = "list"  # a leaf of ``_json_dtype``'s tree that holds a list of labels
YES = ("true", "yes", "y", "1")
NO = ("false", "no", "n", "0")
# Social kinds the canonical vocabulary knows; a layout's ``map`` sends its own to these.
SOCIAL_EVENTS = {
    "mention": "social_mention",
    "comment": "social_comment",
    "share": "social_share",
    "dm": "social_dm",
    "ad_click": "social_ad_click",
}


class LayoutError(ValueError):
    """A layout file that cannot be used: the message names the file and the fault."""


@dataclass(frozen=True)
class Spec:
    """Where one canonical field comes from, and how its value is read."""

    column: str | None = None
    value: str | None = None
    hash: tuple[str, ...] = ()
    format: str = "iso8601"
    zone: str = "UTC"
    scale: int = 5
    stars: bool = False
    map: dict[str, str] = field(default_factory=dict)
    # A column that, when it reads true, blanks the field (an anonymous reviewer's
    # stand-in name identifies nobody).
    unless: str | None = None
    # The value a record without the column (or with it blank) reads as, before ``map``:
    # an export that leaves a news article's post type empty still says what it is.
    default: str | None = None
    # The JSON value is a list of labels (general to specific); the field reads the last
    # label the ``map`` knows, else the last one.
    list: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        own = (self.column,) if self.column else self.hash
        return (*own, self.unless) if self.unless else own


@dataclass(frozen=True)
class Layout:
    name: str
    source: str
    file: str
    required: tuple[str, ...]
    fields: dict[str, Spec]
    # Whether a record with no identity at all is quarantined (missing_identity) rather
    # than accepted as unattributed: an anonymous reviewer's review still counts in
    # volume, ratings and sentiment, but a format that always names its author is broken
    # when it does not.
    identity_required: bool = False
    # Where a page of the vendor's API response holds its records (a dotted path to a
    # list: ``reviews``, ``results``): a file of such pages, one a line or pretty-printed,
    # is read record by record, as well as a file of the records themselves.
    records: str | None = None

    @property
    def columns(self) -> list[str]:
        """Every column the layout reads, required ones first, each once."""
        named = [c for spec in self.fields.values() for c in spec.columns]
        return list(dict.fromkeys([*self.required, *named]))

    @property
    def list_columns(self) -> frozenset[str]:
        return frozenset(s.column for s in self.fields.values() if s.list and s.column)

    @property
    def pii_columns(self) -> tuple[str, ...]:
        return tuple(self.fields[f].column for f in ("email", "handle") if f in self.fields)

    def lacks(self, present: set[str]) -> list[str]:
        return [c for c in self.required if c not in present]


# Loading --------------------------------------------------------------------------------


@cache
def layouts(source: str) -> tuple[Layout, ...]:
    """The source's layouts, by name. YAML is read with every scalar a string (so a
    value map's ``yes`` or ``5`` stays what it says)."""
    found = []
    for path in sorted((LAYOUT_DIR / source).glob("*.yaml")):
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
        except yaml.YAMLError as exc:
            raise LayoutError(f"layout {_shown(path)} is not valid YAML ({exc})") from exc
        found.append(_layout(source, path, raw))
    if not found:
        raise LayoutError(f"no layouts for {source} in {_shown(LAYOUT_DIR / source)}")
    return tuple(found)


def _shown(path: Path) -> str:
    try:
        return path.relative_to(LAYOUT_DIR.parent.parent).as_posix()
    except ValueError:
        return path.name


def _layout(source: str, path: Path, raw: object) -> Layout:
    where = f"layout {_shown(path)}"
    if not isinstance(raw, dict):
        raise LayoutError(f"{where} must be a mapping with name, required and fields")
    unknown = set(raw) - {"name", "description", "required", "identity", "records", "fields"}
    if unknown:
        raise LayoutError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = raw.get("name") or path.stem
    if name != path.stem:
        raise LayoutError(f"{where}: its name '{name}' must be its file name '{path.stem}'")
    required = raw.get("required")
    if (
        not isinstance(required, list)
        or not required
        or not all(isinstance(c, str) for c in required)
    ):
        raise LayoutError(f"{where}: 'required' must list the columns a file must hold")
    fields = raw.get("fields")
    if not isinstance(fields, dict):
        raise LayoutError(f"{where}: 'fields' must map canonical fields to columns")
    bad = set(fields) - FIELDS[source]
    if bad:
        raise LayoutError(
            f"{where}: {', '.join(sorted(bad))} is not a {source} field "
            f"(known: {', '.join(sorted(FIELDS[source]))})"
        )
    missing = [f for f in NEEDED[source] if f not in fields]
    if missing:
        raise LayoutError(f"{where}: a {source} layout must map {', '.join(missing)}")
    specs = {
        name_: _spec(f"{where}, field {name_}", name_, value) for name_, value in fields.items()
    }
    for name_ in ("email", "handle", "user_id", "order_id", "id", "occurred_at"):
        if name_ in specs and specs[name_].value is not None and name_ != "id":
            raise LayoutError(f"{where}, field {name_}: must come from a column, not a value")
    identity = raw.get("identity", "optional")
    if identity not in ("required", "optional"):
        raise LayoutError(f"{where}: identity must be required or optional, not '{identity}'")
    records = raw.get("records")
    if records is not None and (not isinstance(records, str) or not records.strip()):
        raise LayoutError(f"{where}: records must be the path of the list in an API page")
    return Layout(
        name, source, _shown(path), tuple(required), specs, identity == "required", records
    )


def _spec(where: str, name: str, raw: object) -> Spec:
    if isinstance(raw, str):
        raw = {"column": raw}
    if not isinstance(raw, dict):
        raise LayoutError(f"{where}: give a column name or a mapping (column: or value:)")
    unknown = set(raw) - OPTIONS
    if unknown:
        raise LayoutError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
    sources = [k for k in ("column", "value", "hash") if k in raw]
    if len(sources) != 1:
        raise LayoutError(f"{where}: give exactly one of column, value or hash")
    if "hash" in raw and (name != "id" or not isinstance(raw["hash"], list) or not raw["hash"]):
        raise LayoutError(f"{where}: only id may be a hash, of a list of columns")
    fmt = raw.get("format", "iso8601")
    if fmt not in TIME_FORMATS and "%" not in fmt:
        raise LayoutError(
            f"{where}: format '{fmt}' is not one of {', '.join(sorted(TIME_FORMATS))} "
            "nor a strftime pattern"
        )
    zone = raw.get("zone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise LayoutError(f"{where}: zone '{zone}' is not an IANA time zone name") from exc
    scale = raw.get("scale", "5")
    if not scale.isdigit() or int(scale) < 5:
        raise LayoutError(f"{where}: scale '{scale}' must be a whole number of 5 or more")
    stars = raw.get("stars", "false")
    if stars not in ("true", "false"):
        raise LayoutError(f"{where}: stars must be true or false")
    listed = raw.get("list", "false")
    if listed not in ("true", "false") or (listed == "true" and "column" not in raw):
        raise LayoutError(f"{where}: list must be true or false, and true only for a column")
    if "default" in raw and ("column" not in raw or name in IDENTITY):
        raise LayoutError(f"{where}: only a column that is not an identity may have a default")
    mapping = raw.get("map", {})
    if not isinstance(mapping, dict):
        raise LayoutError(f"{where}: map must map values to values")
    if name == "kind":
        unknown_kinds = set(mapping.values()) - set(SOCIAL_EVENTS)
        if unknown_kinds:
            raise LayoutError(
                f"{where}: {', '.join(sorted(unknown_kinds))} is not a social kind "
                f"({', '.join(SOCIAL_EVENTS)})"
            )
    return Spec(
        column=raw.get("column"),
        value=raw.get("value"),
        hash=tuple(raw.get("hash", ())),
        format=fmt,
        zone=zone,
        scale=int(scale),
        stars=stars == "true",
        map={k.strip().lower(): v for k, v in mapping.items()},
        unless=raw.get("unless"),
        default=raw.get("default"),
        list=listed == "true",
    )


def own(source: str) -> Layout:
    return next(layout for layout in layouts(source) if layout.name == OWN)


# Choosing ---------------------------------------------------------------------------------


def choose(source: str, present: set[str], path: Path, csv_file: bool) -> Layout:
    """The layout that reads the file (see the module's docstring)."""
    known = layouts(source)
    named = _named(path)
    if named:
        chosen = next((layout for layout in known if layout.name == named), None)
        if chosen is None:
            raise UnreadableFileError(
                f"the {LAYOUT_FILE} file of the {source} landing folder names '{named}', "
                f"which is not a {source} layout (known: {', '.join(x.name for x in known)})"
            )
        return chosen
    fitting = [layout for layout in known if not layout.lacks(present)]
    if fitting:
        return max(
            fitting,
            key=lambda x: (len(x.required), len(set(x.columns) & present), x.name == OWN),
        )
    if not csv_file:
        return own(source)
    closest = max(
        known,
        key=lambda x: (len(x.required) - len(x.lacks(present)), -len(x.required), x.name == OWN),
    )
    all_columns = {c for layout in known for c in layout.columns}
    header = sorted(present)
    if len([c for c in header if c in all_columns]) * 2 >= len(header) > 0:
        found = f"the header has {', '.join(header[:40])}"
    else:
        found = (
            f"its first line has {len(header)} field(s), few of them known column names: "
            "it does not look like a header row (values not shown)"
        )
    raise UnreadableFileError(
        f"no {source} layout matches the header: the closest, '{closest.name}' "
        f"({closest.file}), lacks {', '.join(closest.lacks(present))}; {found}. Add a layout "
        f"for this export (see the README, 'Bringing your exports') or name one in "
        f"landing/{source}/{LAYOUT_FILE}"
    )


def _named(path: Path) -> str:
    """The layout named in the source's landing folder (``landing/<source>/_layout``)."""
    named = path.parent.parent / LAYOUT_FILE
    if not named.is_file() or named.is_symlink():
        return ""
    lines = named.read_text(encoding="utf-8", errors="replace")[:200].split()
    return lines[0] if lines else ""


def _peek(path: Path, limits: Limits) -> str:
    """The file's first ``PEEK_BYTES`` as text (decompressed, converted to UTF-8)."""
    size = min(PEEK_BYTES, limits.max_file_bytes)
    with _open_regular(path) as handle:
        try:
            # Gzip by its magic bytes, whatever the name (an object store's key).
            zipped = handle.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)] == GZIP_MAGIC
            if zipped:
                with gzip.GzipFile(fileobj=handle) as unzipped:
                    data = unzipped.read(size)
            else:
                data = handle.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFileError(f"{type(exc).__name__}: {exc}") from exc
    try:
        data, _ = to_utf8(data)
    except UnreadableFileError:
        # A cut through a character of a UTF-16 file: the reader will say what is wrong.
        return ""
    return data.decode("utf-8", errors="replace")


def _csv_header(text: str, delimiter: str) -> set[str]:
    try:
        row = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    except csv.Error:
        return set()
    return {h.strip().lstrip("\ufeff") for h in row}


def _first_record(text: str) -> object:
    """The file's first record: its first line as JSON lines, or else the first value of
    the document the file holds (a pretty-printed object, or an array's first element,
    as the reader reads such a file)."""
    first = next((line for line in text.split("\n") if line.strip()), "")
    try:
        record = json.loads(first)
    except (ValueError, RecursionError):
        body = text.lstrip().removeprefix("\ufeff").lstrip()
        body = body[1:].lstrip() if body.startswith("[") else body
        try:
            record, _ = json.JSONDecoder().raw_decode(body)
        except (ValueError, RecursionError):
            return None
    if isinstance(record, list):
        return record[0] if record else None
    return record


def _page(text: str, source: str) -> tuple[object, str | None]:
    """The file's first record, and the path of the records' list when the file holds
    pages of an API's response (as a layout of the source names it) rather than the
    records themselves."""
    record = _first_record(text)
    for path in dict.fromkeys(x.records for x in layouts(source) if x.records):
        records = page_records(record, path)
        if records is not None:
            return (records[0] if records else None), path
    return record, None


def _json_paths(record: object) -> set[str]:
    """The dotted paths of a record's keys (two levels deep)."""
    if not isinstance(record, dict):
        return set()
    paths = set(record)
    for key, value in record.items():
        if isinstance(value, dict):
            paths |= {f"{key}.{inner}" for inner in value}
    return paths


# Reading ----------------------------------------------------------------------------------


def parse_file(path: Path, ctx: BatchContext) -> AdapterResult:
    csv_file = is_csv(path, ctx.limits)
    text = _peek(path, ctx.limits)
    # The delimiter is told by the column names of every layout of the source, so that
    # it is the same whichever layout the header then picks.
    known = {c for each in layouts(ctx.source) for c in each.columns}
    delimiter = csv_delimiter(text, known) if csv_file else ","
    first, records_at = (None, None) if csv_file else _page(text, ctx.source)
    present = _csv_header(text, delimiter) if csv_file else _json_paths(first)
    layout = choose(ctx.source, present, path, csv_file)
    if csv_file:
        rating = layout.fields.get("rating")
        chunks = read_csv(
            path,
            ctx.limits,
            layout.columns,
            list(layout.required),
            layout.pii_columns,
            numbers=(rating.column,) if rating is not None and rating.column else (),
            delimiter=delimiter,
        )
    else:
        chunks = read_jsonl(
            path,
            ctx.limits,
            _json_dtype(layout.columns, layout.list_columns),
            split_arrays=True,
            records_at=records_at,
        )
    result = run_adapter(chunks, partial(_prepare, layout, not csv_file), ctx, path)
    if layout.name != OWN:
        result.notes.append(f"read with the {layout.name} layout")
    if records_at is not None:
        result.notes.append(f"read as pages of an API's response (the records in '{records_at}')")
    return result


def _json_dtype(paths: list[str], lists: frozenset[str] = frozenset()) -> pl.Struct:
    tree: dict = {}
    for path in paths:
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node.setdefault(leaf, LIST if path in lists else None)
    return _struct(tree)


def _struct(tree: dict) -> pl.Struct:
    return pl.Struct(
        {
            k: _struct(v) if isinstance(v, dict) else pl.List(pl.String) if v == LIST else pl.String
            for k, v in tree.items()
        }
    )


def _column(name: str, nested: bool) -> pl.Expr:
    if not nested or "." not in name:
        return pl.col(name)
    head, *rest = name.split(".")
    expr = pl.col(head)
    for part in rest:
        expr = expr.struct.field(part)
    return expr


def _raw(layout: Layout, name: str, nested: bool) -> pl.Expr:
    """The field's text as exported (a constant, or the column), null when unmapped."""
    spec = layout.fields.get(name)
    if spec is None:
        return pl.lit(None, dtype=pl.String)
    if spec.value is not None:
        return pl.lit(spec.value, dtype=pl.String)
    if spec.list and nested:
        labels = _column(spec.column, nested)
        known = labels.list.eval(
            pl.element().filter(
                pl.element().str.strip_chars().str.to_lowercase().is_in(list(spec.map))
            )
        )
        value = pl.coalesce(known.list.last(), labels.list.last())
    else:
        value = _column(spec.column, nested).cast(pl.String)
    if spec.default is not None:
        value = pl.coalesce(_blank_to_null(value), pl.lit(spec.default, dtype=pl.String))
    if spec.unless:
        flag = _column(spec.unless, nested).cast(pl.String).str.strip_chars().str.to_lowercase()
        return pl.when(flag.is_in(YES)).then(None).otherwise(value)
    return value


def _mapped(layout: Layout, name: str, nested: bool) -> pl.Expr:
    """The field's value once its ``map`` is applied (values not in the map are kept)."""
    raw = _raw(layout, name, nested)
    spec = layout.fields.get(name)
    if spec is None or not spec.map:
        return raw
    key = raw.str.strip_chars().str.to_lowercase()
    return key.replace_strict(spec.map, default=raw, return_dtype=pl.String)


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.str.strip_chars() != "").then(expr)


def native_id(layout: Layout, nested: bool) -> pl.Expr:
    """The record's own id; a derived one is ``derived:`` and the first 32 hex digits of
    SHA-256 over the named columns' trimmed values joined by U+001F (a missing value is
    empty), null when all of them are missing."""
    spec = layout.fields["id"]
    if not spec.hash:
        return _raw(layout, "id", nested)
    values = [_column(c, nested).cast(pl.String).str.strip_chars() for c in spec.hash]
    joined = pl.concat_str([v.fill_null("") for v in values], separator="\x1f")
    digest = joined.map_batches(
        lambda s: pii.sha256_hex(s, "").str.slice(0, 32), return_dtype=pl.String
    )
    return pl.when(pl.any_horizontal(v.is_not_null() & (v != "") for v in values)).then(
        pl.concat_str(pl.lit("derived:"), digest)
    )


def occurred_at(spec: Spec, text: pl.Expr) -> pl.Expr:
    """A timestamp in the spec's format, in UTC; a naive value is read in its zone."""
    text = text.str.strip_chars()
    if spec.format == "iso8601" and spec.zone == "UTC":
        return parse_timestamp(text)
    if spec.format in EPOCH_UNITS:
        seconds = text.cast(pl.Float64, strict=False) / EPOCH_UNITS[spec.format]
        return parse_epoch_seconds(seconds.cast(pl.String))
    if spec.format == "iso8601":
        aware = text.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, time_zone="UTC", time_unit="us"
        )
        naive = text.str.replace(" ", "T", literal=True).str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"
        )
        return pl.coalesce(aware, _in_zone(naive, spec.zone))
    if spec.format == "date":
        day = text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))
        return _in_zone(day, spec.zone)
    if spec.format == "rfc2822":
        # The weekday and the seconds are optional; an obsolete zone name is its offset.
        bare = text.str.replace(r"^[A-Za-z]{3},\s*", "")
        for name, offset in RFC2822_ZONES.items():
            bare = bare.str.replace(rf"\s+{name}$", f" {offset}")
        return pl.coalesce(
            bare.str.to_datetime(fmt, strict=False, time_zone="UTC", time_unit="us")
            for fmt in ("%d %b %Y %H:%M:%S %z", "%d %b %Y %H:%M %z")
        )
    if any(z in spec.format for z in ("%z", "%#z", "%:z")):
        return text.str.to_datetime(spec.format, strict=False, time_zone="UTC", time_unit="us")
    return _in_zone(text.str.to_datetime(spec.format, strict=False, time_unit="us"), spec.zone)


def _in_zone(naive: pl.Expr, zone: str) -> pl.Expr:
    """A naive wall-clock time read in ``zone``, as UTC. A time the zone skips (a
    spring-forward gap) is no time at all: null, so the record is invalid_timestamp; an
    ambiguous one (the autumn repeat) is its earlier reading."""
    return naive.dt.replace_time_zone(
        zone, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def rating_value(spec: Spec, text: pl.Expr) -> pl.Expr:
    """The rating as exported, a number (before any scaling). With ``stars`` a star
    word (``FIVE``), a number followed by words (``4.0 out of 5 stars``) or a row of
    star signs (★★★★☆: the filled ones) is read too."""
    if not spec.stars:
        return number(text)
    lower = text.str.to_lowercase()
    word = lower.str.extract(r"^([a-z]+)\b", 1).replace_strict(STAR_WORDS, default=None)
    leading = lower.str.extract(r"^(\d+(?:[.,]\d+)?)(?:\s|$|/)", 1).str.replace(",", ".")
    signs = pl.when(text.str.contains(r"^[★☆]+$")).then(text.str.count_matches("★"))
    return pl.coalesce(number(leading), number(word), signs.cast(pl.Float64))


def scaled(spec: Spec, value: pl.Expr) -> pl.Expr:
    """A 1..scale rating on the canonical 1-5 scale: ceil(value * 5 / scale), so that a
    1-10 scale pairs (1,2) -> 1, (3,4) -> 2 ... (9,10) -> 5."""
    if spec.scale == 5:
        return value
    return (value * 5 / spec.scale).ceil()


def _prepare(
    layout: Layout, nested: bool, parsed: ParsedFile, ctx: BatchContext
) -> tuple[pl.DataFrame, list[Rule]]:
    raw = partial(_raw, layout, nested=nested)
    mapped = partial(_mapped, layout, nested=nested)
    f = layout.fields
    ts_text = raw("occurred_at")
    platform_text = mapped("platform")
    identity: dict[str, pl.Expr] = {}
    columns: dict[str, pl.Expr] = {
        "native_id": native_id(layout, nested),
        "occurred_at": occurred_at(f["occurred_at"], ts_text),
        "platform": platform_text.str.strip_chars().str.to_lowercase(),
        "text": mapped("text"),
    }
    if "email" in f:
        columns["_email"] = ctx.identity(pii.normalise_email(raw("email")))
        identity["_email"] = pl.col("_email")
    if "handle" in f:
        columns["_handle"] = ctx.handle(platform_text, raw("handle"))
        identity["_handle"] = pl.col("_handle")
    if "user_id" in f:
        columns["user_id"] = ctx.identity(_blank_to_null(raw("user_id").str.strip_chars()))
        identity["user_id"] = pl.col("user_id")
    if "order_id" in f:
        columns["order_id"] = raw("order_id")
        identity["order_id"] = _blank_to_null(pl.col("order_id"))
    url = raw("url")
    campaign = mapped("campaign")
    properties: dict[str, pl.Expr] = {}
    rules: list[Rule] = []
    if layout.source == "social":
        kind = mapped("kind")
        event_type = (
            kind.str.strip_chars().str.to_lowercase().replace_strict(SOCIAL_EVENTS, default=None)
        )
        columns |= {
            "native_event": raw("kind"),
            "event_type": event_type,
            "channel": pl.when(event_type == "social_ad_click")
            .then(pl.lit("paid_social"))
            .otherwise(pl.lit("social")),
            "url": url,
            "path": url_path(url),
            "utm_source": url_param(url, "utm_source"),
            "utm_medium": url_param(url, "utm_medium"),
            "utm_campaign": pl.coalesce(url_param(url, "utm_campaign"), campaign),
            "utm_term": url_param(url, "utm_term"),
            "utm_content": url_param(url, "utm_content"),
            "campaign": pl.coalesce(campaign, url_param(url, "utm_campaign")),
        }
        properties["in_reply_to"] = raw("in_reply_to")
    else:
        columns |= {
            "native_event": pl.lit("review"),
            "event_type": pl.lit("review_posted"),
            "channel": pl.lit("reviews"),
        }
        if "url" in f:
            columns |= {"url": url, "path": url_path(url)}
        if "campaign" in f:
            columns["campaign"] = campaign
        properties["title"] = mapped("title")
    if "title" in f and layout.source == "social":
        properties["title"] = mapped("title")
    if "language" in f:
        properties["language"] = mapped("language").str.to_lowercase()
    if "recommended" in f:
        answer = pl.col("_recommended_text")
        recommended = (
            pl.when(answer.is_in(YES)).then(pl.lit(True)).when(answer.is_in(NO)).then(pl.lit(False))
        )
        properties["recommended"] = recommended
        rules.append(
            Rule(
                "wrong_type",
                (answer.is_not_null() & (answer != "")) & recommended.is_null(),
                pl.format(
                    "{} '{}' is neither true nor false (yes/no, 1/0)",
                    pl.lit(f["recommended"].column or "recommended"),
                    excerpt(raw("recommended").str.strip_chars()),
                ),
            )
        )
    if "sentiment" in f:
        properties["sentiment"] = mapped("sentiment").str.to_lowercase()
    if "rating" in f:
        spec = f["rating"]
        label = spec.column or "rating"
        rating_text = pl.col("_rating_text")
        value = rating_value(spec, rating_text)
        columns["rating"] = scaled(spec, value)
        what = "a number or a star rating" if spec.stars else "a number"
        rules = [
            Rule(
                "wrong_type",
                rating_text.is_not_null() & value.is_null(),
                pl.format(f"{label} '{{}}' is not {what}", excerpt(rating_text)),
            ),
            *rules,
            Rule(
                "rating_out_of_range",
                value.is_null() | (value < 1) | (value > spec.scale) | (value != value.round()),
                pl.format(
                    f"{label} {{}} is not a whole number from 1 to {spec.scale}",
                    pl.coalesce(excerpt(rating_text), pl.lit("(missing)")),
                ),
            ),
        ]
    unattributed = (
        pl.all_horizontal(e.is_null() for e in identity.values()) if identity else pl.lit(True)
    )
    # A record that joins no customer says so; the build counts it as an unlinked voice
    # of its own. Read after the identity columns are made (hashed, placeholders dropped).
    properties["unattributed"] = pl.when(unattributed).then(pl.lit(True))
    records = parsed.records.with_columns(
        _rating_text=raw("rating").str.strip_chars(),
        _recommended_text=raw("recommended").str.strip_chars().str.to_lowercase(),
    )
    prepared = records.with_columns(**columns).with_columns(properties=json_object(**properties))
    id_label = " and ".join(f["id"].columns) or "id"
    keys = [
        c
        for name in ("email", "handle", "user_id", "order_id")
        if name in f
        for c in f[name].columns
    ]
    rules = [
        missing_id_rule(pl.col("native_id"), id_label, ctx),
        *(
            [
                Rule(
                    "missing_identity",
                    unattributed,
                    pl.lit(f"the record has no {' or '.join(keys) or 'identity column'}"),
                )
            ]
            if layout.identity_required
            else []
        ),
        *rules,
        *timestamp_rules(ts_text, pl.col("occurred_at"), ctx),
    ]
    if layout.source == "social":
        rules.append(
            Rule(
                "unknown_event",
                pl.col("event_type").is_null(),
                pl.format(
                    "{} {} is not in the vocabulary; map it in the layout ({})",
                    pl.lit(f["kind"].column or "kind"),
                    _quoted(raw("kind")),
                    pl.lit(layout.file),
                ),
            )
        )
    return prepared, rules


def _quoted(expr: pl.Expr) -> pl.Expr:
    return (
        pl.when(expr.is_null())
        .then(pl.lit("(missing)"))
        .otherwise(pl.concat_str(pl.lit("'"), excerpt(expr), pl.lit("'")))
    )
