"""The Great Expectations gates, run for real on the generated sample: the events gate on
every landing date, the marts gate on the built database, and each against a corrupted
copy (never the session fixtures' own files) that a critical expectation must stop."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cjm_pipeline.settings import SOURCES, Settings
from cjm_pipeline.validate import (
    BANDED_MARTS,
    MARTS,
    SEVERITIES,
    SUITES_DIR,
    ValidationError,
    ValidationReport,
    band_parameters,
    event_lags,
    event_vocabulary,
    load_suite,
    parameter_names,
    validate_events,
    validate_marts,
)
from tests.conftest import sample_dates

DAY = date(2026, 10, 5)  # a busy day: every source landed
DAY_ISO = DAY.isoformat()


@pytest.fixture
def events_settings(sample: Settings, tmp_path: Path) -> Settings:
    """The sample's lake, copied: tests may break it."""
    shutil.copytree(sample.lake_dir, tmp_path / "data" / "lake")
    return sample.model_copy(
        update={"data_dir": tmp_path / "data", "warehouse_path": tmp_path / "wh" / "cjm.duckdb"}
    )


@pytest.fixture
def marts_settings(built: Settings, tmp_path: Path) -> Settings:
    """Validation results and Data Docs go to this test's own folder."""
    return built.model_copy(update={"warehouse_path": tmp_path / "wh" / "cjm.duckdb"})


def copy_database(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, target.with_name(target.name + ".wal"))
    return target


def failed(report: ValidationReport, suite: str, expectation: str, column: str = "") -> list:
    return [
        r
        for r in report.critical_failures
        if r.suite == suite and r.expectation == expectation and (not column or r.column == column)
    ]


def message(report: ValidationReport) -> str:
    with pytest.raises(ValidationError) as raised:
        report.raise_for_critical()
    return str(raised.value)


# The suites themselves -------------------------------------------------------------------


def test_every_suite_is_valid_gx_json_with_a_severity() -> None:
    import great_expectations as gx

    names = sorted(p.stem for p in SUITES_DIR.glob("*.json"))
    assert names == sorted(
        [f"events_{s}" for s in SOURCES] + ["ingest_stats"] + [f"marts_{t}" for t in MARTS]
    )
    for name in names:
        data = load_suite(name)
        suite = gx.ExpectationSuite(**data)
        assert len(suite.expectations) == len(data["expectations"]), f"{name} lost expectations"
        for expectation in data["expectations"]:
            assert expectation["meta"]["severity"] in SEVERITIES
            # GX's own severity field says the same, so Data Docs show it too.
            assert expectation["severity"] == expectation["meta"]["severity"], name


def test_every_suite_parameter_is_filled_by_its_gate(sample: Settings) -> None:
    events = {
        *event_lags(sample),
        "event_types",
        "canonical_columns",
        "pii_patterns",
        "max_quarantine_share",
    }
    marts, _ = band_parameters(sample, dict.fromkeys(BANDED_MARTS, 10), Path("served.duckdb"))
    for path in SUITES_DIR.glob("*.json"):
        used = parameter_names(load_suite(path.stem)["expectations"])
        assert used <= (set(marts) if path.stem.startswith("marts_") else events), path.name


def test_vocabulary_comes_from_the_seed() -> None:
    vocabulary = event_vocabulary()
    assert set(vocabulary) == set(SOURCES)
    assert "order_completed" in vocabulary["web"] and "order_completed" not in vocabulary["email"]
    assert vocabulary["reviews"] == ["review_posted"]


# The events gate -------------------------------------------------------------------------


def test_events_gate_passes_on_every_sample_day(events_settings: Settings) -> None:
    checked: set[str] = set()
    for day in sample_dates():
        report = validate_events(events_settings, day, docs=False)
        assert report.success, (
            report.summary() + "\n" + "\n".join(map(str, report.critical_failures))
        )
        checked |= {r.batch for r in report.results if r.suite.startswith("events_") and r.success}
        for source in SOURCES:
            saved = events_settings.validations_dir / day.isoformat() / f"events-{source}.json"
            assert json.loads(saved.read_text())["success"] is True
    assert checked == set(SOURCES)


