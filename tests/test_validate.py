"""The Great Expectations gates, run for real on the generated sample: the events gate on
every landing date, the marts gate on the built database, and each against a corrupted
copy (never the session fixtures' own files) that a critical expectation must stop."""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from math import comb
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cjm_pipeline.ingest import ingest
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
    quarantine_p_value,
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
        "max_quarantine_share",
        "quarantine_significance",
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
        # The sample has no orders export at all: a source the deployment does not
        # deliver is skipped, with neither a failure nor a warning.
        orders = [r for r in report.results if r.batch == "orders"]
        assert orders
        assert {r.suite for r in report.skipped if r.batch == "orders"} == {
            "events_orders",
            "ingest_stats",
        }
        assert all(r.status == "skipped" for r in orders)
        assert all("orders is not delivered" in r.note for r in orders if r.suite == "ingest_stats")
    assert checked == set(SOURCES) - {"orders"}


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
    # The failing row is named by its event_id, never shown by value.
    assert vocabulary.unexpected_count == 1 and vocabulary.observed is None
    assert vocabulary.event_ids == (events["event_id"][0],)
    text = message(report)
    assert "expect_column_values_to_be_in_set on event_type" in text
    assert f"1 unexpected, e.g. event_id {events['event_id'][0]}" in text
    assert "review_posted" not in text


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

    [leak] = failed(
        report, "events_web", "expect_column_values_to_be_in_set", "holds_personal_data"
    )
    assert leak.unexpected_count == 1


def test_a_record_without_identity_must_say_it_is_unattributed(events_settings: Settings) -> None:
    # The sample's busiest day of reviews.
    day, path = max(
        (
            (d, p)
            for d in sample_dates()
            if (
                p := events_settings.events_partition("reviews", d.isoformat()) / "events.parquet"
            ).exists()
        ),
        key=lambda dp: pl.read_parquet(dp[1]).height,
    )
    events = pl.read_parquet(path)
    assert events.height >= 2
    row = pl.int_range(pl.len())
    anonymous = row < 2
    # Two reviews lose every identifier: the first says so, as the adapters write an
    # anonymous reviewer's review; the second does not, as a broken adapter would.
    events.with_columns(
        *(
            pl.when(anonymous).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("email_sha256", "social_handle_sha256", "user_id", "order_id")
        ),
        properties=pl.when(row == 0)
        .then(pl.lit('{"unattributed":true}'))
        .when(row == 1)
        .then(pl.lit('{"language":"en"}'))
        .otherwise("properties"),
    ).write_parquet(path)

    report = validate_events(events_settings, day, ["reviews"], docs=False)

    [unmarked] = failed(
        report, "events_reviews", "expect_column_values_to_match_regex", "properties"
    )
    assert unmarked.unexpected_count == 1
    assert unmarked.event_ids == (events["event_id"][1],)
    assert "identity: required" in message(report)


def binomial_tail(quarantined: int, read: int, limit: Fraction) -> float:
    """P(X >= quarantined) for X ~ Binomial(read, limit), exactly: one minus the chance
    of fewer, in integers (the fewer terms of the two)."""
    p, q = limit.numerator, limit.denominator - limit.numerator
    fewer = sum(comb(read, i) * p**i * q ** (read - i) for i in range(min(quarantined, read + 1)))
    return float(Fraction(limit.denominator**read - fewer, limit.denominator**read))


@pytest.mark.parametrize(
    ("quarantined", "read", "critical"),
    [
        (9, 364, False),  # the day the issue found: 2.47%, a warning only
        (30, 364, True),
        (250, 10_000, True),  # 2.5% of a big day is no longer chance
        (0, 0, False),
        (3, 6, True),
        (1, 6, False),  # one bad line of six is 17%, and still chance
    ],
)
def test_the_quarantine_bound_is_a_one_sided_binomial_test(
    quarantined: int, read: int, critical: bool
) -> None:
    expected = binomial_tail(quarantined, read, Fraction(1, 50))
    p_value = quarantine_p_value(quarantined, read, 0.02)
    assert p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert (p_value < 0.001) is critical


def set_quarantined(settings: Settings, source: str, day: str, quarantined: int) -> dict:
    """Rewrite a manifest so that the day quarantined this many more records (and still
    reconciles: read = accepted + quarantined + duplicates)."""
    path = settings.manifest_path(source, day)
    manifest = json.loads(path.read_text())
    manifest["quarantined"] = quarantined
    manifest["read"] = manifest["accepted"] + manifest["duplicates"] + quarantined
    path.write_text(json.dumps(manifest))
    return manifest


