"""What every adapter shares: the batch context, validation rules, the chunked run of an
adapter over one file, and the final mapping of a validated frame onto the canonical
schema, where the personal-data policy of every column is enforced (``make_safe``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from transforms import pii
from transforms.readers import Limits, ParsedFile
from transforms.schema import (
    CANONICAL_SCHEMA,
    COLUMN_POLICY,
    CRM_SCHEMA,
    IDENTIFIER,
    IDENTITY,
    JSON,
    QUARANTINE_POLICY,
    QUARANTINE_SCHEMA,
    RAW,
    TEXT,
    URL,
)

# The largest magnitude an epoch-seconds timestamp may have (year 5138): anything
# beyond cannot be a time and would overflow microseconds.
MAX_EPOCH_SECONDS = 1e11
# Largest order value taken as a number; beyond it, or not finite, it is wrong_type.
MAX_REVENUE = 1e12
# The native id of a record that came without one, derived from its content.
DERIVED_ID_PREFIX = "derived:"


@dataclass(frozen=True)
class BatchContext:
    """One landing date of one source, and the limits records are checked against."""

    source: str
    landing_date: date
    landing_root: Path
    salt: str
    max_event_age_days: int = 90
    future_tolerance_hours: int = 24
    # The zone a timestamp without an offset is read in (CJM_SOURCE_TIME_ZONES).
    time_zone: str = "UTC"
    limits: Limits = field(default_factory=Limits)
    max_file_rejects: int = 10_000
    # Identifier values that never identify a person (lower case, trimmed).
    deny: frozenset[str] = frozenset()

    @property
    def ingested_at(self) -> datetime:
        return datetime(
            self.landing_date.year, self.landing_date.month, self.landing_date.day, tzinfo=UTC
        )

    @property
    def latest_allowed(self) -> datetime:
        return self.ingested_at + timedelta(days=1, hours=self.future_tolerance_hours)

    @property
    def earliest_allowed(self) -> datetime | None:
        """The oldest event accepted; None when there is no age limit (0 days)."""
        if self.max_event_age_days <= 0:
            return None
        return self.ingested_at - timedelta(days=self.max_event_age_days)

    def relative(self, path: Path) -> str:
        """The file's name as manifests and details show it. A name holding an address
        or handle is masked, and marked with a salted digest of the real name so two
        such files still have names of their own."""
        try:
            rel = path.relative_to(self.landing_root).as_posix()
        except ValueError:
            rel = path.as_posix()
        masked = pii.mask_string(rel)
        if masked == rel:
            return rel
        digest = hashlib.sha256(f"{self.salt}{rel}".encode()).hexdigest()[:12]
        return f"{masked}#{digest}"

    def identity(self, expr: pl.Expr) -> pl.Expr:
        """An identifier, or null where it is a placeholder that identifies nobody."""
        key = expr.str.strip_chars().str.to_lowercase()
        return pl.when(key.is_in(list(self.deny))).then(None).otherwise(expr)

    def handle(self, platform: pl.Expr, handle: pl.Expr) -> pl.Expr:
        """``platform:handle`` for hashing, or null for a placeholder handle."""
        bare = handle.str.strip_chars().str.strip_chars_start("@")
        return pii.normalise_handle(platform, self.identity(bare))


@dataclass(frozen=True)
class Rule:
    """A record breaks the rule where ``failed`` is true; ``problem`` says how."""

    reason: str
    failed: pl.Expr
    problem: pl.Expr


@dataclass
class AdapterResult:
    """One file's output: rows to write, quarantine rows, and the records read,
    accepted and quarantined (for the crm, ``events`` holds identity edges, several per
    record; a file quarantined whole is one quarantine row for all its records)."""

    events: pl.DataFrame
    quarantine: pl.DataFrame
    read: int
    accepted: int
    quarantined: int
    notes: list[str] = field(default_factory=list)
    quarantined_whole: str = ""  # the reason, when the file was quarantined whole

    @classmethod
    def empty(cls, source: str, notes: list[str] | None = None) -> AdapterResult:
        schema = CRM_SCHEMA if source == "crm" else CANONICAL_SCHEMA
        return cls(
            pl.DataFrame(schema=schema),
            pl.DataFrame(schema=QUARANTINE_SCHEMA),
            0,
            0,
            0,
            notes or [],
        )


def parse_timestamp(expr: pl.Expr, zone: str = "UTC") -> pl.Expr:
    """ISO-8601 with an offset or Z; a timestamp without an offset is read in ``zone``
    (UTC unless the source is set otherwise), as UTC.

    The common form is parsed first; only the values it rejects are tried again
    as naive timestamps (with ``T`` or a space), so the fallback costs nothing
    on clean feeds. A wall-clock time the zone skips (a spring-forward gap) is no
    time at all, so invalid; a repeated one (autumn) takes its earlier reading.
    """
    aware = expr.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, time_zone="UTC", time_unit="us"
    )
    retry = pl.when(aware.is_null()).then(expr.str.replace(" ", "T", literal=True))
    naive = retry.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us")
    if zone == "UTC":
        return pl.coalesce(aware, naive.dt.replace_time_zone("UTC"))
    local = naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    return pl.coalesce(aware, local.dt.convert_time_zone("UTC"))


def parse_epoch_seconds(expr: pl.Expr) -> pl.Expr:
    seconds = expr.str.strip_chars().cast(pl.Float64, strict=False)
    return (
        pl.when(seconds.is_finite() & (seconds.abs() < MAX_EPOCH_SECONDS))
        .then((seconds * 1_000_000).round().cast(pl.Int64))
        .otherwise(None)
        .cast(pl.Datetime("us", "UTC"))
    )


def json_object(**fields: pl.Expr | str) -> pl.Expr:
    """A compact JSON object of the given fields, leaving out the null ones.

    Each member is encoded on its own (``{"k":v}`` less its braces) and only the
    non-null ones are joined, which is much cheaper than encoding every key and
    stripping the nulls with a regex.
    """
    members = []
    for name, value in fields.items():
        expr = pl.col(value) if isinstance(value, str) else value
        member = pl.struct(expr.alias(name)).struct.json_encode().str.slice(1).str.head(-1)
        members.append(pl.when(expr.is_not_null()).then(member))
    return pl.concat_str(
        pl.lit("{"), pl.concat_str(members, separator=",", ignore_nulls=True), pl.lit("}")
    )


def fill_missing(
    present: pl.Expr, fallback: Callable[..., pl.Expr], source: pl.Expr, *args: str
) -> pl.Expr:
    """``present``, or else ``fallback(source, *args)``, computed where ``present`` is null.

    ``pl.coalesce`` evaluates every argument on every row; masking the source first
    keeps a costly fallback (a regex on a URL, say) to the rows that need it.
    """
    return pl.coalesce(present, fallback(pl.when(present.is_null()).then(source), *args))


def url_path(url: pl.Expr) -> pl.Expr:
    return url.str.extract(r"^(?:[a-zA-Z][a-zA-Z0-9+.\-]*://[^/?#]*)?([^?#]*)", 1)


def url_param(url: pl.Expr, name: str) -> pl.Expr:
    return url.str.extract(rf"[?&]{name}=([^&#]*)", 1).str.replace_all(r"\+", " ")


def timestamp_rules(ts_text: pl.Expr, occurred_at: pl.Expr, ctx: BatchContext) -> list[Rule]:
    latest = ctx.latest_allowed
    earliest = ctx.earliest_allowed
    return [
        Rule(
            "invalid_timestamp",
            occurred_at.is_null(),
            pl.format("timestamp {} is missing or not a valid timestamp", _quoted(ts_text)),
        ),
        Rule(
            "future_timestamp",
            occurred_at > pl.lit(latest),
            pl.format(
                "timestamp {} is after {} (the landing day's end plus the tolerance); "
                "check the producer's clock",
                _quoted(ts_text),
                pl.lit(latest.isoformat()),
            ),
        ),
        Rule(
            "stale_timestamp",
            occurred_at < pl.lit(earliest) if earliest is not None else pl.lit(False),
            pl.format(
                "timestamp {} is before {} (older than CJM_MAX_EVENT_AGE_DAYS={} days at "
                "landing; a historical load: `cjm ingest --historical`)",
                _quoted(ts_text),
                pl.lit(earliest.isoformat() if earliest is not None else ""),
                pl.lit(ctx.max_event_age_days),
            ),
        ),
    ]


def missing_id_rule(native_id: pl.Expr, field: str, ctx: BatchContext) -> Rule:
    """A record needs an id of its own: a placeholder ("undefined", "null", ...) shared
    by many records would make them one event."""
    return Rule(
        "missing_id",
        ctx.identity(native_id).is_null() | (native_id.str.strip_chars() == ""),
        pl.lit(f"the record has no {field}; it cannot be deduplicated or traced"),
    )


def derived_ids(values: pl.DataFrame, salt: str) -> pl.Series:
    """Stable native ids derived from content, one per row of ``values``, for records
    that came without an id of their own: ``derived:`` and the first 32 hex digits of
    the salted SHA-256 of the row as a compact JSON array of its values as strings (in
    column order, null as null). The same content gives the same id on any night, so a
    re-delivered copy deduplicates; a difference in any value gives another id. Salted
    because the content may hold an address: unsalted, the id would let anyone who
    knows the rest test guesses of it."""
    rows = values.select(pl.all().cast(pl.String)).rows()
    text = pl.Series([json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows])
    return DERIVED_ID_PREFIX + pii.sha256_hex(text, salt).str.slice(0, 32)


def fill_derived_ids(
    frame: pl.DataFrame, fields: dict[str, pl.Expr], usable: pl.Expr, salt: str
) -> pl.DataFrame:
    """``native_id`` as given, or where it is null and ``usable`` holds, the id derived
    from ``fields`` (``derived_ids``); the rest keep null and fail ``missing_id_rule``."""
    needs = frame.select((pl.col("native_id").is_null() & usable).fill_null(False)).to_series()
    if not needs.any():
        return frame
    ids = derived_ids(frame.filter(needs).select(**fields), salt)
    return frame.with_columns(frame["native_id"].scatter(needs.arg_true(), ids))


def number(text: pl.Expr, largest: float = MAX_REVENUE) -> pl.Expr:
    """A finite number within +-largest, else null (a rule then names the text)."""
    value = text.cast(pl.Float64, strict=False)
    return pl.when(value.is_finite() & (value.abs() <= largest)).then(value)


def vocabulary_rule(event_type: pl.Expr, native_name: pl.Expr, field: str) -> Rule:
    return Rule(
        "unknown_event",
        event_type.is_null(),
        pl.format(
            f"{field} {{}} is not in the vocabulary; add it to the adapter's mapping",
            _quoted(native_name),
        ),
    )


def excerpt(expr: pl.Expr) -> pl.Expr:
    """A value as a message may show it: masked first, then cut, so a cut can never
    leave part of an address."""
    return pii.mask_text(expr).str.slice(0, 80)


def _quoted(expr: pl.Expr) -> pl.Expr:
    return (
        pl.when(expr.is_null())
        .then(pl.lit("(missing)"))
        .otherwise(pl.concat_str(pl.lit("'"), excerpt(expr), pl.lit("'")))
    )


def run_adapter(
    chunks: Iterator[ParsedFile],
    prepare: Callable[[ParsedFile, BatchContext], tuple[pl.DataFrame, list[Rule]]],
    ctx: BatchContext,
    path: Path,
    output: Callable[[pl.DataFrame, BatchContext, str], pl.DataFrame] | None = None,
) -> AdapterResult:
    """Run an adapter over a file chunk by chunk: ``prepare`` maps a chunk's records to
    canonical columns and the rules they must pass, ``output`` (default: the canonical
    event) maps the accepted ones to what is written.

    A file whose rejected records pass ``ctx.max_file_rejects`` while they are most of
    what it held is broken as a whole (a wrong format, a bomb of empty records): it is
    quarantined whole, and reading stops there.
    """
    output = output or to_canonical
    rel = ctx.relative(path)
    outputs: list[pl.DataFrame] = []
    quarantines: list[pl.DataFrame] = []
    read = accepted = rejected = 0
    notes: list[str] = []
    records_in_file = None
    for parsed in chunks:
        records_in_file = records_in_file or parsed.records_in_file
        parsed.records_in_file = records_in_file
        notes += parsed.notes
        prepared, rules = prepare(parsed, ctx)
        good, quarantine = split(parsed, prepared, rules, ctx, path)
        read += parsed.read
        accepted += good.height
        rejected += quarantine.height
        if rejected > ctx.max_file_rejects and 2 * rejected > read:
            reasons = pl.concat([*quarantines, quarantine])["reason"].value_counts(sort=True)
            common = ", ".join(f"{r} {n:,}" for r, n in reasons.head(3).iter_rows())
            # Every record of the file counts as quarantined, so the day's quarantine
            # share sees the whole broken export; the rest is counted, not kept.
            total = parsed.records_in_file or read + sum(more.read for more in chunks)
            return whole_file_rejected(
                ctx,
                path,
                "too_many_rejects",
                f"{rejected:,} of the first {read:,} of its {total:,} records were rejected "
                f"({common}), more than CJM_MAX_FILE_REJECTS ({ctx.max_file_rejects:,}): the "
                "file was quarantined whole; fix the export, then ingest the date again",
                notes,
                records=total,
            )
        outputs.append(output(good, ctx, rel))
        quarantines.append(quarantine)
    if not outputs:
        return AdapterResult.empty(ctx.source, notes)
    return AdapterResult(
        pl.concat(outputs) if len(outputs) != 1 else outputs[0],
        pl.concat(quarantines) if len(quarantines) != 1 else quarantines[0],
        read,
        accepted,
        rejected,
        notes,
    )


def split(
    parsed: ParsedFile, prepared: pl.DataFrame, rules: list[Rule], ctx: BatchContext, path: Path
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The records that pass every rule, and the quarantine (reader rejects included).

    The first rule a record breaks is its reason; its detail says every rule it
    breaks, so a user fixes an export in one pass rather than one run per problem.
    """
    reason = pl.lit(None, dtype=pl.String)
    problem = pl.lit(None, dtype=pl.String)
    for rule in reversed(rules):
        broke = rule.failed.fill_null(False)
        reason = pl.when(broke).then(pl.lit(rule.reason)).otherwise(reason)
        problem = pl.when(broke).then(rule.problem).otherwise(problem)
    if len(rules) > 1:
        # Every broken rule after the first, in rule order: "reason (what was wrong)".
        broken = pl.concat_list(
            [
                pl.when(rule.failed.fill_null(False)).then(
                    pl.concat_str(pl.lit(f"{rule.reason} ("), rule.problem, pl.lit(")"))
                )
                for rule in rules
            ]
        ).list.drop_nulls()
        problem = (
            pl.when(broken.list.len() > 1)
            .then(pl.concat_str(problem, pl.lit("; also "), broken.list.slice(1).list.join("; ")))
            .otherwise(problem)
        )
    checked = prepared.with_columns(reason.alias("_reason"))
    # The raw lines are needed for the few rejected rows only, and so are the
    # messages: the accepted rows are filtered without copying either.
    accepted = checked.lazy().filter(pl.col("_reason").is_null()).drop("_raw", "_reason").collect()
    rejected = checked.filter(pl.col("_reason").is_not_null()).select(
        pl.col("_line").alias("source_line"),
        pl.col("native_id").cast(pl.String),
        pl.col("_reason").alias("reason"),
        problem.alias("problem"),
        pl.col("_raw").alias("raw"),
    )
    from_reader = pl.DataFrame(
        {
            "source_line": [r.line for r in parsed.rejects],
            "native_id": [None] * len(parsed.rejects),
            "reason": [r.reason for r in parsed.rejects],
            "problem": [r.message for r in parsed.rejects],
            "raw": [r.raw for r in parsed.rejects],
        },
        schema=rejected.schema,
    )
    quarantine = quarantine_frame(ctx, ctx.relative(path), pl.concat([from_reader, rejected]))
    return accepted, quarantine.sort("source_line")