def test_a_copied_partition_file_fails_the_unique_event_id(events_settings: Settings) -> None:
    partition = events_settings.events_partition("web", DAY_ISO)
    shutil.copyfile(partition / "events.parquet", partition / "events-copy.parquet")

    report = validate_events(events_settings, DAY, ["web"], docs=False)

    assert failed(report, "events_web", "expect_column_values_to_be_unique", "event_id")
    # The partition no longer matches what ingestion accepted, either.
    assert failed(report, "ingest_stats", "expect_column_pair_values_to_be_equal")
    text = message(report)
    assert "events_web [web] expect_column_values_to_be_unique on event_id" in text
    assert f"cjm ingest --date {DAY_ISO} --source web" in text


def test_an_event_type_of_another_source_fails_the_vocabulary(events_settings: Settings) -> None:
    path = events_settings.events_partition("web", DAY_ISO) / "events.parquet"
    events = pl.read_parquet(path)
    broken = events.with_columns(
        event_type=pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("review_posted"))
        .otherwise("event_type")
    )
    broken.write_parquet(path)

    report = validate_events(events_settings, DAY, ["web"], docs=False)

    [vocabulary] = failed(report, "events_web", "expect_column_values_to_be_in_set", "event_type")
    assert vocabulary.unexpected_count == 1 and vocabulary.observed == ["review_posted"]
    assert "expect_column_values_to_be_in_set on event_type" in message(report)


def test_a_range_of_dates_is_one_pass_and_names_the_bad_batch(events_settings: Settings) -> None:
    days = sample_dates()
    report = validate_events(events_settings, days, docs=False)
    assert report.success, "\n".join(map(str, report.critical_failures))
    # One validation per suite and source, whatever the number of days.
    assert len({(r.suite, r.batch) for r in report.results}) == 2 * len(SOURCES)

    partition = events_settings.events_partition("email", days[4].isoformat())
    shutil.copy(partition / "events.parquet", partition / "events-copy.parquet")
    report = validate_events(events_settings, days, docs=False)
    unique = failed(report, "events_email", "expect_column_values_to_be_unique", "event_id")
    assert unique and unique[0].unexpected_count > 0
    assert f"{days[0]}..{days[-1]}" in message(report)


def test_timestamps_outside_the_window_fail_or_warn(events_settings: Settings) -> None:
    path = events_settings.events_partition("web", DAY_ISO) / "events.parquet"
    row = pl.int_range(pl.len())
    landing = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    pl.read_parquet(path).with_columns(
        occurred_at=pl.when(row == 0)
        .then(pl.lit(landing - timedelta(days=events_settings.max_event_age_days + 1)))
        .when(row == 1)
        .then(pl.lit(landing - timedelta(days=events_settings.late_window_days + 1)))
        .otherwise("occurred_at")
    ).write_parquet(path)

    report = validate_events(events_settings, DAY, ["web"], docs=False)

    # Older than ingestion accepts: critical. Later than the late window only: a warning.
    [stale] = failed(
        report, "events_web", "expect_column_values_to_be_between", "landing_lag_hours"
    )
    assert stale.unexpected_count == 1
    [late] = [w for w in report.warnings if w.column == "landing_lag_hours"]
    assert late.unexpected_count == 2


def test_an_address_in_text_fails_the_pii_check(events_settings: Settings) -> None:
    path = events_settings.events_partition("web", DAY_ISO) / "events.parquet"
    pl.read_parquet(path).with_columns(
        text=pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("call me: ava.berg@mailbox.example"))
        .otherwise("text")
    ).write_parquet(path)

    report = validate_events(events_settings, DAY, ["web"], docs=False)

    [leak] = failed(report, "events_web", "expect_column_values_to_not_match_regex_list", "text")
    assert leak.unexpected_count == 1


def test_a_quarantine_share_above_the_limit_fails(events_settings: Settings) -> None:
    path = events_settings.manifest_path("web", DAY_ISO)
    manifest = json.loads(path.read_text())
    manifest["read"] += 200
    manifest["quarantined"] += 200
    path.write_text(json.dumps(manifest))

    report = validate_events(events_settings, DAY, ["web"], docs=False)

    [share] = failed(report, "ingest_stats", "expect_column_values_to_be_between")
    assert share.column == "quarantine_share"
    assert share.observed[0] > events_settings.max_quarantine_share
    assert "ingest_stats [web]" in message(report)


def test_a_day_without_a_landing_folder_is_skipped_with_a_warning(
    events_settings: Settings,
) -> None:
    report = validate_events(events_settings, date(2026, 10, 1), ["reviews"], docs=False)

    assert report.success
    assert {r.suite for r in report.skipped} == {"events_reviews"}
    [warning] = report.warnings
    assert warning.column == "status"