def test_a_quarantine_share_significantly_above_the_limit_fails(
    events_settings: Settings,
) -> None:
    accepted = json.loads(events_settings.manifest_path("web", DAY_ISO).read_text())["accepted"]
    # Twice the limit's share of the day: far beyond chance for a day this size.
    manifest = set_quarantined(events_settings, "web", DAY_ISO, accepted // 25)
    read, quarantined = manifest["read"], manifest["quarantined"]
    expected = binomial_tail(quarantined, read, Fraction(1, 50))
    assert expected < events_settings.quarantine_significance

    report = validate_events(events_settings, DAY, ["web"], docs=False)

    [bound] = failed(report, "ingest_stats", "expect_column_values_to_be_between")
    assert bound.column == "quarantine_p_value"
    assert bound.observed[0] == pytest.approx(expected, rel=1e-9)
    text = message(report)
    assert "ingest_stats [web]" in text
    assert f"{DAY_ISO}: {quarantined:,} of {read:,} web records quarantined" in text
    assert f"({quarantined / read:.2%}), p-value {expected:.2g}" in text
    assert "CJM_MAX_QUARANTINE_SHARE=0.02" in text
    assert "CJM_QUARANTINE_SIGNIFICANCE=0.001" in text


def test_a_quarantine_share_above_the_limit_by_chance_is_a_warning(
    events_settings: Settings,
) -> None:
    accepted = json.loads(events_settings.manifest_path("web", DAY_ISO).read_text())["accepted"]
    # Just over the limit's share (about 2.2%): within what chance gives a day this size.
    manifest = set_quarantined(events_settings, "web", DAY_ISO, accepted * 22 // 1000)
    read, quarantined = manifest["read"], manifest["quarantined"]
    assert quarantined / read > events_settings.max_quarantine_share
    assert binomial_tail(quarantined, read, Fraction(1, 50)) > 0.001

    report = validate_events(events_settings, DAY, ["web"], docs=False)

    assert report.success, "\n".join(map(str, report.critical_failures))
    [warning] = [w for w in report.warnings if w.column == "quarantine_share"]
    assert warning.observed == [pytest.approx(quarantined / read)]
    assert f"{quarantined:,} of {read:,} web records quarantined" in str(warning)


# Personal data planted where ingestion would never let it through (the Parquet is written
# directly): no gate output may repeat it. The local parts are what the scan looks for.
CANARY_PARTS = ("pii.canary", "pii_canary")
EVENT_CANARIES = {
    "text": "write to pii.canary.1@probe.example or @pii_canary_2",
    "url": "https://shop.example/account?email=pii.canary.3@probe.example",
    "native_id": "pii.canary.4@probe.example",
    "properties": '{"note": "ask @pii_canary_5"}',
    "email_sha256": "pii.canary.6@probe.example",  # an address where a hash belongs
    "event_type": "pii.canary.7@probe.example",  # a value of no vocabulary
    "user_id": "@pii_canary_8",
    "anonymous_id": "pii.canary.9@probe.example",
}


def leaks(folder: Path, *captured: str) -> list[str]:
    """Every file under ``folder`` and every captured output holding a canary."""
    found = [
        str(path)
        for path in folder.rglob("*")
        if path.is_file() and any(p.encode() in path.read_bytes().lower() for p in CANARY_PARTS)
    ]
    found += [
        f"output {i}" for i, text in enumerate(captured) if any(p in text for p in CANARY_PARTS)
    ]
    return found


def test_no_planted_address_or_handle_reaches_any_events_gate_output(
    events_settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    from cjm_pipeline.nightly import GateError, check_events

    path = events_settings.events_partition("web", DAY_ISO) / "events.parquet"
    planted = pl.int_range(pl.len()) < 3
    events = pl.read_parquet(path).with_columns(
        pl.when(planted).then(pl.lit(value)).otherwise(column).alias(column)
        for column, value in EVENT_CANARIES.items()
    )
    events.write_parquet(path)
    assert events.filter(pl.col("text").str.contains("pii.canary", literal=True)).height == 3

    with pytest.raises(GateError) as raised:
        check_events(events_settings, [DAY], progress=print)
    print(f"error: {raised.value}", file=sys.stderr)  # as the command line reports it
    out, err = capfd.readouterr()

    text = str(raised.value)
    assert "events_web [web] expect_column_values_to_be_in_set on holds_personal_data" in text
    # Every place the gate writes was written, and none holds a canary.
    validations = events_settings.validations_dir
    assert (validations / "data_docs" / "index.html").exists()
    assert list((validations / "gx_results" / "events_web").rglob("*.json"))
    assert list((validations / "data_docs" / "validations" / "events_web").rglob("*.html"))
    assert leaks(validations, out, err, text) == []
    saved = json.loads((events_settings.validations_dir / DAY_ISO / "events-web.json").read_text())
    [check] = [
        r
        for r in saved["results"]
        if r["column"] == "holds_personal_data" and r["status"] == "failed"
    ]
    assert check["severity"] == "critical" and check["unexpected_count"] == 3
    # The failing rows are named by their event_id, a hash.
    assert check["event_ids"] == events["event_id"][:3].to_list()
    assert f"e.g. event_id {events['event_id'][0]}" in text
    # One line as GX loads, one per source, one for the Data Docs, then the summary.
    progress = [line for line in out.splitlines() if line.startswith("events gate:")]
    assert progress[0] == "events gate: loading Great Expectations"
    sources = len(SOURCES)
    assert [line.split(":")[1].strip() for line in progress[1 : 1 + sources]] == list(SOURCES)
    assert progress[1 + sources].startswith("events gate: Data Docs updated in")


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


def test_marts_gate_passes_without_a_served_database(marts_settings: Settings, open_page) -> None:
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

    # The site opens offline: every script, style, font and image from its own folder
    # (a request anywhere else is refused and recorded), styled, with the index of
    # validations drawn by bootstrap-table and a result page drawn too.
    site = report.data_docs.parent
    pages = [report.data_docs, next((site / "validations").rglob("*.html"))]
    for page_path in pages:
        opened = open_page(page_path, files_under=site, ready="body")
        page = opened.page
        page.wait_for_load_state("load")
        assert opened.requests == [], opened.requests
        assert opened.errors == [], opened.errors
        assert page.evaluate("typeof window.jQuery") == "function"
        # Bootstrap's stylesheet is applied (its body font, not the browser's serif).
        assert "system-ui" in page.evaluate("getComputedStyle(document.body).fontFamily") or (
            "apple-system" in page.evaluate("getComputedStyle(document.body).fontFamily")
        )
        # Font Awesome's solid font loaded from the site.
        assert page.evaluate("document.fonts.check('900 16px \"Font Awesome 6 Free\"')")
    index = open_page(report.data_docs, files_under=site, ready=".bootstrap-table").page
    results = index.locator(".bootstrap-table").first
    # The first page of results: ten rows, each a marts suite of this run.
    rows = results.locator("tbody tr")
    assert rows.count() == 10
    assert all("marts_" in rows.nth(i).inner_text() for i in range(10))


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


def test_no_planted_address_or_handle_reaches_any_marts_gate_output(
    marts_settings: Settings, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    build = copy_database(marts_settings.build_path, tmp_path / "build" / "cjm.duckdb")
    with duckdb.connect(str(build)) as con:
        con.execute(
            "update fct_journeys set status = 'pii.canary.1@probe.example' "
            "where journey_id = (select min(journey_id) from fct_journeys)"
        )
        con.execute(
            "update dim_touchpoints set touchpoint_id = 'campaign @pii_canary_2' "
            "where rowid in (select rowid from dim_touchpoints limit 2)"
        )

    report = validate_marts(marts_settings, build, None, progress=print)
    text = message(report)
    print(f"error: {text}", file=sys.stderr)
    out, err = capfd.readouterr()

    validations = marts_settings.validations_dir
    assert list((validations / "gx_results" / "marts_fct_journeys").rglob("*.json"))
    assert list((validations / "data_docs" / "validations" / "marts_fct_journeys").rglob("*.html"))
    assert leaks(validations, out, err, text) == []
    [status] = failed(report, "marts_fct_journeys", "expect_column_values_to_be_in_set", "status")
    [key] = failed(report, "marts_dim_touchpoints", "expect_column_values_to_be_unique")
    # Counted, never shown.
    assert (status.unexpected_count, status.observed) == (1, None)
    assert (key.unexpected_count, key.observed) == (2, None)
    # One line as GX loads, one per five marts, one for the Data Docs.
    progress = [line for line in out.splitlines() if line.startswith("marts gate:")]
    assert progress[0] == "marts gate: loading Great Expectations"
    done = [line.split(" marts validated")[0] for line in progress[1:-1]]
    groups = [*range(5, len(MARTS), 5), len(MARTS)]
    assert done == [f"marts gate: {n} of {len(MARTS)}" for n in groups]
    assert progress[-1].startswith("marts gate: Data Docs updated in")


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


def test_a_long_hostile_value_costs_the_gate_its_length(events_settings: Settings) -> None:
    """Python's re takes quadratic time on values like this one (190 s at 160,000
    characters); the gate's check runs in Polars, linear in the value."""
    path = events_settings.events_partition("web", DAY_ISO) / "events.parquet"
    hostile = "a@" + "b-" * 400_000
    pl.read_parquet(path).with_columns(
        text=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(hostile)).otherwise("text")
    ).write_parquet(path)

    began = time.perf_counter()
    report = validate_events(events_settings, DAY, ["web"], docs=False)
    seconds = time.perf_counter() - began

    # It reads as an address (a@b-b-...), so the check finds it; what matters is the time.
    failed = [(r.suite, r.column) for r in report.critical_failures]
    assert failed == [("events_web", "holds_personal_data")], report.summary()
    assert seconds < 60, f"the events gate took {seconds:.0f} s on one 800,000-character value"


def test_a_wired_source_that_never_landed_a_date_still_warns(events_settings: Settings) -> None:
    # The sample has no orders: with a landing folder of its own, orders is a feed that
    # missed its date, not a source this deployment does not deliver.
    (events_settings.landing_dir / "orders").mkdir(parents=True)
    ingest(events_settings, [DAY], ["orders"], progress=lambda _: None)
    report = validate_events(events_settings, DAY, ["orders"], docs=False)
    assert report.success
    [warning] = report.warnings
    assert (warning.suite, warning.column) == ("ingest_stats", "status")
