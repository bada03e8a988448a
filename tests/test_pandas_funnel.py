"""The pandas pipeline of the benchmark (benchmarks/pandas_pipeline.py) writes the
journey semantics again without the dbt models. Given only the identity map of the
build, its funnel must equal ``agg_stage_funnel`` journey for journey: on the
generated sample, and on hand-written customers, each named for the rule it tests,
whose funnel is also worked out here by hand."""

from __future__ import annotations

import json
from datetime import date, timedelta

import duckdb
import pytest

from benchmarks import pandas_pipeline
from cjm_pipeline.build import build
from cjm_pipeline.ingest import ingest
from cjm_pipeline.settings import Settings
from tests.conftest import RUN_DATE, land, quiet, segment_call

COUNTS = ["entered", "advanced", "dropped", "in_progress", "completed"]
Funnel = dict[tuple[str, str], tuple[int, ...]]


def pandas_funnel(settings: Settings, run_date: date) -> Funnel:
    """The pandas funnel summed by population and stage, fed the build's identity map."""
    with duckdb.connect(str(settings.build_path), read_only=True) as con:
        identities = con.sql(
            "select node, customer_id from intermediate.int_identity__customers"
        ).df()
        listed = [
            row[0]
            for row in con.sql("select node from intermediate.int_identity__overloaded").fetchall()
        ]
    funnel = pandas_pipeline.run(
        settings.lake_dir,
        identities,
        run_date,
        gap_minutes=settings.session_gap_minutes,
        cap_hours=settings.session_cap_hours,
        journey_gap_days=settings.journey_gap_days,
        return_window_days=settings.return_window_days,
        not_merging=listed,
    )
    summed = funnel.groupby(["population", "stage"])[COUNTS].sum()
    return {
        key: tuple(int(n) for n in row)
        for key, row in zip(summed.index, summed.to_numpy(), strict=True)
    }


def mart_funnel(settings: Settings) -> Funnel:
    with duckdb.connect(str(settings.build_path), read_only=True) as con:
        rows = con.sql(
            "select population, stage, sum(journeys_entered), sum(journeys_advanced), "
            "sum(journeys_dropped), sum(journeys_in_progress), sum(journeys_completed) "
            "from agg_stage_funnel group by population, stage"
        ).fetchall()
    return {(row[0], row[1]): tuple(int(n) for n in row[2:]) for row in rows}


def test_pandas_funnel_equals_the_mart_on_the_sample(built: Settings) -> None:
    mart = mart_funnel(built)
    # The sample reaches every stage, in more than one population.
    assert {stage for _, stage in mart} >= set(pandas_pipeline.STAGES) | {"unclassified"}
    assert {population for population, _ in mart} == {"known", "anonymous", "unclassified"}
    assert pandas_funnel(built, RUN_DATE) == mart


# Hand-written customers: journeys end after 3 days without activity, and a loyalty
# signal must come within 5 days of an order.
FIRST_DAY = date(2026, 10, 1)
LAST_DAY = date(2026, 10, 10)
JOURNEY_GAP_DAYS = 3
RETURN_WINDOW_DAYS = 5


def _web(name: str, at: str, known: bool = True, **fields: object) -> tuple[str, str]:
    """A Segment call of customer ``name`` (a signed-in user when ``known``), with its day."""
    call = segment_call(
        messageId=f"{name}-{at}",
        anonymousId=f"{name}-device",
        userId=name if known else None,
        timestamp=f"{at}:00.000Z",
        **fields,
    )
    return at[:10], call


def _page(name: str, at: str, path: str, known: bool = True) -> tuple[str, str]:
    page = {"url": f"https://shop.example{path}", "path": path}
    return _web(name, at, known, type="page", event=None, context={"page": page})


def _order(name: str, at: str, order_id: str) -> tuple[str, str]:
    return _web(
        name, at, event="Order Completed", properties={"order_id": order_id, "revenue": 80.0}
    )