def test_a_date_that_was_not_ingested_fails(events_settings: Settings) -> None:
    shutil.rmtree(events_settings.events_partition("web", DAY_ISO))
    events_settings.manifest_path("web", DAY_ISO).unlink()

    report = validate_events(events_settings, DAY, ["web"], docs=False)

    assert {r.expectation for r in report.critical_failures} == {
        "partition_exists",
        "manifest_exists",
    }
    assert f"cjm ingest --date {DAY_ISO} --source web" in message(report)


# The marts gate --------------------------------------------------------------------------


def test_marts_gate_passes_without_a_served_database(marts_settings: Settings) -> None:
    report = validate_marts(
        marts_settings, marts_settings.build_path, marts_settings.warehouse_path
    )

    assert report.success, "\n".join(map(str, report.critical_failures))
    assert {r.suite for r in report.results} == {f"marts_{t}" for t in MARTS}
    band = [r for r in report.skipped if r.expectation == "expect_table_row_count_to_be_between"]
    assert len(band) == len(report.skipped) == 2 * len(BANDED_MARTS)
    assert all("no served database" in r.note for r in band)
    assert report.data_docs == marts_settings.data_docs_dir / "index.html"
    assert report.data_docs.exists()
    saved = json.loads((marts_settings.validations_dir / "2026-10-12" / "marts.json").read_text())
    assert saved["success"] is True and len(saved["results"]) == len(report.results)


def test_marts_gate_keeps_the_band_of_the_served_database(marts_settings: Settings) -> None:
    report = validate_marts(
        marts_settings, marts_settings.build_path, marts_settings.build_path, docs=False
    )

    assert report.success, "\n".join(map(str, report.critical_failures))
    assert not report.skipped
    band = [r for r in report.results if "served night" in r.description]
    assert {r.batch for r in band} == set(BANDED_MARTS)
    assert all(r.success for r in band)


def test_a_collapsed_mart_fails_the_row_count_band(
    marts_settings: Settings, tmp_path: Path
) -> None:
    build = copy_database(marts_settings.build_path, tmp_path / "build" / "cjm.duckdb")
    with duckdb.connect(str(build)) as con:
        con.execute("delete from fct_journeys where hash(journey_id) % 10 != 0")

    report = validate_marts(marts_settings, build, marts_settings.build_path, docs=False)

    [band] = failed(report, "marts_fct_journeys", "expect_table_row_count_to_be_between")
    assert "served night" in band.description
    assert [r.batch for r in report.critical_failures] == ["fct_journeys"]
    text = message(report)
    assert "marts_fct_journeys [fct_journeys] expect_table_row_count_to_be_between" in text
    assert "must not be published" in text
    # The gate let go of the file: it can be opened for writing again in this process.
    duckdb.connect(str(build)).close()


def test_a_growing_funnel_fails_its_monotonic_expectation(
    marts_settings: Settings, tmp_path: Path
) -> None:
    build = copy_database(marts_settings.build_path, tmp_path / "build" / "cjm.duckdb")
    with duckdb.connect(str(build)) as con:
        con.execute(
            """
            update agg_stage_funnel set journeys_entered = journeys_entered + 1000
            where rowid = (
                select rowid from agg_stage_funnel where stage = 'purchase'
                order by period_start, first_touch_channel limit 1
            )
            """
        )

    report = validate_marts(marts_settings, build, None, docs=False)

    [monotonic] = [
        r
        for r in failed(report, "marts_agg_stage_funnel", "unexpected_rows_expectation")
        if "never grows" in r.description
    ]
    assert monotonic.observed == 1
    assert "marts_agg_stage_funnel [agg_stage_funnel]" in message(report)


def test_data_docs_keep_earlier_runs(marts_settings: Settings) -> None:
    first = validate_marts(marts_settings)
    second = validate_marts(marts_settings)

    index = (marts_settings.data_docs_dir / "index.html").read_text()
    assert first.data_docs == second.data_docs == marts_settings.data_docs_dir / "index.html"
    pages = list(
        (marts_settings.data_docs_dir / "validations" / "marts_fct_journeys").rglob("*.html")
    )
    assert len(pages) == 2
    assert all(str(page.relative_to(marts_settings.data_docs_dir)) in index for page in pages)
