"""The data-quality gates: Great Expectations suites run on a landing date's canonical
events (before the build reads them) and on the built marts (before they are published).

The suites are GX's own JSON, one file per suite in ``expectations/``, versioned with the
code. What depends on the run (the landing day's time window, the seed's vocabulary, the
served night's row counts) is a ``{"$PARAMETER": name}`` placeholder filled in here. Every
expectation carries ``meta.severity``: a failed ``critical`` one stops the night
(``ValidationReport.raise_for_critical``), a failed ``warning`` one is only reported.

Each gate call makes one in-memory GX context, writes its results as JSON under
``settings.validations_dir/<run date>/`` and updates the Data Docs site in
``settings.data_docs_dir``. GX is imported inside the gates: it takes seconds to import,
and the CLI and the DAG import this module for much less.

No gate output holds a value of the events or the marts (see ``result_format``): a value
that fails a check there is the very value that should not be anywhere (an address where
a hash belongs), so GX keeps counts and, for events, the event_id of the first failing
rows. Our own messages and JSON also mask any address or @handle (transforms/pii.py).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cjm_pipeline import docs_assets
from cjm_pipeline.settings import MARTS, PROJECT_ROOT, SOURCES, Settings

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.data_context.types.resource_identifiers import (
        ValidationResultIdentifier,
    )

SUITES_DIR = PROJECT_ROOT / "expectations"
EVENT_TYPES_SEED = PROJECT_ROOT / "models" / "seeds" / "event_types.csv"
# The marts whose size follows the data; the dimensions and aggregates follow the seeds.
BANDED_MARTS: tuple[str, ...] = (
    "fct_journey_events",
    "fct_sessions",
    "fct_journeys",
    "dim_customers",
)
# Columns the events gate derives per row, after the canonical ones.
DERIVED_EVENT_COLUMNS: tuple[str, ...] = (
    "landing_day_start",
    "landing_lag_hours",
    "holds_personal_data",
)
MAX_GROWTH = 3  # a mart more than this many times the served night's rows is a warning
SEVERITIES: tuple[str, ...] = ("critical", "warning")
DOCS_SITE = "cjm"
DOCS_INDEX_LIMIT = 500
SAMPLE_SIZE = 5  # unexpected values (or event ids) a result keeps
# The suites whose rows are our own bookkeeping (the manifests' counts): their failing
# values may be shown. Every other suite runs on rows that may carry personal data.
SHOWN_VALUE_SUITES: frozenset[str] = frozenset({"ingest_stats"})
MARTS_GROUP = 5  # the marts gate reports its progress once per this many marts
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


class ValidationError(RuntimeError):
    """A gate failed a critical expectation; the message names each one and what to do."""


def result_format(suite: str, name_rows: bool = False) -> dict[str, Any]:
    """What GX may keep of a suite's failing rows.

    GX 1.x applies the ``result_format`` given to ``ValidationDefinition.run`` to every
    expectation of the run (it overrides one set on an expectation), so the choice is
    per suite. The manifests' counts are shown as they are (BASIC). The events and marts
    keep no value (``exclude_unexpected_values``), only counts. With ``name_rows`` (the
    events) SUMMARY adds ``partial_unexpected_index_list``, the index of the first failing
    rows, and the gate indexes the events by event_id (a hash). That index is unnamed on
    purpose: for a named index, or ``unexpected_index_column_names``, GX's pandas engine
    lists every failing row, where the unnamed one gives the first ``SAMPLE_SIZE``.
    ``return_unexpected_index_query`` is off: for pandas it lists every failing index.
    """
    if suite in SHOWN_VALUE_SUITES:
        return {"result_format": "BASIC", "partial_unexpected_count": SAMPLE_SIZE}
    return {
        "result_format": "SUMMARY" if name_rows else "BASIC",
        "partial_unexpected_count": SAMPLE_SIZE,
        "exclude_unexpected_values": True,
        "return_unexpected_index_query": False,
    }


def _masked(value: Any) -> Any:
    """A JSON-able value with any address or @handle in its strings masked, as ingestion
    masks free text (one call for all of them): defence in depth, whatever GX returned."""
    from transforms.pii import mask_strings

    strings: list[str] = []

    def collect(v: Any) -> None:
        if isinstance(v, str):
            strings.append(v)
        elif isinstance(v, dict):
            for item in v.values():
                collect(item)
        elif isinstance(v, list | tuple):
            for item in v:
                collect(item)

    collect(value)
    masked = iter(mask_strings(strings))

    def rebuild(v: Any) -> Any:
        if isinstance(v, str):
            return next(masked)
        if isinstance(v, dict):
            return {k: rebuild(item) for k, item in v.items()}
        if isinstance(v, list | tuple):
            return [rebuild(item) for item in v]
        return v

    return rebuild(value)


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation of one suite on one batch (a source's partition, a mart table)."""

    suite: str
    batch: str
    expectation: str
    column: str
    description: str
    severity: str
    status: str  # passed | failed | skipped
    observed: Any = None
    unexpected_count: int | None = None
    note: str = ""  # what to do when it failed, or why it was skipped
    event_ids: tuple[str, ...] = ()  # the first failing events, when the rows are events

    @property
    def success(self) -> bool | None:
        return None if self.status == SKIPPED else self.status == PASSED

    def __str__(self) -> str:
        what = f"{self.expectation} ({self.column})" if self.column else self.expectation
        line = f"{self.suite} [{self.batch}] {what}: {self.description}"
        if self.status == SKIPPED:
            return _mask(f"{line}; skipped: {self.note}")
        note = f"; {self.note}" if self.note else ""
        return _mask(f"{line}; observed {_observed(self)}{note}")


