"""One settings object for the CLI, the ingestion runner and the DAG.

Every field can be overridden by an environment variable named ``CJM_<FIELD>``
(for example ``CJM_DATA_DIR=/srv/cjm/data`` or ``CJM_SALT=...``). Values are checked
when the settings are made, so a bad value stops any command at once with one line
naming the variable and what it accepts (``SettingsError``), not at build time.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ByteSize, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCES: tuple[str, ...] = ("web", "email", "social", "reviews", "orders")
# What ingestion reads: the event sources plus the crm export (identity links only).
ALL_SOURCES: tuple[str, ...] = (*SOURCES, "crm")
# The BI contract: the marts every build must have, which the gate checks and publish serves.
MARTS: tuple[str, ...] = (
    "fct_journey_events",
    "fct_sessions",
    "fct_journeys",
    "dim_customers",
    "dim_touchpoints",
    "dim_stages",
    "dim_personas",
    "dim_ideal_path",
    "agg_stage_funnel",
    "agg_journey_populations",
    "agg_touchpoint_dropoff",
    "agg_dropoff_drivers",
    "agg_stage_durations",
    "agg_dropoff_paths",
    "agg_checkout_recovery",
    "agg_voice_themes",
    "agg_voice_quotes",
    "agg_dropoff_alerts",
    "agg_stage_actions",
    "agg_stage_sentiment",
    "agg_text_languages",
    "agg_transitions",
    "agg_journey_variants",
    "agg_attribution",
    "fct_journey_conformance",
    "agg_path_conformance",
)


# Identifier values that cannot identify a person: SDK placeholders, serialised nulls and
# booleans, and the all-zero device id. They never become identity nodes, whatever
# CJM_IDENTITY_DENY_LIST adds to them. Compared lower case, without surrounding spaces.
IDENTITY_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "",
        "true",
        "false",
        "null",
        "none",
        "nil",
        "nan",
        "undefined",
        "0",
        "-1",
        "-",
        "n/a",
        "na",
        "unknown",
        "anonymous",
        "guest",
        "[object object]",
        "00000000-0000-0000-0000-000000000000",
    }
)
# DuckDB's memory_limit: a number and a unit (1000^i KB..TB or 1024^i KiB..TiB), or a
# percentage of the machine's memory.
MEMORY_LIMIT = re.compile(r"^\s*\d+(\.\d+)?\s*(([KMGT]i?)?B|%)\s*$", re.IGNORECASE)
# Environment variables of the project that are not fields of Settings.
OTHER_VARIABLES: frozenset[str] = frozenset(
    {"CJM_LAKE_DIR", "CJM_SCHEDULE", "CJM_START_DATE", "CJM_CATCHUP"}
)


class SettingsError(ValueError):
    """A setting has a value it cannot take; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CJM_", extra="ignore")

    data_dir: Path = Field(PROJECT_ROOT / "data", description="Root of landing, lake and truth.")
    warehouse_path: Path = Field(
        PROJECT_ROOT / "warehouse" / "cjm.duckdb", description="The served DuckDB database."
    )
    salt: str = Field(
        "cjm-default-salt-change-me",
        description="Salt prepended to emails and social handles before SHA-256.",
    )
    time_zone: str = Field("UTC", description="Business time zone for reporting periods.")
    source_time_zones: dict[str, str] = Field(
        default_factory=dict,
        description="Time zone a source's timestamps without an offset are read in, per "
        'source (JSON, e.g. {"orders": "America/Sao_Paulo"}); UTC for the others. A layout '
        "file's zone governs the exports read through it.",
    )
    session_gap_minutes: int = Field(30, gt=0, description="Inactivity that splits sessions.")
    session_cap_hours: int = Field(
        12, gt=0, description="Longest a session may run before a split."
    )
    journey_gap_days: int = Field(30, gt=0, description="Inactivity that ends a journey.")
    return_window_days: int = Field(
        90,
        gt=0,
        description="Days after an order within which a loyalty signal (a repeat order, a"
        " recommendation, a loyalty programme action) makes the journey retained; after"
        " them without one it has lapsed.",
    )
    late_window_days: int = Field(
        5, ge=0, description="How late an event may land after it happened and still be expected."
    )
    dedupe_lookback_days: int = Field(
        14, ge=0, description="Landing dates on either side searched for re-delivered events."
    )
    max_event_age_days: int = Field(
        90,
        ge=0,
        description="Events older than this at landing are quarantined as stale; 0 for no "
        "limit (a historical load: `--historical`).",
    )
    future_tolerance_hours: int = Field(
        24, ge=0, description="Events stamped this far past the landing day's end are quarantined."
    )
    ingest_workers: int = Field(2, ge=1, description="Sources ingested in parallel processes.")
    build_path: Path = Field(
        PROJECT_ROOT / "warehouse" / "build" / "cjm.duckdb",
        description="The DuckDB database dbt builds into (kept between nights).",
    )
    build_lookback_days: int = Field(
        3, ge=0, description="Landing dates an incremental build re-reads for late events."
    )
    funnel_period: Literal["day", "week", "month"] = Field(
        "week", description="Grain of funnel periods: day, week, month."
    )
    attribution_half_life_days: float = Field(
        7.0, gt=0, description="Half-life of the time-decay attribution model, in days."
    )
    driver_min_journeys: int = Field(
        30,
        ge=1,
        description="A drop-off driver is tested only when the journeys with the factor and "
        "those without it number at least this many each (agg_dropoff_drivers).",
    )
    driver_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="A drop-off driver is significant when its Benjamini-Hochberg q-value is "
        "below this.",
    )
    report_min_journeys: int = Field(
        20,
        ge=1,
        description="The journey map shows a drop-off rate over fewer journeys of known "
        "outcome than this as too small to read, not as a rate.",
    )
    alert_rise: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="A stage's drop-off rate rising by this share (0.05 = five points) "
        "between the two latest settled periods is an alert, when significant.",
    )
    alert_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="A drop-off rise is significant when Fisher's exact p is below this.",
    )
    duckdb_memory_limit: str = Field(
        "3GB",
        description="DuckDB memory_limit for builds (the build tree peaks about 1 GiB above it).",
    )
    duckdb_threads: int = Field(2, ge=1, description="DuckDB threads for builds.")
    keep_snapshots: int = Field(
        3,
        ge=1,
        description="Published snapshots kept for `cjm rollback` (the served one included).",
    )
    max_quarantine_share: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Largest share of a day's records of one source that may be quarantined.",
    )
    row_count_band: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A mart's row count may fall at most this share below the served night's.",
    )

    quarantine_significance: float = Field(
        0.001,
        gt=0,
        lt=1,
        description="A day's quarantine share is critical only when it is this significantly "
        "above CJM_MAX_QUARANTINE_SHARE (one-sided binomial test for the day's count).",
    )
    # Bounds on what one landing file may cost: a record over them is quarantined with
    # its reason, a file over them is quarantined whole, and the rest of the night lands.
    max_file_bytes: ByteSize = Field(
        ByteSize(1 << 30), description="Largest landing file, after decompression."
    )
    max_compression_ratio: float = Field(
        200.0,
        gt=1,
        description="A compressed file that grows more than this many times is refused "
        "(a decompression bomb).",
    )
    max_line_bytes: ByteSize = Field(
        ByteSize(8 << 20), description="Longest line (JSON lines) or record (CSV)."
    )
    max_field_chars: int = Field(
        1 << 20, gt=0, description="Longest field of a CSV record, in characters."
    )
    max_file_rejects: int = Field(
        10_000,
        gt=0,
        description="A file with more rejected records than this, most of what it held, is "
        "quarantined whole instead of record by record.",
    )
    identity_deny_list: str = Field(
        "",
        description="Comma-separated identifier values that never identify a person, "
        "beyond the built-in placeholders (true, null, undefined, 0, ...).",
    )
    max_customers_per_identifier: int = Field(
        5,
        gt=0,
        description="An identifier linked to more distinct customers than this (a shared "
        "device, a shared mailbox) is reported and not used to merge them.",
    )
    lock_wait_seconds: int = Field(
        1800,
        ge=0,
        description="How long a scheduled task waits for another night's lock before failing "
        "(the command line waits only when told to).",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("an IANA time zone name such as UTC or Europe/Lisbon") from exc
        return value

    @field_validator("source_time_zones")
    @classmethod
    def _known_source_time_zones(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(ALL_SOURCES))
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; choose from {list(ALL_SOURCES)}")
        for source, zone in value.items():
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(
                    f"{source}: '{zone}' is not an IANA time zone name such as Europe/Lisbon"
                ) from exc
        return value

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _memory_limit(cls, value: str) -> str:
        if not MEMORY_LIMIT.match(value):
            raise ValueError("a size such as 3GB, 512MiB or 80%")
        return value.strip()

    @field_validator("max_file_bytes", "max_line_bytes")
    @classmethod
    def _at_least_a_kibibyte(cls, value: ByteSize) -> ByteSize:
        # 0 would quarantine every file or record: a limit, not a way to turn one off.
        if value < 1024:
            raise ValueError("a size of at least 1KiB, such as 8MiB")
        return value

    @property
    def identity_deny_values(self) -> frozenset[str]:
        """Identifier values that are never identity nodes (lower case)."""
        extra = {v.strip().lower() for v in self.identity_deny_list.split(",") if v.strip()}
        return IDENTITY_PLACEHOLDERS | extra

    @property
    def warehouse_dir(self) -> Path:
        return self.warehouse_path.parent

    @property
    def snapshots_dir(self) -> Path:
        """Published databases, newest last; the served file is a link to one of them."""
        return self.warehouse_dir / "snapshots"

    @property
    def parquet_dir(self) -> Path:
        """The served marts as Parquet files: ``<parquet_dir>/current/<mart>.parquet``."""
        return self.warehouse_dir / "parquet"

    @property
    def reports_dir(self) -> Path:
        """The HTML journey maps, one per published run date."""
        return self.warehouse_dir / "reports"

    @property
    def validations_dir(self) -> Path:
        """Great Expectations results per run (JSON) and the Data Docs site."""
        return self.warehouse_dir / "validations"

    @property
    def data_docs_dir(self) -> Path:
        return self.validations_dir / "data_docs"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def truth_dir(self) -> Path:
        return self.data_dir / "truth"

    def events_partition(self, source: str, date: str) -> Path:
        return self.lake_dir / "events" / f"source={source}" / f"date={date}"

    def quarantine_partition(self, source: str, date: str) -> Path:
        return self.lake_dir / "quarantine" / f"source={source}" / f"date={date}"

    def crm_partition(self, date: str) -> Path:
        return self.lake_dir / "crm_customers" / f"date={date}"

    def manifest_path(self, source: str, date: str) -> Path:
        return self.lake_dir / "manifests" / f"date={date}" / f"{source}.json"


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (used by the CLI flags).

    Raises ``SettingsError`` with one line per bad value, naming its variable and what
    it accepts.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        raise SettingsError(settings_problems(exc, set(clean))) from None


def settings_problems(exc: ValidationError, overridden: set[str] = frozenset()) -> str:
    """One line per invalid setting: the variable, the value it had, what it accepts."""
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        variable = f"the option for {name}" if name in overridden else f"CJM_{name.upper()}"
        value = error.get("input")
        accepted = _accepted(name, error)
        lines.append(f"{variable}={value!r} is not valid: expected {accepted}")
    return "\n".join(lines)


def _accepted(name: str, error: dict) -> str:
    field = Settings.model_fields.get(name)
    kind = error.get("type", "")
    context = error.get("ctx") or {}
    if kind == "value_error":
        return str(context.get("error", error.get("msg", "")))
    if kind == "literal_error":
        return f"one of {context.get('expected', '')}"
    if kind == "byte_size":
        return "a size in bytes, such as 1GiB, 512MB or 1048576"
    bounds = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
    metadata = field.metadata if field is not None else []
    limits = [f"{bounds[k]} {getattr(m, k)}" for m in metadata for k in bounds if hasattr(m, k)]
    limits = limits or [f"{bounds[k]} {v}" for k, v in context.items() if k in bounds]
    annotation = field.annotation if field is not None else None
    what = {int: "a whole number", float: "a number", bool: "true or false"}.get(
        annotation, "a valid value"
    )
    return what + (f" {' and '.join(limits)}" if limits else "")


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """``CJM_*`` variables that no setting reads (a typo is otherwise silently ignored),
    each with the closest known name when there is one."""
    environ = os.environ if environ is None else environ
    known = {f"CJM_{name.upper()}" for name in Settings.model_fields} | OTHER_VARIABLES
    lines = []
    for variable in sorted(v for v in environ if v.startswith("CJM_") and v not in known):
        close = difflib.get_close_matches(variable, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"{variable} is not a setting of cjm and is ignored{hint}")
    return lines