WEB_CALLS = [
    # Orders, refunds its order 5 days later (past the journey gap: the refund still
    # belongs to the order's journey), and browses again 2 days after the refund: a
    # new journey, as the refund does not keep the first one going. No loyalty signal
    # within 5 days of the order: lapsed.
    _web("refund_after_gap", "2026-10-01T09:00"),
    _order("refund_after_gap", "2026-10-01T09:10", "o-refund"),
    _web(
        "refund_after_gap",
        "2026-10-06T09:00",
        event="Order Refunded",
        properties={"order_id": "o-refund"},
    ),
    _web("refund_after_gap", "2026-10-08T09:00"),
    # Orders and refunds 6 days later, and nothing else: one journey, lapsed (alone,
    # the refund would be a journey of no stage, as no order came before it there).
    _order("refund_alone_after_gap", "2026-10-01T14:00", "o-alone"),
    _web(
        "refund_alone_after_gap",
        "2026-10-07T14:00",
        event="Order Refunded",
        properties={"order_id": "o-alone"},
    ),
    # Orders, then visits the rewards pages the next day: retained, in loyalty.
    _order("retained_by_rewards", "2026-10-05T10:00", "o-rewards"),
    _page("retained_by_rewards", "2026-10-06T10:00", "/rewards/points"),
    # Orders again 4 days later, in a new journey: the repeat order retains the
    # first journey; nothing follows the second within 5 days: lapsed.
    _order("repeat_order_next_journey", "2026-10-01T12:00", "o-first"),
    _order("repeat_order_next_journey", "2026-10-05T12:00", "o-second"),
    # Orders 2 days before the run ends: the return window is still open.
    _order("order_in_window", "2026-10-08T15:00", "o-window"),
    # An anonymous visitor opens the order pages (experience) without an order: that
    # does not count, so the journey is in consideration, still in progress.
    _page("order_pages_without_order", "2026-10-09T12:00", "/account/orders", known=False),
    _web("order_pages_without_order", "2026-10-09T12:05", known=False),
    # An anonymous visitor of the home page, gone for 8 days: dropped at discovery.
    _page("dropped_at_discovery", "2026-10-02T08:00", "/", known=False),
    # A page no stage rule knows: counted as unclassified.
    _page("no_stage_rule", "2026-10-03T08:00", "/nowhere", known=False),
]


def _review(review_id: str, at: str, email: str, order_id: str | None) -> tuple[str, str]:
    record = {
        "review_id": review_id,
        "platform": "Trustpilot",
        "reviewer_email": email,
        "rating": 4,
        "title": "Fine",
        "text": "Arrived on time",
        "language": "en",
        "created_at": f"{at}:00Z",
        "order_id": order_id,
    }
    return at[:10], json.dumps(record)


REVIEWS = [
    # A review by an email seen nowhere else, naming the refunded order: the order id
    # links it to that customer, and it joins the order's journey 8 days on.
    _review("r-order", "2026-10-09T08:00", "reviewer@mail.example", "o-refund"),
    # A review and nothing else: an unlinked voice, left out of the funnel.
    _review("r-voice", "2026-10-04T08:00", "voice@mail.example", None),
]

# By population and stage: entered, advanced, dropped, in progress, completed.
EXPECTED: Funnel = {
    # refund_after_gap (2 journeys), refund_alone_after_gap, retained_by_rewards,
    # repeat_order_next_journey (2 journeys), order_in_window
    ("known", "discovery"): (7, 7, 0, 0, 0),
    # refund_after_gap's second journey is still in consideration
    ("known", "consideration"): (7, 6, 0, 1, 0),
    ("known", "purchase"): (6, 6, 0, 0, 0),
    # retained: retained_by_rewards, repeat_order_next_journey's first journey;
    # lapsed: refund_after_gap's first journey, refund_alone_after_gap,
    # repeat_order_next_journey's second; in window: order_in_window
    ("known", "experience"): (6, 2, 3, 1, 0),
    ("known", "loyalty"): (2, 0, 0, 0, 2),
    ("anonymous", "discovery"): (2, 1, 1, 0, 0),
    ("anonymous", "consideration"): (1, 0, 0, 1, 0),
    ("unclassified", "unclassified"): (1, 0, 0, 0, 0),
}


@pytest.fixture(scope="module")
def edge_cases(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("edge-cases")
    settings = Settings(
        data_dir=root / "data",
        salt="test-salt",
        build_path=root / "build" / "cjm.duckdb",
        warehouse_path=root / "warehouse" / "cjm.duckdb",
        journey_gap_days=JOURNEY_GAP_DAYS,
        return_window_days=RETURN_WINDOW_DAYS,
    )
    for source, name, records in [
        ("web", "calls.jsonl", WEB_CALLS),
        ("reviews", "reviews.jsonl", REVIEWS),
    ]:
        for day in sorted({day for day, _ in records}):
            lines = [line for at, line in records if at == day]
            land(settings, source, day, name, "\n".join(lines) + "\n")
    days = [FIRST_DAY + timedelta(days=n) for n in range((LAST_DAY - FIRST_DAY).days + 1)]
    ingest(settings, days, progress=quiet)
    build(settings, LAST_DAY, progress=quiet)
    return settings


def test_mart_funnel_of_the_named_customers(edge_cases: Settings) -> None:
    assert mart_funnel(edge_cases) == EXPECTED


def test_pandas_funnel_of_the_named_customers(edge_cases: Settings) -> None:
    assert pandas_funnel(edge_cases, LAST_DAY) == EXPECTED