@dataclass
class ValidationReport:
    """What a gate found: every expectation's result, and where they were written."""

    gate: str  # events | marts
    run_date: date
    results: list[ExpectationResult] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    data_docs: Path | None = None
    saved: list[Path] = field(default_factory=list)
    first_date: date | None = None  # the events gate may cover several landing dates

    @property
    def dates(self) -> str:
        if self.first_date is None or self.first_date == self.run_date:
            return self.run_date.isoformat()
        return f"{self.first_date}..{self.run_date}"

    @property
    def critical_failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if r.status == FAILED and r.severity == "critical"]

    @property
    def warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if r.status == FAILED and r.severity == "warning"]

    @property
    def skipped(self) -> list[ExpectationResult]:
        return [r for r in self.results if r.status == SKIPPED]

    @property
    def success(self) -> bool:
        return not self.critical_failures

    def raise_for_critical(self) -> None:
        """Raise ``ValidationError`` naming every failed critical expectation."""
        failures = self.critical_failures
        if not failures:
            return
        stop = {
            "events": "the build must not read these events",
            "marts": "this build must not be published (the served database is unchanged)",
        }[self.gate]
        lines = [
            f"{self.gate} gate for {self.dates}: {len(failures)} critical "
            f"expectation{'s' if len(failures) > 1 else ''} failed, so {stop}:"
        ]
        for failure in failures:
            what = f"{failure.expectation} on {failure.column}" if failure.column else ""
            lines.append(
                f"  - {failure.suite} [{failure.batch}] {what or failure.expectation}: "
                f"{failure.description}; observed {_observed(failure)}"
            )
            if failure.note:
                lines.append(f"    what to do: {failure.note}")
        where = [f"results {', '.join(str(p) for p in self.saved)}"] if self.saved else []
        if self.data_docs:
            where.append(f"Data Docs {self.data_docs}")
        if where:
            lines.append("; ".join(where))
        raise ValidationError(_mask("\n".join(lines)))

    def subset(self, batch: str) -> ValidationReport:
        """The results of one batch (one source of the events gate)."""
        results = [r for r in self.results if r.batch == batch]
        return replace(self, results=results, saved=[])

    def summary(self) -> str:
        """One line per suite and batch: passed, failed (critical), warnings, skipped."""
        counts: dict[tuple[str, str], Counter[str]] = {}
        for r in self.results:
            kind = "warning" if r.status == FAILED and r.severity == "warning" else r.status
            counts.setdefault((r.suite, r.batch), Counter())[kind] += 1
        verdict = "passed" if self.success else "FAILED"
        lines = [
            f"{self.gate} gate {self.dates}: {verdict}, {len(self.critical_failures)} "
            f"critical failures, {len(self.warnings)} warnings ({self.seconds:.1f} s)"
        ]
        for (suite, batch), n in counts.items():
            lines.append(
                f"  {suite:<30} {batch:<22} {n[PASSED]:>3} passed {n[FAILED]:>3} failed "
                f"{n['warning']:>3} warnings {n[SKIPPED]:>3} skipped"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values, with any address or @handle masked."""
        data = {
            "gate": self.gate,
            "run_date": self.run_date.isoformat(),
            "first_date": (self.first_date or self.run_date).isoformat(),
            "success": self.success,
            "critical_failures": len(self.critical_failures),
            "warnings": len(self.warnings),
            "seconds": round(self.seconds, 3),
            "parameters": self.parameters,
            "data_docs": str(self.data_docs) if self.data_docs else None,
            "results": [asdict(r) for r in self.results],
        }
        return _masked(json.loads(json.dumps(data, default=_json_default)))

    def save(self, path: Path) -> Path:
        """Write the results as JSON (atomically: a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        self.saved.append(path)
        return path


# The events gate ------------------------------------------------------------------------


def validate_events(
    settings: Settings,
    days: date | Sequence[date],
    sources: tuple[str, ...] | list[str] = SOURCES,
    *,
    save: bool = True,
    docs: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> ValidationReport:
    """Validate the canonical events ingested for one landing date or several, per source.

    Runs ``events_<source>`` on the source's lake partitions of those dates (one batch:
    each row carries its landing date, so a backfill is validated in one pass) and
    ``ingest_stats`` on their manifests (quarantine share, counts that reconcile with
    the partitions). Writes ``validations_dir/<last day>/events-<source>.json`` and the
    Data Docs unless told not to. ``progress`` gets one line as GX loads, one per source
    and one for the Data Docs. Never raises for bad data: call ``raise_for_critical``
    on the report.
    """
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r}; choose from {', '.join(SOURCES)}")
    days = sorted({days} if isinstance(days, date) else set(days))
    began = time.perf_counter()
    lags = event_lags(settings)
    quarantine = {
        "max_quarantine_share": settings.max_quarantine_share,
        "quarantine_significance": settings.quarantine_significance,
    }
    report = ValidationReport(
        "events", days[-1], parameters={**lags, **quarantine}, first_date=days[0]
    )
    vocabulary = event_vocabulary()
    fixed = _fixed_event_parameters()
    progress("events gate: loading Great Expectations")
    context = _context(settings)
    lake = context.data_sources.add_pandas("lake")
    batches = {
        "events": lake.add_dataframe_asset("events").add_batch_definition_whole_dataframe("day"),
        "manifest": lake.add_dataframe_asset("manifest").add_batch_definition_whole_dataframe(
            "day"
        ),
    }
    run = _Run(context, _run_id("events", days[-1]), {"date": _date_label(days)})
    for source in sources:
        started = time.perf_counter()
        parameters = {**lags, **fixed, **quarantine, "event_types": vocabulary.get(source, [])}
        results, events = _validate_source(settings, run, batches, source, days, parameters)
        report.results += results
        failures = sum(r.status == FAILED and r.severity == "critical" for r in results)
        verdict = f"{failures} critical failures" if failures else "passed"
        progress(
            f"events gate: {source}: {events:,} events of {_date_label(days)} validated in "
            f"{time.perf_counter() - started:.1f} s, {verdict}"
        )
    return _finish(report, settings, run, began, save, docs, progress)


def _date_label(days: Sequence[date]) -> str:
    return days[0].isoformat() if len(days) == 1 else f"{days[0]}..{days[-1]}"


def _validate_source(
    settings: Settings,
    run: _Run,
    batches: dict[str, BatchDefinition],
    source: str,
    days: Sequence[date],
    parameters: dict[str, Any],
) -> tuple[list[ExpectationResult], int]:
    """``events_<source>`` on the partitions, then ``ingest_stats`` on the manifests;
    the results and the number of events validated."""
    results: list[ExpectationResult] = []
    suite = f"events_{source}"
    frames, stats, missing_days, absent_days = [], [], 0, 0
    for day in days:
        iso = day.isoformat()
        manifest = read_manifest(settings, source, iso)
        folder = settings.events_partition(source, iso)
        events = read_partition(folder, day)
        ingest_first = f"ingest the date first: `cjm ingest --date {iso} --source {source}`"
        if events is not None:
            frames.append(events)
        elif manifest is not None and manifest.get("status") in ("missing", "refused"):
            # No partition to read: ingest_stats says why (a refused folder is critical).
            missing_days += 1
            absent_days += manifest.get("status") == "missing"
        else:
            description = f"the lake partition {folder} exists"
            results.append(
                _precondition(
                    suite, source, "partition_exists", description, "no parquet file", ingest_first
                )
            )
        if manifest is None:
            description = f"the ingest manifest {settings.manifest_path(source, iso)} exists"
            results.append(
                _precondition(
                    "ingest_stats",
                    source,
                    "manifest_exists",
                    description,
                    "no manifest",
                    ingest_first,
                )
            )
        else:
            lake_rows = 0 if events is None else len(events)
            stats.append(ingest_stats(manifest, lake_rows, settings.max_quarantine_share))
    events_count = sum(len(frame) for frame in frames)
    if frames:
        import pandas as pd

        with warnings.catch_warnings():
            # pandas warns that the @handle pattern has a group it does not extract;
            # GX only asks whether it matches.
            warnings.filterwarnings("ignore", "This pattern is interpreted as a regular")
            # and, inside GX's column-pair check, that .values drops the time zone.
            warnings.filterwarnings("ignore", "Series.values returning an ndarray")
            batch = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            # GX names the failing rows by the index: make it the event_id (result_format).
            batch.index = pd.Index(batch["event_id"].to_numpy())
            results += run.validate(
                suite, source, batches["events"], {"dataframe": batch}, parameters
            )
    elif missing_days == len(days):
        reason = (
            f"no landing folder read for {source} on {_date_label(days)}: no events to validate"
        )
        results += _skip_all(suite, source, reason)
    # A source with no landing folder that the lake has never held is one this
    # deployment does not deliver (a marketplace has no web feed): its missing dates are
    # no warning. A landing folder of its own means the feed is wired: a missing date
    # warns, as ingestion says.
    lake_root = settings.events_partition(source, days[0].isoformat()).parent
    undelivered = (
        absent_days == len(days)
        and not lake_root.is_dir()
        and not (settings.landing_dir / source).is_dir()
    )
    if undelivered:
        reason = f"{source} is not delivered: the lake holds no {source} events on any date"
        results += _skip_all("ingest_stats", source, reason)
    elif stats:
        import pandas as pd

        frame = stats[0] if len(stats) == 1 else pd.concat(stats, ignore_index=True)
        hints = quarantine_hints(frame, source, settings)
        results += run.validate(
            "ingest_stats",
            source,
            batches["manifest"],
            {"dataframe": frame},
            parameters,
            hints=hints,
        )
    return results, events_count


def event_lags(settings: Settings) -> dict[str, float]:
    """How far before its landing date an event may have happened, in hours, as suite
    parameters (``landing_lag_hours`` is measured from occurred_at to the start of the
    landing date, so an event of the landing day itself has a lag between -24 and 0).

    ``min_lag_hours`` and ``max_lag_hours`` are what ingestion accepts (older events are
    quarantined as stale, later ones as future); ``late_window_hours`` is how late
    events are expected to be. Events between the two upper bounds are legitimate but
    rare, so the late window is a warning and only ingestion's own bounds are critical.
    """
    return {
        "min_lag_hours": -(24.0 + settings.future_tolerance_hours),
        # No age limit (a historical load): a century stands for none.
        "max_lag_hours": 24.0 * (settings.max_event_age_days or 36_525),
        "late_window_hours": 24.0 * settings.late_window_days,
    }


def event_vocabulary(seed: Path = EVENT_TYPES_SEED) -> dict[str, list[str]]:
    """The event types of each source, from the dbt seed (the one list the models use);
    a type several sources emit names them separated by ';'."""
    vocabulary: dict[str, list[str]] = {}
    with seed.open(newline="") as f:
        for row in csv.DictReader(f):
            for source in row["source"].split(";"):
                vocabulary.setdefault(source.strip(), []).append(row["event_type"])
    return {source: sorted(types) for source, types in vocabulary.items()}


def _fixed_event_parameters() -> dict[str, list[str]]:
    """Parameters taken from the code the suites check, so there is one definition."""
    from transforms.schema import CANONICAL_SCHEMA

    return {"canonical_columns": [*CANONICAL_SCHEMA.names(), *DERIVED_EVENT_COLUMNS]}


def read_manifest(settings: Settings, source: str, iso: str) -> dict[str, Any] | None:
    path = settings.manifest_path(source, iso)
    return json.loads(path.read_text()) if path.exists() else None


def read_partition(folder: Path, day: date) -> pd.DataFrame | None:
    """Every Parquet file of a lake partition as one pandas frame (GX 1.x cannot read
    Polars frames), with the landing date's start, each event's lag behind it, and
    whether any of its columns that may carry text still holds an address or handle
    (found by Polars in linear time: the same regex in pandas is quadratic on some long
    values, enough to starve a night); None when there is no file. A stray file is read
    too, on purpose: the build would read it."""
    import polars as pl

    from transforms.pii import holds_personal_data
    from transforms.schema import COLUMN_POLICY, IDENTIFIER, IDENTITY, JSON, TEXT, URL

    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    events = pl.read_parquet(files, hive_partitioning=False)
    return (
        events.with_columns(
            landing_day_start=pl.lit(start).cast(events.schema["ingested_at"]),
        )
        .with_columns(
            landing_lag_hours=(
                pl.col("landing_day_start") - pl.col("occurred_at")
            ).dt.total_seconds()
            / 3600.0,
            holds_personal_data=pl.any_horizontal(
                holds_personal_data(pl.col(name))
                for name, policy in COLUMN_POLICY.items()
                if policy in (TEXT, URL, JSON, IDENTITY, IDENTIFIER)
            ),
        )
        .to_pandas()
    )


def ingest_stats(manifest: dict[str, Any], lake_rows: int, max_share: float) -> pd.DataFrame:
    """The one-row table ``ingest_stats`` validates: the manifest's counts, the rows
    actually in the partition, the day's quarantine share and how significantly it
    exceeds ``max_share`` (``quarantine_p_value``)."""
    import pandas as pd

    read = int(manifest.get("read", 0))
    accepted = int(manifest.get("accepted", 0))
    quarantined = int(manifest.get("quarantined", 0))
    duplicates = int(manifest.get("duplicates", 0))
    reasons = manifest.get("quarantined_by_reason") or {}
    return pd.DataFrame(
        {
            "date": [str(manifest.get("date", ""))],
            # The day's most common quarantine reason, for the gate's advice.
            "top_reason": [max(reasons, key=lambda r: (reasons[r], r)) if reasons else ""],
            "status": [manifest.get("status", "ok")],
            "read": [read],
            "accepted": [accepted],
            "quarantined": [quarantined],
            "duplicates": [duplicates],
            "unaccounted": [read - accepted - quarantined - duplicates],
            # Events written: the accepted records, or more where a record makes several
            # (an order); a manifest written before the field existed has one per record.
            "events": [int(manifest.get("events", accepted))],
            "lake_rows": [lake_rows],
            "quarantine_share": [quarantined / read if read else 0.0],
            "quarantine_p_value": [quarantine_p_value(quarantined, read, max_share)],
            # Files quarantined whole: one that could not be read counts as one record,
            # so the share cannot see it; it is reported on its own.
            "files_quarantined_whole": [
                sum(1 for f in manifest.get("files", []) if f.get("quarantined_whole"))
            ],
        }
    )


def quarantine_p_value(quarantined: int, read: int, max_share: float) -> float:
    """The chance of quarantining at least ``quarantined`` of ``read`` records if each
    were quarantined with probability ``max_share``: the one-sided exact binomial test
    of "the day's true rate is at most the limit".

    A small day's share swings widely (one bad line of 20 is 5%), so the share alone
    cries wolf; a small p-value says the feed itself got worse, whatever the day's size.
    """
    if quarantined <= 0 or read <= 0:
        return 1.0
    from scipy.stats import binom

    return float(binom.sf(quarantined - 1, read, max_share))


def quarantine_hints(frame: pd.DataFrame, source: str, settings: Settings) -> dict[str, str]:
    """The days over the quarantine limit, said for ``ingest_stats``'s on_failure notes:
    ``{quarantine_significant}`` those significantly over it, ``{quarantine_over}`` all."""
    limit, significance = settings.max_quarantine_share, settings.quarantine_significance
    over, significant = [], []
    for row in frame.itertuples(index=False):
        if row.quarantine_share <= limit:
            continue
        said = (
            f"{row.date}: {row.quarantined:,} of {row.read:,} {source} records quarantined "
            f"({row.quarantine_share:.2%}), p-value {row.quarantine_p_value:.2g}"
        )
        if getattr(row, "top_reason", "") == "stale_timestamp":
            said += (
                f", mostly stale_timestamp: events older than CJM_MAX_EVENT_AGE_DAYS="
                f"{settings.max_event_age_days} days at landing; to load history, ingest "
                "the dates again with `cjm ingest --historical` (or raise the setting)"
            )
        over.append(said)
        if row.quarantine_p_value < significance:
            significant.append(said)
    return {
        "quarantine_over": "; ".join(over),
        "quarantine_significant": "; ".join(significant),
        "limit": f"{limit:g}",
        "significance": f"{significance:g}",
    }


# The marts gate -------------------------------------------------------------------------


def validate_marts(
    settings: Settings,
    build_path: Path | None = None,
    served_path: Path | None = None,
    *,
    run_date: date | None = None,
    save: bool = True,
    docs: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> ValidationReport:
    """Validate the marts of the build database, in SQL, opened read-only.

    ``served_path`` is last night's published database: each of ``BANDED_MARTS`` must keep
    at least ``1 - settings.row_count_band`` of its rows there (critical) and at most
    ``MAX_GROWTH`` times them (warning). Without a served database (the first night) those
    expectations are recorded as skipped. ``run_date`` defaults to the build's
    ``fct_journeys.as_of_date``. Writes ``validations_dir/<run date>/marts.json`` and the
    Data Docs unless told not to. ``progress`` gets one line as GX loads, one per
    ``MARTS_GROUP`` marts and one for the Data Docs. Raises ``ValidationError`` when
    there is no build database; bad data is reported: call ``raise_for_critical`` on the
    report.
    """
    build_path = Path(build_path or settings.build_path)
    served_path = Path(served_path or settings.warehouse_path)
    if not build_path.exists():
        raise ValidationError(
            f"marts gate: no build database at {build_path}; run `cjm build --date D` first"
        )
    began = time.perf_counter()
    tables, as_of = _inspect_build(build_path)
    run_date = run_date or as_of or datetime.now(UTC).date()
    served = served_counts(served_path)
    parameters, unavailable = band_parameters(settings, served, served_path)
    report = ValidationReport("marts", run_date, parameters=parameters)
    progress("marts gate: loading Great Expectations")
    context = _context(settings)
    run = _Run(context, _run_id("marts", run_date), {"date": run_date.isoformat()})
    source = context.data_sources.add_sql(
        "build",
        connection_string=f"duckdb:///{build_path}",
        kwargs={"creator": functools.partial(_read_only_connection, str(build_path))},
    )
    try:
        started = time.perf_counter()
        for number, table in enumerate(MARTS, start=1):
            if number > 1 and number % MARTS_GROUP == 1:
                _group_done(progress, number - 1, started)
                started = time.perf_counter()
            suite = f"marts_{table}"
            if table not in tables:
                rebuild = f"the build did not finish: `cjm build --date {run_date} --full-refresh`"
                description = f"{table} exists in {build_path}"
                report.results.append(
                    _precondition(suite, table, "table_exists", description, "no table", rebuild)
                )
                continue
            batch = source.add_table_asset(
                table, table_name=table
            ).add_batch_definition_whole_table("table")
            report.results += run.validate(suite, table, batch, None, parameters, unavailable)
        _group_done(progress, len(MARTS), started)
    finally:
        # GX keeps two engines (the data source's and its execution engine's) with
        # pooled read-only connections; close both, or this process could not open the
        # build database for writing again (DuckDB refuses a second configuration).
        source.get_execution_engine().close()
        source.get_engine().dispose()
    return _finish(report, settings, run, began, save, docs, progress)


def _group_done(progress: Callable[[str], None], done: int, started: float) -> None:
    first = (done - 1) // MARTS_GROUP * MARTS_GROUP
    names = ", ".join(MARTS[first:done])
    progress(
        f"marts gate: {done} of {len(MARTS)} marts validated "
        f"({names}: {time.perf_counter() - started:.1f} s)"
    )


def served_counts(served_path: Path) -> dict[str, int] | None:
    """Rows of each banded mart in the served database; None when there is none yet."""
    if not served_path.exists():
        return None
    import duckdb

    with duckdb.connect(str(served_path), read_only=True) as con:
        present = {
            row[0] for row in con.execute("select table_name from duckdb_tables()").fetchall()
        }
        return {
            table: con.execute(f"select count(*) from {table}").fetchone()[0]
            for table in BANDED_MARTS
            if table in present
        }


def band_parameters(
    settings: Settings, served: dict[str, int] | None, served_path: Path
) -> tuple[dict[str, int], dict[str, str]]:
    """The row-count band as suite parameters, and why a missing one is missing."""
    parameters: dict[str, int] = {}
    unavailable: dict[str, str] = {}
    for table in BANDED_MARTS:
        names = (f"{table}_min_rows", f"{table}_max_rows")
        if served is None:
            reason = f"no served database at {served_path} yet (first night): no band to keep"
        elif table not in served:
            reason = f"{table} is not in the served database {served_path}"
        else:
            parameters[names[0]] = math.ceil((1 - settings.row_count_band) * served[table])
            parameters[names[1]] = MAX_GROWTH * served[table]
            continue
        unavailable.update(dict.fromkeys(names, reason))
    return parameters, unavailable


def _inspect_build(build_path: Path) -> tuple[set[str], date | None]:
    import duckdb

    with duckdb.connect(str(build_path), read_only=True) as con:
        tables = {
            row[0] for row in con.execute("select table_name from duckdb_tables()").fetchall()
        }
        as_of = None
        if "fct_journeys" in tables:
            as_of = con.execute("select max(as_of_date) from fct_journeys").fetchone()[0]
    return tables, as_of


def _read_only_connection(path: str) -> Any:
    """A duckdb-engine connection to ``path``, read-only, in DuckDB's autocommit mode.

    duckdb-engine runs every statement on the connection itself, so the rollback
    SQLAlchemy issues when GX hands a connection back to the pool discards the result
    GX fetches next: every metric then fails with an IndexError in
    ``resolve_metric_bundle`` (GX issue 11579). The gate only reads, so the transaction
    calls can do nothing and each query runs on its own.
    """
    import duckdb

    return _autocommit_wrapper()(duckdb.connect(path, read_only=True))


@functools.cache
def _autocommit_wrapper() -> type:
    from duckdb_engine import ConnectionWrapper

    class ReadOnlyConnection(ConnectionWrapper):
        def begin(self) -> None:
            pass

        def commit(self) -> None:
            pass

        def rollback(self) -> None:
            pass

    return ReadOnlyConnection


# Suites, the GX context and results ----------------------------------------------------


def load_suite(name: str, suites_dir: Path = SUITES_DIR) -> dict[str, Any]:
    """A suite's JSON, checked: every expectation says whether it is critical."""
    path = suites_dir / f"{name}.json"
    data = json.loads(path.read_text())
    for number, expectation in enumerate(data.get("expectations", []), start=1):
        severity = (expectation.get("meta") or {}).get("severity")
        if severity not in SEVERITIES:
            raise ValueError(
                f"{path}: expectation {number} ({expectation.get('type')}) has meta.severity "
                f"{severity!r}; set it to one of {', '.join(SEVERITIES)}"
            )
    return data


def parameter_names(value: Any) -> set[str]:
    """The ``$PARAMETER`` names an expectation's kwargs refer to."""
    if isinstance(value, dict):
        if "$PARAMETER" in value:
            return {value["$PARAMETER"]}
        return set().union(*(parameter_names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(parameter_names(v) for v in value))
    return set()


def _context(settings: Settings) -> AbstractDataContext:
    """An in-memory GX context with every suite, a Data Docs site in
    ``settings.data_docs_dir``, and validation results kept on disk.

    The results store is on disk because GX's site builder drops every page whose
    result is no longer in the store, so an in-memory store would keep one night only.
    All suites are loaded for the same reason: their pages stay in the index.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
    )

    stores = InMemoryStoreBackendDefaults()
    stores.stores[stores.validation_results_store_name]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": str(settings.validations_dir / "gx_results"),
    }
    config = DataContextConfig(
        store_backend_defaults=stores,
        analytics_enabled=False,
        progress_bars={"globally": False, "metric_calculations": False},
        data_docs_sites={
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(settings.data_docs_dir),
                },
                # The index lists the latest results only: about a month of nights.
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": DOCS_INDEX_LIMIT,
                },
            }
        },
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    for path in sorted(SUITES_DIR.glob("*.json")):
        context.suites.add(gx.ExpectationSuite(**load_suite(path.stem)))
    return context


def _run_id(gate: str, run_date: date) -> Any:
    from great_expectations.core.run_identifier import RunIdentifier

    return RunIdentifier(run_name=f"{gate}-{run_date}", run_time=datetime.now(UTC))


class _Run:
    """The validations of one gate call, and the GX identifiers of their results."""

    def __init__(self, context: AbstractDataContext, run_id: Any, hints: dict[str, str]):
        self.context = context
        self.run_id = run_id
        self.hints = hints
        self.identifiers: list[ValidationResultIdentifier] = []

    def validate(
        self,
        suite_name: str,
        batch: str,
        definition: BatchDefinition,
        batch_parameters: dict[str, Any] | None,
        parameters: dict[str, Any],
        unavailable: dict[str, str] | None = None,
        hints: dict[str, str] | None = None,
    ) -> list[ExpectationResult]:
        """Run one suite on one batch. Expectations whose parameters are unavailable
        are left out of the run and recorded as skipped, with the reason. ``hints`` fill
        the ``{name}`` placeholders of the on_failure notes, with the run's own."""
        import great_expectations as gx
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        data = load_suite(suite_name)
        runnable, results = [], []
        for expectation in data["expectations"]:
            missing = sorted(parameter_names(expectation["kwargs"]) - parameters.keys())
            if missing:
                reason = (unavailable or {}).get(missing[0], f"no value for {missing[0]}")
                results.append(_skipped(suite_name, batch, expectation, reason))
            else:
                runnable.append(expectation)
        if len(runnable) < len(data["expectations"]):
            self.context.suites.delete(suite_name)
            self.context.suites.add(gx.ExpectationSuite(**{**data, "expectations": runnable}))
        suite = self.context.suites.get(suite_name)
        definition_name = f"{suite_name}:{batch}"
        validation = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=definition_name, data=definition, suite=suite)
        )
        run = functools.partial(
            validation.run,
            batch_parameters=batch_parameters,
            expectation_parameters=parameters,
            run_id=self.run_id,
        )
        outcome = run(result_format=result_format(suite_name))
        if suite_name.startswith("events_") and _rows_failed(outcome):
            # Naming the failing events costs a quarter more on every run, so only a run
            # that failed runs again for their event_ids (its result replaces the first
            # in the store: same suite, run and batch).
            outcome = run(result_format=result_format(suite_name, name_rows=True))
        self.identifiers.append(
            ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
                run_id=self.run_id,
                batch_identifier=outcome.batch_id,
            )
        )
        hints = {**self.hints, "source": batch, **(hints or {})}
        return [_result(suite_name, batch, r, hints) for r in outcome.results] + results


def _rows_failed(outcome: Any) -> bool:
    return any(not r.success and (r.result or {}).get("unexpected_count") for r in outcome.results)


def _result(suite: str, batch: str, outcome: Any, hints: dict[str, str]) -> ExpectationResult:
    """Our record of a GX result. An expectation GX could not evaluate has failed:
    a gate must not pass because a query broke."""
    config = outcome.expectation_config
    meta = config.meta or {}
    details = outcome.result or {}
    error = _exception_message(outcome.exception_info)
    passed = bool(outcome.success) and error is None
    note = "" if passed else _hint(meta.get("on_failure", ""), hints)
    if error:
        note = f"GX could not evaluate it ({error}); {note}"
    observed = details.get("observed_value")
    if observed is None and details.get("partial_unexpected_list"):
        observed = details["partial_unexpected_list"]
    # Events are indexed by event_id (result_format); a null id is no help.
    ids = details.get("partial_unexpected_index_list") if suite.startswith("events_") else None
    return ExpectationResult(
        suite=suite,
        batch=batch,
        expectation=config.type,
        column=_columns(config.kwargs),
        description=config.description or "",
        severity=meta["severity"],
        status=PASSED if passed else FAILED,
        observed=observed,
        unexpected_count=details.get("unexpected_count"),
        note=note,
        event_ids=tuple(str(i) for i in ids or [] if isinstance(i, str)),
    )


def _skipped(suite: str, batch: str, expectation: dict[str, Any], reason: str) -> ExpectationResult:
    return ExpectationResult(
        suite=suite,
        batch=batch,
        expectation=expectation["type"],
        column=_columns(expectation["kwargs"]),
        description=expectation.get("description") or "",
        severity=expectation["meta"]["severity"],
        status=SKIPPED,
        note=reason,
    )


def _skip_all(suite: str, batch: str, reason: str) -> list[ExpectationResult]:
    return [_skipped(suite, batch, e, reason) for e in load_suite(suite)["expectations"]]


def _precondition(
    suite: str, batch: str, name: str, description: str, observed: str, note: str
) -> ExpectationResult:
    """A failed check that comes before GX: the data to validate is not there."""
    return ExpectationResult(
        suite, batch, name, "", description, "critical", FAILED, observed, None, note
    )


def _finish(
    report: ValidationReport,
    settings: Settings,
    run: _Run,
    began: float,
    save: bool,
    docs: bool,
    progress: Callable[[str], None],
) -> ValidationReport:
    if docs and run.identifiers:
        started = time.perf_counter()
        written_from = time.time()
        report.data_docs = _build_docs(run)
        # GX's templates load their scripts and styles from CDNs: point the pages this
        # build wrote at the local copies, so the site opens offline.
        if docs_assets.installed():
            docs_assets.localize(settings.data_docs_dir, written_from)
        else:
            progress(
                f"{report.gate} gate: the Data Docs load their scripts and styles from the "
                "network: their local copies are not installed (`make install`)"
            )
        progress(f"{report.gate} gate: Data Docs updated in {time.perf_counter() - started:.1f} s")
    report.seconds = time.perf_counter() - began
    if save:
        folder = settings.validations_dir / report.run_date.isoformat()
        if report.gate == "events":
            for batch in dict.fromkeys(r.batch for r in report.results):
                path = report.subset(batch).save(folder / f"events-{batch}.json")
                report.saved.append(path)
        else:
            report.save(folder / "marts.json")
    return report


def _build_docs(run: _Run) -> Path:
    """Render this run's results and suites, and the index of every stored run."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    suites = {i.expectation_suite_identifier.name for i in run.identifiers}
    urls = run.context.build_data_docs(
        site_names=[DOCS_SITE],
        resource_identifiers=[
            *run.identifiers,
            *(ExpectationSuiteIdentifier(name=name) for name in sorted(suites)),
        ],
    )
    return Path(urls[DOCS_SITE].removeprefix("file://"))


def _exception_message(info: dict[str, Any] | None) -> str | None:
    """GX reports an error either flat or per failed metric; either way, its message."""
    if not info:
        return None
    if "raised_exception" in info:
        return (
            (info.get("exception_message") or "unknown error") if info["raised_exception"] else None
        )
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message") or "unknown error"
    return None


def _columns(kwargs: dict[str, Any]) -> str:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_list" in kwargs:
        return ", ".join(kwargs["column_list"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return ""


def _hint(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"{{{key}}}", value)
    return text


def _observed(result: ExpectationResult) -> str:
    if result.unexpected_count:
        sample = ""
        if result.event_ids:
            sample = f", e.g. event_id {', '.join(result.event_ids)}"
        elif isinstance(result.observed, list):
            sample = f", e.g. {result.observed}"
        return f"{result.unexpected_count:,} unexpected{sample}"
    return json.dumps(result.observed, default=_json_default)


def _mask(text: str) -> str:
    from transforms.pii import mask_string

    return mask_string(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return str(value)