def whole_file_rejected(
    ctx: BatchContext,
    path: Path,
    reason: str,
    message: str,
    notes: list[str] | None = None,
    records: int = 1,
) -> AdapterResult:
    """A file refused as a whole: one quarantine row standing for its ``records`` (1
    when the file could not be read far enough to count them), nothing accepted."""
    rejected = pl.DataFrame(
        {"source_line": [None], "native_id": [None], "reason": [reason], "problem": [message]},
        schema={
            "source_line": pl.Int64,
            "native_id": pl.String,
            "reason": pl.String,
            "problem": pl.String,
        },
    ).with_columns(raw=pl.lit(None, dtype=pl.String))
    quarantine = quarantine_frame(ctx, ctx.relative(path), rejected).with_columns(
        records=pl.lit(records, dtype=pl.Int64)
    )
    result = AdapterResult.empty(ctx.source, list(notes or []))
    result.quarantine = quarantine
    result.read = result.quarantined = records
    result.quarantined_whole = reason
    return result


def quarantine_frame(ctx: BatchContext, rel: str, rejected: pl.DataFrame) -> pl.DataFrame:
    """Quarantine rows for rejected records (``source_line``, ``native_id``, ``reason``,
    ``problem``, ``raw``), made safe: the detail names the file, line and id, and
    nothing in it, nor in the kept record, holds an address or handle."""
    safe_ids = make_safe(rejected.select("native_id"), ctx, QUARANTINE_POLICY)["native_id"]
    frame = rejected.with_columns(safe_ids)
    detail = pl.concat_str(
        pl.lit(rel),
        pl.when(pl.col("source_line").is_not_null()).then(pl.format(":{}", pl.col("source_line"))),
        pl.when(pl.col("native_id").is_not_null() & (pl.col("native_id") != "")).then(
            pl.format(" (id {})", pl.col("native_id"))
        ),
        pl.lit(": "),
        pl.col("problem"),
        ignore_nulls=True,
    )
    quarantine = frame.select(
        pl.lit(ctx.source).alias("source"),
        pl.lit(rel).alias("source_file"),
        pl.col("source_line").cast(pl.Int64),
        "native_id",
        "reason",
        detail.alias("detail"),
        pl.col("raw").alias("raw_redacted"),
        pl.lit(ctx.ingested_at).alias("ingested_at"),
        pl.lit(1, dtype=pl.Int64).alias("records"),
    )
    return make_safe(quarantine, ctx, QUARANTINE_POLICY, skip=("native_id",)).cast(
        dict(QUARANTINE_SCHEMA)
    )


