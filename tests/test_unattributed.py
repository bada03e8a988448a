"""Records of no one: an anonymous Google reviewer's review and a news mention without
an author land, are built by a real dbt run (data tests included), and count in the
review and sentiment marts as unlinked voices, each its own unattributed customer,
never in the funnel or among the people counted. Expected numbers are read from the
files written here."""

from __future__ import annotations

import json
from datetime import date

import pytest

from cjm_pipeline.build import build, summary
from cjm_pipeline.ingest import ingest
from cjm_pipeline.settings import Settings
from tests.conftest import land, query, quiet, segment_call

DAY = date(2026, 10, 5)
ANONYMOUS_REVIEW = "g-anon"
ANONYMOUS_MENTION = "bw-anon"


def _jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("unattributed")
    settings = Settings(
        data_dir=root / "data",
        salt="test-salt",
        build_path=root / "build" / "cjm.duckdb",
        warehouse_path=root / "warehouse" / "cjm.duckdb",
    )
    day = DAY.isoformat()
    # One shopper who views a product and orders it: the funnel's only journey.
    land(
        settings,
        "web",
        day,
        "calls.jsonl",
        segment_call(messageId="view-1")
        + "\n"
        + segment_call(
            messageId="order-1",
            event="Order Completed",
            timestamp="2026-10-05T08:10:00.000Z",
            properties={"order_id": "o-1", "revenue": 80.0, "currency": "EUR"},
        )
        + "\n",
    )
    land(
        settings,
        "reviews",
        day,
        "google.jsonl",
        _jsonl(
            {
                "reviewId": "g-named",
                "reviewer": {"displayName": "Rui Costa", "isAnonymous": False},
                "starRating": "FIVE",
                "comment": "Great staff, lovely boots",
                "createTime": "2026-10-05T09:30:00Z",
            },
            {
                "reviewId": ANONYMOUS_REVIEW,
                "reviewer": {"displayName": "A Google user", "isAnonymous": True},
                "starRating": "TWO",
                "comment": "Slow and rude service",
                "createTime": "2026-10-05T09:40:00Z",
            },
        ),
    )
    land(
        settings,
        "social",
        day,
        "brandwatch.jsonl",
        _jsonl(
            {
                "resourceId": ANONYMOUS_MENTION,
                "date": "2026-10-05T07:45:10.000+0000",
                "author": "",
                "fullText": "the shop opened a new store downtown",
                "url": "https://news.example/a/1",
                "pageType": "news",
                "threadEntryType": "post",
                "language": "en",
            }
        ),
    )
    manifests = ingest(settings, [DAY], progress=quiet)
    assert all(m.quarantined == 0 for m in manifests)
    build(settings, DAY, progress=quiet, tests=True)
    return settings


def _event_ids(settings: Settings) -> dict[str, str]:
    rows = query(
        settings,
        "select native_id, event_id from staging.stg_reviews__events "
        "union all select native_id, event_id from staging.stg_social__events",
    ).rows()
    return dict(rows)


def test_records_of_no_one_reach_the_journey_events(built: Settings) -> None:
    ids = _event_ids(built)
    rows = query(
        built,
        "select event_id, event_type, rating, customer_id from fct_journey_events "
        "order by event_id",
    )
    by_event = {r["event_id"]: r for r in rows.iter_rows(named=True)}
    assert set(ids.values()) <= set(by_event)
    review = by_event[ids[ANONYMOUS_REVIEW]]
    mention = by_event[ids[ANONYMOUS_MENTION]]
    assert (review["event_type"], review["rating"]) == ("review_posted", 2)
    assert mention["event_type"] == "social_mention"
    # Each is a customer of its own: joined to no one, not to each other.
    own = {review["customer_id"], mention["customer_id"]}
    others = {
        r["customer_id"]
        for e, r in by_event.items()
        if e not in (ids[ANONYMOUS_REVIEW], ids[ANONYMOUS_MENTION])
    }
    assert len(own) == 2 and own.isdisjoint(others)


def test_they_are_unattributed_unlinked_voices_never_in_the_funnel(built: Settings) -> None:
    customers = query(
        built, "select customer_id, is_unattributed, persona, journeys from dim_customers"
    )
    unattributed = customers.filter(customers["is_unattributed"])
    # The anonymous review and the authorless mention; the named reviewer and the
    # shopper are people.
    assert unattributed.height == 2
    assert customers.height == 4
    assert unattributed["persona"].to_list() == [None, None]
    assert unattributed["journeys"].to_list() == [1, 1]
    journeys = query(built, "select customer_id, population from fct_journeys")
    populations = dict(journeys.rows())
    for customer in unattributed["customer_id"]:
        assert populations[customer] == "unlinked_voice"
    counts = dict(
        query(
            built, "select population, sum(journeys) from agg_journey_populations group by 1"
        ).rows()
    )
    # Both unattributed records and the named reviewer's review.
    assert counts["unlinked_voice"] == 3
    funnel = query(
        built,
        "select population, sum(journeys_entered) as entered from agg_stage_funnel "
        "where stage_order = 1 group by 1",
    )
    # Only the shopper's journey enters the funnel.
    assert dict(funnel.rows()) == {"anonymous": 1}


def test_their_ratings_and_words_count_in_the_voice_marts(built: Settings) -> None:
    ratings = query(
        built,
        "select sum(ratings) as ratings, sum(rating_sum) as rating_sum from agg_stage_sentiment",
    ).row(0)
    # FIVE from the named reviewer, TWO from the anonymous one.
    assert ratings == (2, 7)
    ids = _event_ids(built)
    scored = set(query(built, "select event_id from intermediate.int_text_sentiment")["event_id"])
    assert {ids[ANONYMOUS_REVIEW], ids[ANONYMOUS_MENTION]} <= scored


def test_the_summary_counts_people_and_unattributed_records_apart(built: Settings) -> None:
    text = summary(built.build_path)
    assert "customers 2 " in text
    assert "2 unattributed records" in text
