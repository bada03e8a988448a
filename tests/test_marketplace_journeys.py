"""A marketplace as a new user would bring it: orders and reviews only, one `cjm run`
over five months, and the journeys held against the generator's truth.

Every expected value is worked out here from the truth files and the rules as the
README states them, never from the marts:
- a customer's orders form journeys split where more than 30 days pass between
  orders (reviews, deliveries and returns name their order and join its journey);
- every journey with an order converted: none is dropped before or at purchase;
- after a journey's first order it is retained when the customer orders again or
  writes a review that recommends within 90 days, lapsed when the 90 days ended
  before the run date's end without one, in window otherwise;
- a review belongs to the journey of the order it names, however late it came; a
  review whose order record was rejected has nobody to link to: an unlinked voice;
- languages without a scorer are counted as not scored, never neutral.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cjm_pipeline.build import build
from cjm_pipeline.generate import generate
from cjm_pipeline.report import report_data
from cjm_pipeline.settings import MARTS, Settings

START = date(2026, 3, 1)
DAYS = 150
LAST = START + timedelta(days=DAYS - 1)
RUN_END = datetime(LAST.year, LAST.month, LAST.day) + timedelta(days=1)
JOURNEY_GAP = timedelta(days=30)
RETURN_WINDOW = timedelta(days=90)
CJM = Path(sys.executable).with_name("cjm")
# Languages the marketplace writes that no offline scorer reads (see the README).
UNSCORED = {"it", "nl"}


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("marketplace_journeys")
    generate(root / "data", 1500, START, DAYS, 5, progress=lambda _: None, profile="marketplace")
    env = {
        **os.environ,
        "CJM_DATA_DIR": str(root / "data"),
        "CJM_WAREHOUSE_PATH": str(root / "warehouse" / "cjm.duckdb"),
        "CJM_BUILD_PATH": str(root / "warehouse" / "build" / "cjm.duckdb"),
        "CJM_SALT": "market-salt",
    }
    # The history first, then the last ten landing dates as one incremental night:
    # late reviews, deliveries and returns of orders already built land in it.
    split = LAST - timedelta(days=10)
    for first, last in ((START, split), (split + timedelta(days=1), LAST)):
        done = subprocess.run(
            [str(CJM), "run", "--start", first.isoformat(), "--end", last.isoformat()],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return root


def _marts(path: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {name: con.sql(f"select * from {name}").pl() for name in MARTS}
    return {name: df.drop("build_id", strict=False).sort(pl.all()) for name, df in tables.items()}


def test_the_incremental_night_equals_a_full_refresh(market: Path, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=market / "data",
        salt="market-salt",
        warehouse_path=market / "warehouse" / "cjm.duckdb",
        build_path=tmp_path / "full" / "cjm.duckdb",
    )
    build(settings, LAST, full_refresh=True, progress=lambda _: None, tests=False)
    nightly, full = _marts(market / "warehouse" / "cjm.duckdb"), _marts(settings.build_path)
    for name in MARTS:
        assert nightly[name].equals(full[name]), name


def test_a_night_runs_the_data_tests_and_leaves_the_unit_tests_to_ci(market: Path) -> None:
    results = json.loads(
        (market / "warehouse" / "build" / "dbt" / "target" / "run_results.json").read_text()
    )
    kinds = Counter(node["unique_id"].split(".")[0] for node in results["results"])
    assert kinds["model"] > 40 and kinds["test"] > 100
    assert kinds["unit_test"] == 0


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)


@pytest.fixture(scope="module")
def truth(market: Path) -> dict:
    """The orders and reviews the truth calls well formed, with the journeys, outcomes
    and review placements the rules give them."""
    folder = market / "data" / "truth"
    records = pl.read_parquet(folder / "records" / "*.parquet")
    ok = {
        (s, n)
        for s, n in records.filter(pl.col("status") == "ok").select("source", "native_id").rows()
    }
    orders = [
        o
        for o in pl.read_parquet(folder / "orders.parquet").to_dicts()
        if ("orders", o["order_id"]) in ok
    ]
    reviews = [
        r
        for r in pl.read_parquet(folder / "reviews.parquet").to_dicts()
        if ("reviews", r["review_id"]) in ok
    ]
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for order in orders:
        by_customer[order["customer_id"]].append(order)
    journey_of: dict[str, int] = {}  # order id -> journey index
    journeys: list[dict] = []
    for customer, placed in by_customer.items():
        placed.sort(key=lambda o: o["purchased_at"])
        last = None
        for order in placed:
            at = _naive(order["purchased_at"])
            if last is None or at - last > JOURNEY_GAP:
                journeys.append({"customer": customer, "first_order_at": at, "orders": []})
            journeys[-1]["orders"].append(order["order_id"])
            journey_of[order["order_id"]] = len(journeys) - 1
            last = at
    customer_of = {o["order_id"]: o["customer_id"] for o in orders}
    signals: dict[str, list[datetime]] = defaultdict(list)
    for order in orders:
        signals[order["customer_id"]].append(_naive(order["purchased_at"]))
    for review in reviews:
        if review["recommended"] and review["order_id"] in customer_of:
            signals[customer_of[review["order_id"]]].append(_naive(review["created_at"]))
    for journey in journeys:
        start = journey["first_order_at"]
        ends = start + RETURN_WINDOW
        if any(start < t <= ends for t in signals[journey["customer"]]):
            journey["outcome"] = "retained"
        elif ends < RUN_END:
            journey["outcome"] = "lapsed"
        else:
            journey["outcome"] = "in_window"
    return {
        "orders": orders,
        "reviews": reviews,
        "journeys": journeys,
        "journey_of": journey_of,
        "customer_of": customer_of,
    }


@pytest.fixture(scope="module")
def served(market: Path):
    with duckdb.connect(str(market / "warehouse" / "cjm.duckdb"), read_only=True) as con:
        yield con


def _order_journeys(served) -> dict[str, str]:
    rows = served.sql(
        "select order_id, journey_id from fct_journey_events where event_type = 'order_completed'"
    ).fetchall()
    return dict(rows)


def test_the_sample_holds_what_the_rules_are_about(truth) -> None:
    outcomes = {j["outcome"] for j in truth["journeys"]}
    assert outcomes == {"retained", "lapsed", "in_window"}
    assert sum(len(j["orders"]) > 1 for j in truth["journeys"]) > 0
    purchased = {o["order_id"]: _naive(o["purchased_at"]) for o in truth["orders"]}
    late = [
        r
        for r in truth["reviews"]
        if r["order_id"] in purchased
        and _naive(r["created_at"]) - purchased[r["order_id"]] > JOURNEY_GAP
    ]
    assert late, "no review written more than 30 days after its order"
    assert any(r["recommended"] for r in truth["reviews"])


def test_each_order_is_one_order_event_and_orders_group_into_journeys_by_the_gap(
    truth, served
) -> None:
    counts = dict(
        served.sql(
            "select order_id, count(*) from fct_journey_events "
            "where event_type = 'order_completed' group by order_id"
        ).fetchall()
    )
    assert counts == {o["order_id"]: 1 for o in truth["orders"]}
    found = _order_journeys(served)
    expected_groups = sorted(sorted(j["orders"]) for j in truth["journeys"])
    groups: dict[str, list[str]] = defaultdict(list)
    for order_id, journey_id in found.items():
        groups[journey_id].append(order_id)
    assert sorted(sorted(g) for g in groups.values()) == expected_groups


def test_no_journey_with_an_order_is_dropped_and_each_has_its_post_purchase_outcome(
    truth, served
) -> None:
    found = _order_journeys(served)
    expected = {found[j["orders"][0]]: j["outcome"] for j in truth["journeys"]}
    rows = served.sql(
        "select journey_id, status, post_purchase_outcome from fct_journeys "
        "where status = 'converted'"
    ).fetchall()
    assert {r[0] for r in rows} == set(expected)
    assert {r[0]: r[2] for r in rows} == expected
    dropped = served.sql(
        "select count(*) from fct_journeys f join fct_journey_events e using (journey_id) "
        "where e.event_type = 'order_completed' and f.status <> 'converted'"
    ).fetchall()
    assert dropped == [(0,)]


def test_the_funnel_counts_orders_retained_and_lapsed(truth, served) -> None:
    rows = served.sql(
        "select stage, sum(journeys_entered), sum(journeys_advanced), sum(journeys_dropped), "
        "sum(journeys_in_progress) from agg_stage_funnel "
        "where stage in ('purchase', 'experience') group by stage"
    ).fetchall()
    funnel = {r[0]: r[1:] for r in rows}
    outcomes = [j["outcome"] for j in truth["journeys"]]
    n = len(outcomes)
    assert funnel["purchase"] == (n, n, 0, 0)
    assert funnel["experience"] == (
        n,
        outcomes.count("retained"),
        outcomes.count("lapsed"),
        outcomes.count("in_window"),
    )


def test_every_review_sits_in_its_orders_journey_whatever_its_delay(truth, served) -> None:
    found = _order_journeys(served)
    placed = dict(
        served.sql(
            "select order_id, journey_id from fct_journey_events where event_type = 'review_posted'"
        ).fetchall()
    )
    linked = [r for r in truth["reviews"] if r["order_id"] in truth["customer_of"]]
    assert {r["order_id"]: placed.get(r["order_id"]) for r in linked} == {
        r["order_id"]: found[r["order_id"]] for r in linked
    }
    # A review of an order whose record was rejected names nobody the pipeline knows.
    orphans = {r["order_id"] for r in truth["reviews"]} - set(truth["customer_of"])
    populations = dict(
        served.sql(
            "select e.order_id, f.population from fct_journey_events e "
            "join fct_journeys f using (journey_id) where e.event_type = 'review_posted'"
        ).fetchall()
    )
    assert {o: populations[o] for o in orphans} == dict.fromkeys(orphans, "unlinked_voice")
    counts = dict(served.sql("select population, count(*) from fct_journeys group by 1").fetchall())
    assert counts == {
        "known": len(truth["journeys"]),
        **({"unlinked_voice": len(orphans)} if orphans else {}),
    }


def test_voice_in_languages_without_a_scorer_is_counted_not_scored(truth, served) -> None:
    rows = served.sql(
        "select language, sum(texts), sum(texts_scored) from agg_text_languages group by 1"
    ).fetchall()
    by_language = {r[0]: (r[1], r[2]) for r in rows}
    assert sum(t for t, _ in by_language.values()) == sum(r["has_text"] for r in truth["reviews"])
    for language in UNSCORED:
        texts, scored = by_language.get(language, (0, 0))
        assert scored == 0, (language, texts, scored)
    written = defaultdict(int)
    for review in truth["reviews"]:
        if review["has_text"]:
            written[review["language"]] += 1
    # Undeclared languages are detected: short texts may miss, most must land right.
    for language in ("pt", "es", "en", "fr", "de"):
        texts, scored = by_language.get(language, (0, 0))
        assert scored == texts
        assert texts >= 0.8 * written[language], (language, texts, written[language])


def test_the_map_reads_after_the_order_as_lapsed_and_unknown_until_the_window_passes(
    market: Path, truth
) -> None:
    settings = Settings(
        data_dir=market / "data",
        salt="market-salt",
        warehouse_path=market / "warehouse" / "cjm.duckdb",
    )
    data = report_data(settings)
    assert data["return_window_days"] == RETURN_WINDOW.days
    view = data["views"]["all"]
    outcomes = [j["outcome"] for j in truth["journeys"]]
    assert (view["retained"], view["lapsed"]) == (
        outcomes.count("retained"),
        outcomes.count("lapsed"),
    )
    experience = [r for r in view["dropoff_over_time"] if r["stage"] == "experience"]
    lapses_from = (LAST - RETURN_WINDOW).isoformat()
    # No journey of a period younger than the window can have lapsed: no rate, not 0%.
    young = [r for r in experience if r["period_start"] > lapses_from]
    old = [r for r in experience if r["period_start"] <= lapses_from]
    assert young and old
    assert all(r["drop_off_rate"] is None for r in young)
    assert any(r["drop_off_rate"] for r in old)
    after = [o for o in view["opportunities"] if o["stage"] == "experience"]
    assert after and all("buyers lapsed after" in o["text"] for o in after)
    assert all("keep them going" not in o["text"] for o in after)


def test_each_scored_language_reads_good_reviews_above_bad_ones(served) -> None:
    """The ratings are an independent reading of the same reviews: in every language
    with a scorer, texts rated 4 or 5 average above texts rated 1 or 2."""
    rows = served.sql(
        "select s.language, e.rating >= 4 as good, avg(s.sentiment_score), count(*) "
        "from intermediate.int_text_sentiment s join fct_journey_events e using (event_id) "
        "where s.scorer is not null and e.rating <> 3 group by all"
    ).fetchall()
    means = {(language, good): (mean, n) for language, good, mean, n in rows}
    for language in ("pt", "es", "en", "fr", "de"):
        (good, n_good), (bad, n_bad) = means[(language, True)], means[(language, False)]
        assert n_good >= 5 and n_bad >= 3, (language, n_good, n_bad)
        assert good > bad + 0.2, (language, good, bad)


def test_the_planted_reasons_for_lapsing_are_found(truth, served) -> None:
    """The generator makes buyers of a late order rate it lower, and a low rating rarely
    comes with a recommendation (the marketplace's loyalty signal): both must come out
    as significant drivers of lapsing. The low-rating table is also counted from the
    truth: a lapsed journey with a rating of 1 or 2 for one of its orders ever, a
    retained one with such a rating before its first signal in the window."""
    signals: dict[str, list[datetime]] = defaultdict(list)
    for order in truth["orders"]:
        signals[order["customer_id"]].append(_naive(order["purchased_at"]))
    for review in truth["reviews"]:
        if review["recommended"] and review["order_id"] in truth["customer_of"]:
            customer = truth["customer_of"][review["order_id"]]
            signals[customer].append(_naive(review["created_at"]))
    low_reviews: dict[int, list[datetime]] = defaultdict(list)
    for review in truth["reviews"]:
        if review["rating"] <= 2 and review["order_id"] in truth["journey_of"]:
            low_reviews[truth["journey_of"][review["order_id"]]].append(
                _naive(review["created_at"])
            )
    cells = {"dropped_with": 0, "advanced_with": 0, "dropped_without": 0, "advanced_without": 0}
    for index, journey in enumerate(truth["journeys"]):
        if journey["outcome"] == "in_window":
            continue
        start = journey["first_order_at"]
        if journey["outcome"] == "retained":
            bound = min(
                t for t in signals[journey["customer"]] if start < t <= start + RETURN_WINDOW
            )
        else:
            bound = datetime.max
        low = any(t < bound for t in low_reviews[index])
        side = "dropped" if journey["outcome"] == "lapsed" else "advanced"
        cells[f"{side}_{'with' if low else 'without'}"] += 1
    rows = served.sql(
        "select factor, level, dropped_with, advanced_with, dropped_without, advanced_without, "
        "lift, is_significant, direction from agg_dropoff_drivers "
        "where persona_scope = 'all' and stage = 'experience'"
    ).fetchall()
    found = {(r[0], r[1]): r for r in rows}
    low = found[("low_rating", "given")]
    assert dict(zip(cells, low[2:6], strict=True)) == cells
    assert (low[7], low[8]) == (True, "more_drop")
    late = found[("late_delivery", "yes")]
    assert (late[7], late[8]) == (True, "more_drop")