def to_canonical(accepted: pl.DataFrame, ctx: BatchContext, rel: str) -> pl.DataFrame:
    """The canonical event of each accepted record, made safe (``make_safe``).

    ``accepted`` holds canonical columns by name plus ``native_id``, ``_line`` and,
    where the source has them, ``_email`` and ``_handle`` (normalised, not yet hashed).
    An address that arrived as a user or anonymous id is the event's email identity
    when it has no other.
    """
    extra: list[pl.Series] = [pii.event_ids(ctx.source, accepted["native_id"])]
    emails = [accepted["_email"]] if "_email" in accepted.columns else []
    emails += [pii.whole_email(accepted[c]) for c in ("user_id", "anonymous_id") if c in accepted]
    if emails:
        candidates = pl.DataFrame({f"_{i}": values for i, values in enumerate(emails)})
        email = candidates.select(pl.coalesce(pl.all()))["_0"]
        extra.append(pii.sha256_hex(email, ctx.salt).alias("email_sha256"))
    if "_handle" in accepted.columns:
        extra.append(pii.sha256_hex(accepted["_handle"], ctx.salt).alias("social_handle_sha256"))
    frame = accepted.with_columns(
        *extra,
        pl.lit(ctx.source).alias("source"),
        pl.lit(ctx.ingested_at).alias("ingested_at"),
        pl.lit(rel).alias("source_file"),
        pl.col("_line").alias("source_line"),
    )
    canonical = frame.select(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in CANONICAL_SCHEMA.items()
    )
    return make_safe(canonical, ctx, COLUMN_POLICY, skip=("source_file",))


def make_safe(
    frame: pl.DataFrame,
    ctx: BatchContext,
    policy: dict[str, str],
    skip: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Enforce the personal-data policy of every column of ``frame`` (see
    ``schema.COLUMN_POLICY``). Columns in ``skip`` are already safe."""
    masks = {TEXT: pii.mask_text, URL: pii.mask_url, JSON: pii.mask_json, RAW: pii.mask_raw}
    expressions = [
        masks[policy[name]](pl.col(name)).alias(name)
        for name in frame.columns
        if policy.get(name) in masks and name not in skip
    ]
    safe = frame.with_columns(expressions) if expressions else frame
    hashed = [
        pii.tokenise(safe[name], ctx.salt)
        for name in frame.columns
        if policy.get(name) in (IDENTITY, IDENTIFIER) and name not in skip
    ]
    return safe.with_columns(hashed) if hashed else safe
