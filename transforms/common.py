"""What every adapter shares: the batch context, validation rules, and the final
mapping of a validated frame onto the canonical schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from transforms import pii
from transforms.readers import ParsedFile
from transforms.schema import CANONICAL_SCHEMA, QUARANTINE_SCHEMA


@dataclass(frozen=True)
class BatchContext:
    """One landing date of one source, and the limits records are checked against."""

    source: str
    landing_date: date
    landing_root: Path
    salt: str
    max_event_age_days: int = 90
    future_tolerance_hours: int = 24

    @property
    def ingested_at(self) -> datetime:
        return datetime(
            self.landing_date.year, self.landing_date.month, self.landing_date.day, tzinfo=UTC
        )

    @property
    def latest_allowed(self) -> datetime:
        return self.ingested_at + timedelta(days=1, hours=self.future_tolerance_hours)

    @property
    def earliest_allowed(self) -> datetime:
        return self.ingested_at - timedelta(days=self.max_event_age_days)

    def relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.landing_root).as_posix()
        except ValueError:
            return path.as_posix()


@dataclass(frozen=True)
class Rule:
    """A record breaks the rule where ``failed`` is true; ``problem`` says how."""

    reason: str
    failed: pl.Expr
    problem: pl.Expr


@dataclass
class AdapterResult:
    events: pl.DataFrame
    quarantine: pl.DataFrame
    read: int


def parse_timestamp(expr: pl.Expr) -> pl.Expr:
    """ISO-8601 with an offset or Z; a timestamp without an offset is taken as UTC.

    The common form is parsed first; only the values it rejects are tried again
    as naive timestamps (with ``T`` or a space), so the fallback costs nothing
    on clean feeds.
    """
    aware = expr.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, time_zone="UTC", time_unit="us"
    )
    retry = pl.when(aware.is_null()).then(expr.str.replace(" ", "T", literal=True))
    naive = retry.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us")
    return pl.coalesce(aware, naive.dt.replace_time_zone("UTC"))


def parse_epoch_seconds(expr: pl.Expr) -> pl.Expr:
    seconds = expr.str.strip_chars().cast(pl.Float64, strict=False)
    return (
        pl.when(seconds.is_finite())
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
            occurred_at < pl.lit(earliest),
            pl.format(
                "timestamp {} is before {} (older than the allowed event age)",
                _quoted(ts_text),
                pl.lit(earliest.isoformat()),
            ),
        ),
    ]


def missing_id_rule(native_id: pl.Expr, field: str) -> Rule:
    return Rule(
        "missing_id",
        native_id.is_null() | (native_id.str.strip_chars() == ""),
        pl.lit(f"the record has no {field}; it cannot be deduplicated or traced"),
    )


def vocabulary_rule(event_type: pl.Expr, native_name: pl.Expr, field: str) -> Rule:
    return Rule(
        "unknown_event",
        event_type.is_null(),
        pl.format(
            f"{field} {{}} is not in the vocabulary; add it to the adapter's mapping",
            _quoted(native_name),
        ),
    )


def _quoted(expr: pl.Expr) -> pl.Expr:
    return (
        pl.when(expr.is_null())
        .then(pl.lit("(missing)"))
        .otherwise(pl.concat_str(pl.lit("'"), expr.str.slice(0, 80), pl.lit("'")))
    )


def finish(
    parsed: ParsedFile, prepared: pl.DataFrame, rules: list[Rule], ctx: BatchContext, path: Path
) -> AdapterResult:
    """Split a prepared frame into canonical events and quarantined records.

    ``prepared`` holds canonical columns by name plus ``native_id``, ``_line``,
    ``_raw`` and, where the source has them, ``_email`` and ``_handle`` (normalised,
    not yet hashed).
    """
    accepted, quarantine = split(parsed, prepared, rules, ctx, path)
    return AdapterResult(_to_canonical(accepted, ctx, ctx.relative(path)), quarantine, parsed.read)


def split(
    parsed: ParsedFile, prepared: pl.DataFrame, rules: list[Rule], ctx: BatchContext, path: Path
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The records that pass every rule, and the quarantine (reader rejects included).

    The first rule a record breaks is its reason.
    """
    reason = pl.lit(None, dtype=pl.String)
    problem = pl.lit(None, dtype=pl.String)
    for rule in reversed(rules):
        broke = rule.failed.fill_null(False)
        reason = pl.when(broke).then(pl.lit(rule.reason)).otherwise(reason)
        problem = pl.when(broke).then(rule.problem).otherwise(problem)
    checked = prepared.with_columns(reason.alias("_reason"))
    # The raw lines are needed for the few rejected rows only, and so are the
    # messages: the accepted rows are filtered without copying either.
    accepted = checked.lazy().filter(pl.col("_reason").is_null()).drop("_raw", "_reason").collect()
    rejected = checked.filter(pl.col("_reason").is_not_null()).with_columns(
        problem.alias("_problem")
    )

    rel = ctx.relative(path)
    quarantine = pl.concat(
        [
            _quarantine_frame(
                ctx,
                rel,
                [r.line for r in parsed.rejects],
                [None] * len(parsed.rejects),
                [r.reason for r in parsed.rejects],
                [r.message for r in parsed.rejects],
                [r.raw for r in parsed.rejects],
            ),
            _quarantine_frame(
                ctx,
                rel,
                rejected["_line"].to_list(),
                rejected["native_id"].to_list(),
                rejected["_reason"].to_list(),
                rejected["_problem"].to_list(),
                rejected["_raw"].to_list(),
            ),
        ]
    ).sort("source_line")
    return accepted, quarantine


def whole_file_rejected(ctx: BatchContext, path: Path, reason: str, message: str) -> AdapterResult:
    quarantine = _quarantine_frame(
        ctx, ctx.relative(path), [None], [None], [reason], [message], [None]
    )
    return AdapterResult(pl.DataFrame(schema=CANONICAL_SCHEMA), quarantine, 1)


def _quarantine_frame(
    ctx: BatchContext,
    rel: str,
    lines: list[int | None],
    ids: list[str | None],
    reasons: list[str],
    problems: list[str],
    raws: list[str | None],
) -> pl.DataFrame:
    details = [
        f"{rel}{'' if line is None else f':{line}'}{'' if not nid else f' (id {nid})'}: {problem}"
        for line, nid, problem in zip(lines, ids, problems, strict=True)
    ]
    return pl.DataFrame(
        {
            "source": [ctx.source] * len(lines),
            "source_file": [rel] * len(lines),
            "source_line": lines,
            "native_id": ids,
            "reason": reasons,
            "detail": details,
            "raw_redacted": [None if r is None else pii.redact_raw(r) for r in raws],
            "ingested_at": [ctx.ingested_at] * len(lines),
        },
        schema=QUARANTINE_SCHEMA,
    )


def _to_canonical(accepted: pl.DataFrame, ctx: BatchContext, rel: str) -> pl.DataFrame:
    extra: list[pl.Series] = [pii.event_ids(ctx.source, accepted["native_id"])]
    if "_email" in accepted.columns:
        extra.append(pii.sha256_hex(accepted["_email"], ctx.salt).alias("email_sha256"))
    if "_handle" in accepted.columns:
        extra.append(pii.sha256_hex(accepted["_handle"], ctx.salt).alias("social_handle_sha256"))
    frame = accepted.with_columns(
        *extra,
        pl.lit(ctx.source).alias("source"),
        pl.lit(ctx.ingested_at).alias("ingested_at"),
        pl.lit(rel).alias("source_file"),
        pl.col("_line").alias("source_line"),
    )
    return frame.select(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in CANONICAL_SCHEMA.items()
    )
