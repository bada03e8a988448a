"""The dbt journey models, end to end on generated data, scored against the
generator's ground truth and against sessions computed here, independently of the
models (Polars over the lake, grouped by the true customer)."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

from cjm_pipeline.build import build, dbt_work_dir, summary
from cjm_pipeline.ingest import ingest
from cjm_pipeline.settings import PROJECT_ROOT, Settings
from tests.conftest import MARTS, query, quiet, sample_dates

COMPANY_EVENTS = [
    "email_processed",
    "email_delivered",
    "email_deferred",
    "email_bounced",
    "email_dropped",
]


@pytest.fixture(scope="session")
def scored(built: Settings, truth: pl.DataFrame) -> pl.DataFrame:
    """Every good record of the truth next to the event the models made of it."""
    good = truth.filter(pl.col("status") == "ok").with_columns(
        event_id=pl.concat_str("source", pl.lit(":"), "native_id").map_elements(
            _event_id, return_dtype=pl.String
        )
    )
    events = query(
        built,
        "select event_id, customer_id, session_id, journey_id, stage, touchpoint_id, "
        "event_type, is_activity, occurred_at from fct_journey_events",
    )
    return good.join(events, on="event_id", how="left", suffix="_model")


def _event_id(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:32]


def test_every_good_event_lands_in_the_marts_once(built, scored) -> None:
    assert scored["customer_id"].null_count() == 0
    total = query(
        built, "select count(*) as n, count(distinct event_id) as d from fct_journey_events"
    )
    assert total["n"][0] == total["d"][0] == scored.height


def test_identity_precision_and_recall_against_truth(scored) -> None:
    """Pairwise: of the event pairs put in one customer, the share truly one customer
    (precision), and of the pairs truly one customer, the share put together (recall)."""

    def pairs(frame: pl.DataFrame, by: list[str]) -> int:
        sizes = frame.group_by(by).len()["len"].cast(pl.Int64)
        return int((sizes * (sizes - 1) // 2).sum())

    together = pairs(scored, ["customer_id", "customer_key"])
    precision = together / pairs(scored, ["customer_id"])
    recall = together / pairs(scored, ["customer_key"])
    assert precision >= 0.99, precision
    assert recall >= 0.99, recall


def test_stage_assignment_against_truth(scored) -> None:
    accuracy = (scored["stage"] == scored["stage_model"]).mean()
    assert accuracy >= 0.99, accuracy
    unclassified = scored.filter(pl.col("stage_model") == "unclassified")
    assert set(unclassified["event_type"].unique()) == {"identify"}


def _expected_sessions(events: pl.DataFrame, gap_minutes: int, cap_hours: int) -> pl.DataFrame:
    """Sessions per true customer, the plain way: sort, split on gaps, cut long runs."""
    activity = events.filter(~pl.col("event_type").is_in(COMPANY_EVENTS)).sort(
        "customer_key", "occurred_at", "event_id"
    )
    gap = pl.col("occurred_at").diff().over("customer_key")
    blocks = activity.with_columns(
        block=(gap.is_null() | (gap > timedelta(minutes=gap_minutes)))
        .cum_sum()
        .over("customer_key")
    )
    pieces = blocks.with_columns(
        piece=(
            (
                pl.col("occurred_at") - pl.col("occurred_at").min().over("customer_key", "block")
            ).dt.total_seconds()
            // (cap_hours * 3600)
        )
    )
    return pieces.group_by("customer_key").agg(
        sessions=pl.struct("block", "piece").n_unique(), events=pl.len()
    )


def test_session_counts_match_an_independent_sessionization(built, sample, scored) -> None:
    """For customers the identity step resolved exactly (one customer id holding
    all of their events and nobody else's), the models' sessions equal sessions
    computed here from the lake's event times."""
    resolved = (
        scored.group_by("customer_key")
        .agg(pl.col("customer_id").n_unique().alias("ids"), pl.col("customer_id").first())
        .filter(pl.col("ids") == 1)
        .join(
            scored.group_by("customer_id").agg(pl.col("customer_key").n_unique().alias("keys")),
            on="customer_id",
        )
        .filter(pl.col("keys") == 1)
    )
    assert resolved.height >= 300
    lake = pl.read_parquet(
        sample.lake_dir / "events" / "*" / "*" / "*.parquet", hive_partitioning=False
    ).select("event_id", "event_type", "occurred_at")
    events = scored.select("event_id", "customer_key").join(lake, on="event_id")
    expected = _expected_sessions(events, built.session_gap_minutes, built.session_cap_hours)
    actual = query(
        built, "select customer_id, count(*) as model_sessions from fct_sessions group by all"
    )
    compared = (
        resolved.join(expected, on="customer_key")
        .join(actual, on="customer_id", how="left")
        .with_columns(pl.col("model_sessions").fill_null(0))
    )
    wrong = compared.filter(pl.col("sessions") != pl.col("model_sessions"))
    assert wrong.is_empty(), wrong.head()
    assert compared["sessions"].sum() > 1000


def _customer_of(scored: pl.DataFrame, key: str) -> pl.DataFrame:
    return scored.filter(pl.col("customer_key") == key)


def test_late_event_joins_the_session_it_belongs_to(scored, truth) -> None:
    late = truth.filter(
        (pl.col("customer_key") == "edge_late_arrival_4d") & (pl.col("late_days") == 4)
    )
    assert late.height == 1
    events = _customer_of(scored, "edge_late_arrival_4d").filter(pl.col("source") == "web")
    late_event = events.filter(pl.col("native_id").is_in(late["native_id"].implode()))
    assert late_event["session_id"].null_count() == 0
    assert events["session_id"].n_unique() == 1
    assert events.height >= 4


def test_duplicate_order_counts_once(built, scored) -> None:
    events = _customer_of(scored, "edge_duplicate_event")
    assert events["customer_id"].n_unique() == 1
    customer = events["customer_id"][0]
    orders = query(
        built,
        f"select sum(orders) as orders from fct_journeys where customer_id = '{customer}'",
    )
    assert orders["orders"][0] == 1


def test_id_switch_mid_session_keeps_one_customer_and_session(scored) -> None:
    events = _customer_of(scored, "edge_id_switch_mid_session").filter(pl.col("source") == "web")
    assert events["customer_id"].n_unique() == 1
    assert events["session_id"].n_unique() == 1
    assert events.height >= 5


def test_bot_endless_session_is_cut_at_the_cap(built, scored) -> None:
    events = _customer_of(scored, "edge_bot_endless_session")
    assert events["customer_id"].n_unique() == 1
    sessions = query(
        built,
        "select duration_seconds, event_count from fct_sessions "
        f"where customer_id = '{events['customer_id'][0]}'",
    )
    # 48 hours of page views every 20 s: four pieces of 12 hours.
    assert sessions.height == 4
    assert sessions["duration_seconds"].max() < built.session_cap_hours * 3600
    assert sessions["event_count"].sum() == events.height


def test_customer_seen_only_through_reviews(built, scored) -> None:
    events = _customer_of(scored, "edge_reviews_only")
    assert events.height == 1
    assert events["touchpoint_id"][0] == "review_site"
    customer = query(
        built, f"select * from dim_customers where customer_id = '{events['customer_id'][0]}'"
    )
    assert customer["emails"][0] == 1
    assert customer["identifiers"][0] == 1
    journey = query(
        built, f"select * from fct_journeys where customer_id = '{events['customer_id'][0]}'"
    )
    # A review without an order in the journey does not make it a post-purchase journey.
    assert journey["status"].to_list() != ["converted"]
    assert journey["furthest_stage_order"].to_list() == [0]


def test_funnel_totals_agree_with_the_journeys(built) -> None:
    funnel = query(
        built,
        "select stage, sum(journeys_entered) as entered, sum(journeys_dropped) as dropped "
        "from agg_stage_funnel group by stage",
    )
    journeys = query(
        built,
        "select count(*) filter (where furthest_stage_order >= 1) as n, "
        "count(*) filter (where furthest_stage_order >= 2) as considered, "
        "count(*) filter (where status = 'dropped' and furthest_stage = 'consideration') "
        "as dropped_considering from fct_journeys where population in ('known', 'anonymous')",
    )
    by_stage = dict(zip(funnel["stage"], funnel["entered"], strict=True))
    assert by_stage["discovery"] == journeys["n"][0]
    assert by_stage["consideration"] == journeys["considered"][0]
    dropped = dict(zip(funnel["stage"], funnel["dropped"], strict=True))
    assert dropped["consideration"] == journeys["dropped_considering"][0] > 0


def test_summary_names_customers_journeys_and_the_funnel(built) -> None:
    text = summary(built.build_path)
    assert "customers" in text and "journeys" in text
    for stage in ("discovery", "consideration", "purchase", "experience", "loyalty"):
        assert stage in text
    with duckdb.connect(str(built.build_path), read_only=True) as con:
        populations = dict(
            con.sql("select population, count(*) from fct_journeys group by 1").fetchall()
        )
        funnel = con.sql(
            "select count(*) from fct_journeys where population in ('known', 'anonymous')"
        ).fetchall()[0][0]
    expected = ", ".join(
        f"{name.replace('_', ' ')} {populations.get(name, 0):,}"
        for name in ("known", "anonymous", "unlinked_voice", "unclassified")
    )
    assert f"journeys {sum(populations.values()):,}: {expected}" in text
    assert f"funnel journeys (anonymous, known) {funnel:,}: converted" in text


def _tables(path: Path) -> dict[str, pl.DataFrame]:
    """The marts' contents, without build numbers (bookkeeping that differs between a
    full refresh and a run of nights by construction)."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {name: con.sql(f"select * from {name}").pl() for name in MARTS}
    return {name: df.drop("build_id", strict=False).sort(pl.all()) for name, df in tables.items()}


def test_full_refresh_equals_seven_incremental_nights(sample, tmp_path) -> None:
    """Landing day by day: ingest, then an incremental build. Seven builds cover the
    last eight days (one night is skipped, so the next widens its window) and the last
    night is run twice. A full refresh over the same days gives identical marts. A
    two-day journey gap makes journeys end, drop and merge within the sample; a
    one-day lookback makes the night after the skipped one widen its window."""
    data = tmp_path / "data"
    shutil.copytree(sample.landing_dir, data / "landing")
    nightly = Settings(
        data_dir=data,
        salt="test-salt",
        build_path=tmp_path / "nightly" / "cjm.duckdb",
        journey_gap_days=2,
        build_lookback_days=1,
    )
    dates = sample_dates()
    first_nights, last_eight = dates[:-8], dates[-8:]
    ingest(nightly, first_nights, progress=quiet)
    build(nightly, first_nights[-1], progress=quiet, tests=False)
    customer_ids = [set(_tables(nightly.build_path)["dim_customers"]["customer_id"])]
    skipped = last_eight[2]
    for day in last_eight:
        ingest(nightly, [day], progress=quiet)
        if day == skipped:
            continue
        result = build(nightly, day, progress=quiet, tests=False)
        assert not result.plan.full_refresh
        if day == skipped + timedelta(days=1):
            assert result.plan.lookback_days > nightly.build_lookback_days
        customer_ids.append(set(_tables(nightly.build_path)["dim_customers"]["customer_id"]))
    rerun = build(nightly, dates[-1], progress=quiet, tests=False)
    assert not rerun.plan.full_refresh
    refreshed = nightly.model_copy(update={"build_path": tmp_path / "full" / "cjm.duckdb"})
    build(refreshed, dates[-1], full_refresh=True, progress=quiet, tests=False)

    incremental, full = _tables(nightly.build_path), _tables(refreshed.build_path)
    for name in MARTS:
        # The sample's weeks are too few to hold two settled periods: no alert rows.
        assert incremental[name].height > 0 or name == "agg_dropoff_alerts", name
        assert incremental[name].equals(full[name]), name
    statuses = set(full["fct_journeys"]["status"])
    assert {"converted", "dropped", "in_progress"} <= statuses
    # Some customer ids disappeared on the way: later events merged them into others.
    merged_away = set.union(*customer_ids[:-1]) - customer_ids[-1]
    assert merged_away
    # dbt parsed the project for the first build only: the nights changed no --vars
    # (their own values travel in CJM_NIGHT), so each kept the parse.
    log = "".join(path.read_text() for path in (dbt_work_dir(nightly) / "logs").glob("dbt.log*"))
    assert log.count("Unable to do partial parsing") == 1
    assert log.count("Partial parsing enabled, no changes found, skipping parsing") == 8


def test_every_column_has_a_type_even_in_an_empty_table(built) -> None:
    # The 12-day sample has no pair of settled weeks, so agg_dropoff_alerts is empty: its
    # columns must still be DATE, BIGINT, ... and not DuckDB's NULL type, which a BI tool
    # cannot filter or chart.
    with duckdb.connect(str(built.build_path), read_only=True) as con:
        untyped = con.execute(
            "select table_name, column_name from information_schema.columns "
            "where data_type like '%NULL%'"
        ).fetchall()
        alerts = con.execute("select count(*) from agg_dropoff_alerts").fetchall()[0][0]
        kinds = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = 'agg_dropoff_alerts'"
            ).fetchall()
        )
    assert untyped == []
    assert alerts == 0
    assert (kinds["period_start"], kinds["journeys_known"], kinds["p_value"]) == (
        "DATE",
        "BIGINT",
        "DOUBLE",
    )


def test_the_full_build_ran_every_dbt_unit_test_and_they_passed(built_nodes) -> None:
    """The suite's one run of the dbt unit tests (a night leaves them out): every unit
    test the models' YAML declares ran, and passed, beside the data tests."""
    _, statuses = built_nodes
    declared = {
        f"{unit['model']}.{unit['name']}"
        for path in (PROJECT_ROOT / "models").rglob("*.yml")
        for unit in (yaml.safe_load(path.read_text()) or {}).get("unit_tests", [])
    }
    ran = {
        node.removeprefix("unit_test.cjm."): status
        for node, status in statuses.items()
        if node.startswith("unit_test.")
    }
    assert len(declared) >= 19
    assert ran == dict.fromkeys(declared, "pass")
    kinds = Counter(node.split(".")[0] for node in statuses)
    assert kinds["test"] > 100 and set(kinds) == {"model", "seed", "test", "unit_test"}
