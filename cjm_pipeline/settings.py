"""One settings object for the CLI, the ingestion runner and (later) the DAG.

Every field can be overridden by an environment variable named ``CJM_<FIELD>``
(for example ``CJM_DATA_DIR=/srv/cjm/data`` or ``CJM_SALT=...``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCES: tuple[str, ...] = ("web", "email", "social", "reviews")
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
    "agg_stage_funnel",
    "agg_touchpoint_dropoff",
    "agg_stage_actions",
    "agg_stage_sentiment",
    "agg_transitions",
    "agg_journey_variants",
    "agg_attribution",
    "fct_journey_conformance",
    "agg_path_conformance",
)


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
    session_gap_minutes: int = Field(30, description="Inactivity that splits sessions.")
    session_cap_hours: int = Field(12, description="Longest a session may run before a split.")
    journey_gap_days: int = Field(30, description="Inactivity that ends a journey.")
    late_window_days: int = Field(
        5, description="How late an event may land after it happened and still be expected."
    )
    dedupe_lookback_days: int = Field(
        14, description="Landing dates on either side searched for re-delivered events."
    )
    max_event_age_days: int = Field(
        90, description="Events older than this at landing are quarantined as stale."
    )
    future_tolerance_hours: int = Field(
        24, description="Events stamped this far past the landing day's end are quarantined."
    )
    ingest_workers: int = Field(2, description="Sources ingested in parallel processes.")
    build_path: Path = Field(
        PROJECT_ROOT / "warehouse" / "build" / "cjm.duckdb",
        description="The DuckDB database dbt builds into (kept between nights).",
    )
    build_lookback_days: int = Field(
        3, description="Landing dates an incremental build re-reads for late events."
    )
    funnel_period: str = Field("week", description="Grain of funnel periods: day, week, month.")
    attribution_half_life_days: float = Field(
        7.0, gt=0, description="Half-life of the time-decay attribution model, in days."
    )
    duckdb_memory_limit: str = Field(
        "3GB",
        description="DuckDB memory_limit for builds (the build tree peaks about 1 GiB above it).",
    )
    duckdb_threads: int = Field(2, description="DuckDB threads for builds.")
    keep_snapshots: int = Field(
        3, description="Published snapshots kept for `cjm rollback` (the served one included)."
    )
    max_quarantine_share: float = Field(
        0.02, description="Largest share of a day's records of one source that may be quarantined."
    )
    row_count_band: float = Field(
        0.5,
        description="A mart's row count may fall at most this share below the served night's.",
    )

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
    """Settings from the environment, with explicit overrides (used by the CLI flags)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
