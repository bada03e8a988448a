"""Vendor exports read through layout files: hand-written records in each vendor's
documented shape, and the canonical rows they must give (worked out by hand here, not
by the layout engine)."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from cjm_pipeline.ingest import ingest_one
from tests.conftest import lake_events, lake_quarantine, land
from transforms import layouts
from transforms.layouts import LayoutError, Spec

DAY = "2026-10-05"
D = datetime(2026, 10, 5, tzinfo=UTC).date()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def handle_hash(platform_handle: str) -> str:
    return sha(f"test-salt{platform_handle}")


def jsonl(*records: dict) -> str:
    return "\n".join(json.dumps(r) for r in records) + "\n"


def by_id(events: pl.DataFrame) -> dict[str, dict]:
    return {row["native_id"]: row for row in events.iter_rows(named=True)}


def test_marketplace_reviews_are_keyed_by_their_order(workspace) -> None:
    land(
        workspace,
        "reviews",
        DAY,
        "order_reviews.csv",
        "review_id,order_id,review_score,review_comment_title,review_comment_message,"
        "review_creation_date,review_answer_timestamp\n"
        # One review standing for two orders of one buyer: two events.
        "rv-a1,ord-100,5,,Chegou antes do prazo,2026-10-04 21:15:00,2026-10-05 10:00:00\n"
        "rv-a1,ord-101,5,,Chegou antes do prazo,2026-10-04 21:15:00,2026-10-05 10:00:00\n"
        "rv-a2,ord-102,6,,,2026-10-05 08:00:00,\n"
        "rv-a3,ord-103,2,Atraso,Veio quebrado,2026-10-05 08:00:00,\n",
    )
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (4, 3, {"rating_out_of_range": 1})
    assert m.files[0].note == "read with the marketplace layout"
    events = by_id(lake_events(workspace, "reviews"))
    first = "derived:" + sha("rv-a1\x1ford-100")[:32]
    second = "derived:" + sha("rv-a1\x1ford-101")[:32]
    third = "derived:" + sha("rv-a3\x1ford-103")[:32]
    assert set(events) == {first, second, third}
    row = events[first]
    assert row["event_id"] == sha(f"reviews:{first}")[:32]
    assert (row["platform"], row["order_id"], row["rating"], row["event_type"]) == (
        "marketplace",
        "ord-100",
        5,
        "review_posted",
    )
    # 21:15 in Sao Paulo (UTC-3) is 00:15 UTC the next day.
    assert row["occurred_at"] == datetime(2026, 10, 5, 0, 15, tzinfo=UTC)
    assert row["email_sha256"] is None and row["social_handle_sha256"] is None
    assert json.loads(events[third]["properties"]) == {"title": "Atraso"}
    assert events[third]["text"] == "Veio quebrado"


def test_review_platform_exports_are_picked_by_their_fields(workspace) -> None:
    land(
        workspace,
        "reviews",
        DAY,
        "trustpilot.jsonl",
        jsonl(
            {
                "id": "tp-1",
                "stars": 4,
                "title": "Quick",
                "text": "Arrived fast",
                "language": "en",
                "createdAt": "2026-10-05T08:00:00Z",
                "consumer": {"id": "cons-77", "displayName": "Ana"},
                "orderId": "o-5",
            },
            {"id": "tp-2", "stars": 0, "createdAt": "2026-10-05T08:00:00Z", "orderId": "o-6"},
        ),
    )
    land(
        workspace,
        "reviews",
        DAY,
        "google.jsonl",
        jsonl(
            {
                "reviewId": "g-1",
                "reviewer": {"displayName": "Rui Costa", "isAnonymous": False},
                "starRating": "FIVE",
                "comment": "Great staff",
                "createTime": "2026-10-05T09:30:00.123456789Z",
            },
            # An anonymous reviewer's stand-in name identifies nobody.
            {
                "reviewId": "g-2",
                "reviewer": {"displayName": "A Google user", "isAnonymous": True},
                "starRating": "TWO",
                "createTime": "2026-10-05T09:40:00Z",
            },
            {
                "reviewId": "g-3",
                "reviewer": {"displayName": "Lea"},
                "starRating": "STAR_RATING_UNSPECIFIED",
                "createTime": "2026-10-05T09:50:00Z",
            },
        ),
    )
    land(
        workspace,
        "reviews",
        DAY,
        "yelp.jsonl",
        jsonl(
            {
                "id": "y-1",
                "url": "https://www.yelp.example/biz/boots?hrid=1",
                "text": "Nice fit",
                "rating": 5,
                "time_created": "2026-10-04 19:32:11",
                "user": {"id": "yu-9", "name": "Kim"},
            }
        ),
    )
    land(
        workspace,
        "reviews",
        DAY,
        "bazaarvoice.jsonl",
        jsonl(
            {
                "Id": "bv-1",
                "AuthorId": "cust-42",
                "UserNickname": "hiker42",
                "Rating": 3,
                "RatingRange": 5,
                "Title": "Ok",
                "ReviewText": "Fine for the price",
                "SubmissionTime": "2026-10-05T10:00:00.000+02:00",
                "IsRecommended": True,
                "ContentLocale": "en_US",
            }
        ),
    )
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted) == (7, 5)
    assert m.quarantined_by_reason == {"rating_out_of_range": 1, "wrong_type": 1}
    notes = {f.file.rsplit("/", 1)[-1]: f.note for f in m.files}
    assert notes == {
        "bazaarvoice.jsonl": "read with the bazaarvoice layout",
        "google.jsonl": "read with the google_business_profile layout",
        "trustpilot.jsonl": "read with the trustpilot layout",
        "yelp.jsonl": "read with the yelp layout",
    }
    events = by_id(lake_events(workspace, "reviews"))
    assert set(events) == {"tp-1", "g-1", "g-2", "y-1", "bv-1"}
    # The anonymous reviewer's review counts (its rating, its words) but joins nobody.
    anonymous = events["g-2"]
    assert anonymous["rating"] == 2
    assert (anonymous["social_handle_sha256"], anonymous["email_sha256"]) == (None, None)
    assert (anonymous["user_id"], anonymous["order_id"]) == (None, None)
    assert json.loads(anonymous["properties"]) == {"unattributed": True}
    tp = events["tp-1"]
    assert (tp["platform"], tp["rating"], tp["order_id"]) == ("trustpilot", 4, "o-5")
    assert tp["social_handle_sha256"] == handle_hash("trustpilot:cons-77")
    assert json.loads(tp["properties"]) == {"title": "Quick", "language": "en"}
    g = events["g-1"]
    assert (g["platform"], g["rating"], g["text"]) == ("google", 5, "Great staff")
    assert g["social_handle_sha256"] == handle_hash("google:rui costa")
    assert g["occurred_at"] == datetime(2026, 10, 5, 9, 30, 0, 123456, tzinfo=UTC)
    y = events["y-1"]
    # 19:32:11 Pacific daylight time (UTC-7) is 02:32:11 UTC the next day.
    assert y["occurred_at"] == datetime(2026, 10, 5, 2, 32, 11, tzinfo=UTC)
    assert (y["url"], y["path"]) == ("https://www.yelp.example/biz/boots?hrid=1", "/biz/boots")
    assert y["social_handle_sha256"] == handle_hash("yelp:yu-9")
    bv = events["bv-1"]
    # The shop's own user id: the review joins that customer without a crm row.
    assert (bv["user_id"], bv["rating"]) == ("cust-42", 3)
    assert bv["occurred_at"] == datetime(2026, 10, 5, 8, tzinfo=UTC)
    assert json.loads(bv["properties"]) == {
        "title": "Ok",
        "language": "en_us",
        "recommended": True,
    }
    q = lake_quarantine(workspace, "reviews")
    problems = dict(zip(q["native_id"], q["detail"], strict=True))
    assert (
        "starRating 'STAR_RATING_UNSPECIFIED' is not a number or a star rating" in problems["g-3"]
    )
    assert "stars 0 is not a whole number from 1 to 5" in problems["tp-2"]


def test_amazon_customer_reviews(workspace) -> None:
    header = (
        "marketplace,customer_id,review_id,product_id,product_parent,product_title,"
        "product_category,star_rating,helpful_votes,total_votes,vine,verified_purchase,"
        "review_headline,review_body,review_date\n"
    )
    land(
        workspace,
        "reviews",
        DAY,
        "amazon_reviews.csv",
        header
        + "".join(
            (
                "US,40011,RX1AAA,B0SHOE01,700100,Trail boot,Shoes,4,2,3,N,Y,Warm enough,"
                "Good grip on wet rock,2026-10-05\n",
                "UK,40012,RX1AAB,B0SHOE01,700100,Trail boot,Shoes,0,0,0,N,N,Broken,"
                "Sole came off,2026-10-05\n",
                "US,,RX1AAC,B0SHOE01,700100,Trail boot,Shoes,5,0,0,N,Y,,,2026-10-05\n",
                # A day in another notation than the documented YYYY-MM-DD.
                "DE,40013,RX1AAD,B0SHOE01,700100,Trail boot,Shoes,5,0,0,N,Y,,,05.10.2026\n",
            )
        ),
    )
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted) == (4, 2)
    assert m.quarantined_by_reason == {"rating_out_of_range": 1, "invalid_timestamp": 1}
    assert m.files[0].note == "read with the amazon layout"
    row, anonymous = lake_events(workspace, "reviews").sort("native_id").iter_rows(named=True)
    # A review without a reviewer id lands unattributed: it joins nobody.
    assert anonymous["native_id"] == "RX1AAC"
    assert json.loads(anonymous["properties"]) == {"unattributed": True}
    assert anonymous["social_handle_sha256"] is None
    assert row["event_id"] == sha("reviews:RX1AAA")[:32]
    assert (row["native_id"], row["platform"], row["rating"], row["event_type"]) == (
        "RX1AAA",
        "amazon",
        4,
        "review_posted",
    )
    # Amazon's reviewer id is a handle on amazon, not the shop's user id.
    assert row["social_handle_sha256"] == handle_hash("amazon:40011")
    assert row["user_id"] is None and row["email_sha256"] is None
    # A calendar day is its midnight in UTC.
    assert row["occurred_at"] == datetime(2026, 10, 5, tzinfo=UTC)
    assert row["text"] == "Good grip on wet rock"
    assert json.loads(row["properties"]) == {"title": "Warm enough"}


def test_yotpo_reviews(workspace) -> None:
    def review(**fields: object) -> dict:
        base = {
            "id": 9001,
            "score": 5,
            "votes_up": 1,
            "votes_down": 0,
            "content": "Soft and warm",
            "title": "Love it",
            "created_at": "2026-10-05T06:12:30.000Z",
            "updated_at": "2026-10-05T06:20:00.000Z",
            "sentiment": 0.93,
            "sku": "SKU-77",
            "name": "Mia L.",
            "email": " Mia.Lund@Mail.Example ",
            "reviewer_type": "verified_buyer",
        }
        return {**base, **fields}

    land(
        workspace,
        "reviews",
        DAY,
        "yotpo.jsonl",
        jsonl(
            review(),
            review(id=9002, score=6),
            review(id=9003, score=3, content="Runs small", email=""),
        ),
    )
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted) == (3, 2)
    assert m.quarantined_by_reason == {"rating_out_of_range": 1}
    assert m.files[0].note == "read with the yotpo layout"
    row, anonymous = lake_events(workspace, "reviews").sort("native_id").iter_rows(named=True)
    # A review without the reviewer's address lands unattributed: it joins nobody.
    assert anonymous["native_id"] == "9003" and anonymous["email_sha256"] is None
    assert json.loads(anonymous["properties"])["unattributed"] is True
    assert (row["native_id"], row["platform"], row["rating"]) == ("9001", "yotpo", 5)
    # The address is trimmed and lower-cased before it is hashed.
    assert row["email_sha256"] == sha("test-saltmia.lund@mail.example")
    assert row["social_handle_sha256"] is None
    assert row["occurred_at"] == datetime(2026, 10, 5, 6, 12, 30, tzinfo=UTC)
    assert (row["text"], json.loads(row["properties"])) == ("Soft and warm", {"title": "Love it"})
    q = lake_quarantine(workspace, "reviews")
    problems = dict(zip(q["native_id"], q["detail"], strict=True))
    assert "score 6 is not a whole number from 1 to 5" in problems["9002"]


def test_brandwatch_mentions(workspace) -> None:
    def mention(**fields: object) -> dict:
        base = {
            "resourceId": "bw-1",
            "date": "2026-10-05T07:45:10.000+0000",
            "author": "TrailFan",
            "fullText": "new boots from @northwind!",
            "url": "https://x.example/s/1?utm_campaign=fall",
            "pageType": "twitter",
            "threadEntryType": "post",
            "sentiment": "Positive",
            "language": "en",
        }
        return {**base, **fields}

    land(
        workspace,
        "social",
        DAY,
        "brandwatch.jsonl",
        jsonl(
            mention(),
            mention(resourceId="bw-2", threadEntryType="reply", pageType="instagram"),
            mention(resourceId="bw-3", threadEntryType="share", sentiment="neutral"),
            mention(resourceId="bw-4", pageType="news", author=""),
            mention(resourceId="bw-5", threadEntryType="poll"),
        ),
    )
    m = ingest_one(workspace, "social", D)
    assert (m.read, m.accepted) == (5, 4)
    assert m.quarantined_by_reason == {"unknown_event": 1}
    events = by_id(lake_events(workspace, "social"))
    assert {k: v["event_type"] for k, v in events.items()} == {
        "bw-1": "social_mention",
        "bw-2": "social_comment",
        "bw-3": "social_share",
        "bw-4": "social_mention",
    }
    # A news article's mention has no author: it counts, attributed to nobody.
    assert events["bw-4"]["social_handle_sha256"] is None
    assert json.loads(events["bw-4"]["properties"]) == {
        "language": "en",
        "sentiment": "positive",
        "unattributed": True,
    }
    first = events["bw-1"]
    assert (first["platform"], first["channel"], first["campaign"]) == ("x", "social", "fall")
    assert first["social_handle_sha256"] == handle_hash("x:trailfan")
    assert events["bw-2"]["social_handle_sha256"] == handle_hash("instagram:trailfan")
    assert first["occurred_at"] == datetime(2026, 10, 5, 7, 45, 10, tzinfo=UTC)
    assert first["text"] == "new boots from @[handle]!"
    assert json.loads(first["properties"]) == {"language": "en", "sentiment": "positive"}
    detail = lake_quarantine(workspace, "social").filter(pl.col("native_id") == "bw-5")["detail"]
    assert "threadEntryType 'poll' is not in the vocabulary" in detail[0]


def test_meltwater_mentions(workspace) -> None:
    def document(**fields: object) -> dict:
        base = {
            "id": "1791187510000_mw1",
            "published_date": "2026-10-05T07:45:10.000Z",
            "url": "https://x.example/s/1?utm_campaign=fall",
            "author": {"handle": "@TrailFan", "name": "Trail Fan"},
            "source": {"type": "twitter", "name": "X"},
            "content_type": "original",
            "content": {"opening_text": "new boots from @northwind!"},
            "enrichments": {"sentiment": "Positive", "language_code": "en"},
        }
        return {**base, **fields}

    land(
        workspace,
        "social",
        DAY,
        "meltwater.jsonl",
        jsonl(
            document(),
            document(
                id="mw-2",
                source={"type": "instagram"},
                content_type="reply",
                author={"handle": "trail.fan"},
                parent={"url": "https://instagram.example/p/9"},
                content={"opening_text": "Same here"},
                enrichments={"sentiment": "neutral"},
            ),
            # A news article: no author, no post type.
            {
                "id": "mw-3",
                "published_date": "2026-10-05T10:00:00.000Z",
                "url": "https://news.example/a/1",
                "source": {"type": "news"},
                "content": {"title": "Boots of the year", "opening_text": "A list."},
            },
            document(id="mw-4", content_type="poll"),
        ),
    )
    m = ingest_one(workspace, "social", D)
    assert (m.read, m.accepted) == (4, 3)
    assert m.quarantined_by_reason == {"unknown_event": 1}
    assert m.files[0].note == "read with the meltwater layout"
    events = by_id(lake_events(workspace, "social"))
    assert {k: (v["platform"], v["event_type"]) for k, v in events.items()} == {
        "1791187510000_mw1": ("x", "social_mention"),
        "mw-2": ("instagram", "social_comment"),
        "mw-3": ("news", "social_mention"),
    }
    first = events["1791187510000_mw1"]
    assert first["event_id"] == sha("social:1791187510000_mw1")[:32]
    assert first["social_handle_sha256"] == handle_hash("x:trailfan")
    assert first["occurred_at"] == datetime(2026, 10, 5, 7, 45, 10, tzinfo=UTC)
    assert (first["campaign"], first["text"]) == ("fall", "new boots from @[handle]!")
    assert json.loads(first["properties"]) == {"language": "en", "sentiment": "positive"}
    reply = events["mw-2"]
    assert reply["social_handle_sha256"] == handle_hash("instagram:trail.fan")
    assert json.loads(reply["properties"]) == {
        "in_reply_to": "https://instagram.example/p/9",
        "sentiment": "neutral",
    }
    news = events["mw-3"]
    assert news["social_handle_sha256"] is None
    assert json.loads(news["properties"]) == {"title": "Boots of the year", "unattributed": True}
    detail = lake_quarantine(workspace, "social").filter(pl.col("native_id") == "mw-4")["detail"]
    assert "content_type 'poll' is not in the vocabulary" in detail[0]


def test_sprout_social_messages(workspace) -> None:
    def message(**fields: object) -> dict:
        base = {
            "guid": "sp-1",
            "created_time": "2026-10-05T09:00:00",
            "network": "INSTAGRAM",
            "post_type": "INSTAGRAM_COMMENT",
            "from": {"screen_name": "Mia.Hikes", "name": "Mia"},
            "text": "Do these run small?",
            "perma_link": "https://instagram.example/p/2",
            "language": "en",
            "sentiment": "NEUTRAL",
        }
        return {**base, **fields}

    land(
        workspace,
        "social",
        DAY,
        "sprout.jsonl",
        jsonl(
            message(),
            message(guid="sp-2", network="FACEBOOK", post_type="FACEBOOK_PRIVATE_MESSAGE"),
            message(guid="sp-3", network="TWITTER", post_type="RETWEET", sentiment="positive"),
            message(guid="sp-4", post_type="INSTAGRAM_MEDIA", **{"from": {"name": "Anon"}}),
        ),
    )
    m = ingest_one(workspace, "social", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (4, 4, {})
    assert m.files[0].note == "read with the sprout_social layout"
    events = by_id(lake_events(workspace, "social"))
    assert {k: (v["platform"], v["event_type"]) for k, v in events.items()} == {
        "sp-1": ("instagram", "social_comment"),
        "sp-2": ("facebook", "social_dm"),
        "sp-3": ("x", "social_share"),
        "sp-4": ("instagram", "social_mention"),
    }
    first = events["sp-1"]
    # A time without an offset is UTC.
    assert first["occurred_at"] == datetime(2026, 10, 5, 9, tzinfo=UTC)
    assert first["social_handle_sha256"] == handle_hash("instagram:mia.hikes")
    assert events["sp-2"]["social_handle_sha256"] == handle_hash("facebook:mia.hikes")
    assert events["sp-3"]["social_handle_sha256"] == handle_hash("x:mia.hikes")
    assert (first["url"], first["path"], first["text"]) == (
        "https://instagram.example/p/2",
        "/p/2",
        "Do these run small?",
    )
    assert json.loads(first["properties"]) == {"language": "en", "sentiment": "neutral"}
    assert events["sp-4"]["social_handle_sha256"] is None
    assert json.loads(events["sp-4"]["properties"])["unattributed"] is True


def test_talkwalker_documents(workspace) -> None:
    land(
        workspace,
        "social",
        DAY,
        "talkwalker.jsonl",
        jsonl(
            {
                "url": "https://www.reddit.example/r/boots/c/1",
                "published": 1791187200000,
                "title": "Boot thread",
                "content": "Soles wore out in a month",
                "lang": "en",
                "sentiment": -5,
                "source_type": ["MESSAGEBOARD", "MESSAGEBOARD_REDDIT"],
                "post_type": ["TEXT"],
                "extra_author_attributes": {"id": "re:42", "short_name": "Boot_Fan"},
            },
            # A news article: the most specific label is unknown, the general one is news.
            {
                "url": "https://news.example/a/2",
                "published": 1791190800000,
                "content": "A list of boots.",
                "sentiment": 0,
                "source_type": ["ONLINENEWS", "ONLINENEWS_PRESSRELEASES"],
            },
            {
                "url": "https://instagram.example/p/3",
                "published": 1791187200250,
                "content": "Love them",
                "sentiment": 3,
                "source_type": ["SOCIALMEDIA", "SOCIALMEDIA_INSTAGRAM"],
                "extra_author_attributes": {"short_name": "mia.hikes"},
            },
            # A bare label instead of a list is read as a list of one.
            {"url": "https://blog.example/4", "published": 1791187200000, "source_type": "BLOG"},
        ),
    )
    m = ingest_one(workspace, "social", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (4, 4, {})
    assert m.files[0].note == "read with the talkwalker layout"
    events = by_id(lake_events(workspace, "social"))
    reddit = events["https://www.reddit.example/r/boots/c/1"]
    assert reddit["event_id"] == sha("social:https://www.reddit.example/r/boots/c/1")[:32]
    assert (reddit["platform"], reddit["event_type"]) == ("reddit", "social_mention")
    assert reddit["social_handle_sha256"] == handle_hash("reddit:boot_fan")
    # 1791187200000 ms after the epoch is 2026-10-05 08:00 UTC.
    assert reddit["occurred_at"] == datetime(2026, 10, 5, 8, tzinfo=UTC)
    assert reddit["text"] == "Soles wore out in a month"
    assert json.loads(reddit["properties"]) == {
        "title": "Boot thread",
        "language": "en",
        "sentiment": "negative",
    }
    news = events["https://news.example/a/2"]
    assert news["platform"] == "news"
    assert news["occurred_at"] == datetime(2026, 10, 5, 9, tzinfo=UTC)
    assert json.loads(news["properties"]) == {"sentiment": "neutral", "unattributed": True}
    insta = events["https://instagram.example/p/3"]
    assert insta["platform"] == "instagram"
    assert insta["social_handle_sha256"] == handle_hash("instagram:mia.hikes")
    assert insta["occurred_at"] == datetime(2026, 10, 5, 8, 0, 0, 250000, tzinfo=UTC)
    assert json.loads(insta["properties"])["sentiment"] == "positive"
    assert events["https://blog.example/4"]["platform"] == "blog"


def test_an_unknown_header_is_refused_once_naming_the_closest_layout(workspace) -> None:
    land(
        workspace,
        "reviews",
        DAY,
        "export.csv",
        "review_id,order_id,review_score,created\nr-1,o-1,5,2026-10-05\nr-2,o-2,4,2026-10-05\n",
    )
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (1, 0, {"unreadable_file": 1})
    [detail] = lake_quarantine(workspace, "reviews")["detail"].to_list()
    assert "the closest, 'marketplace'" in detail
    assert "lacks review_creation_date;" in detail
    assert "the header has created, order_id, review_id, review_score" in detail


def test_a_layout_file_in_the_landing_folder_names_the_layout(workspace) -> None:
    # An own-format record read as Yelp has none of Yelp's fields.
    land(workspace, "reviews", DAY, "r.jsonl", jsonl({"review_id": "r-1", "platform": "x"}))
    (workspace.landing_dir / "reviews" / "_layout").write_text("yelp\n")
    m = ingest_one(workspace, "reviews", D)
    assert m.files[0].note == "read with the yelp layout"
    assert m.quarantined_by_reason == {"missing_id": 1}
    (workspace.landing_dir / "reviews" / "_layout").write_text("feedbackhub\n")
    m = ingest_one(workspace, "reviews", D)
    assert m.quarantined_by_reason == {"unreadable_file": 1}
    assert "names 'feedbackhub', which is not a reviews layout" in m.messages[0]


def _times(spec: Spec, values: list[str]) -> list[datetime | None]:
    frame = pl.DataFrame({"t": values}).select(layouts.occurred_at(spec, pl.col("t")))
    return frame["t"].to_list()


@pytest.mark.parametrize(
    ("spec", "text", "expected"),
    [
        (Spec(format="date"), "2026-10-05", datetime(2026, 10, 5, tzinfo=UTC)),
        # Midnight in Berlin (UTC+2 in summer time) is 22:00 UTC the day before.
        (
            Spec(format="date", zone="Europe/Berlin"),
            "2026-10-05",
            datetime(2026, 10, 4, 22, tzinfo=UTC),
        ),
        (Spec(format="epoch_s"), "1791187200", datetime(2026, 10, 5, 8, tzinfo=UTC)),
        (Spec(format="epoch_ms"), "1791187200250", datetime(2026, 10, 5, 8, 0, 0, 250000, UTC)),
        (Spec(format="epoch_us"), "1791187200000001", datetime(2026, 10, 5, 8, 0, 0, 1, UTC)),
        (
            Spec(format="rfc2822"),
            "Mon, 05 Oct 2026 10:00:00 +0200",
            datetime(2026, 10, 5, 8, tzinfo=UTC),
        ),
        (Spec(format="rfc2822"), "05 Oct 2026 08:00:00 GMT", datetime(2026, 10, 5, 8, tzinfo=UTC)),
        # Seconds are optional; EDT, an obsolete zone name, is UTC-4.
        (Spec(format="rfc2822"), "Mon, 5 Oct 2026 04:00 EDT", datetime(2026, 10, 5, 8, tzinfo=UTC)),
        (Spec(format="rfc2822"), "5 Oct 2026 08:00 +0000", datetime(2026, 10, 5, 8, tzinfo=UTC)),
        (
            Spec(format="%d/%m/%Y %H:%M", zone="America/New_York"),
            "05/10/2026 04:00",
            datetime(2026, 10, 5, 8, tzinfo=UTC),
        ),
        (Spec(zone="Asia/Tokyo"), "2026-10-05 17:00:00", datetime(2026, 10, 5, 8, tzinfo=UTC)),
        # An offset in the value wins over the zone.
        (Spec(zone="Asia/Tokyo"), "2026-10-05T08:00:00Z", datetime(2026, 10, 5, 8, tzinfo=UTC)),
        # 02:30 does not exist in Berlin on the night clocks go forward.
        (Spec(zone="Europe/Berlin"), "2026-03-29 02:30:00", None),
        (Spec(format="epoch_ms"), "soon", None),
    ],
)
def test_timestamp_formats_and_zones(spec: Spec, text: str, expected: datetime | None) -> None:
    assert _times(spec, [text]) == [expected]


def test_ratings_on_other_scales_and_in_words() -> None:
    ten = Spec(scale=10)
    values = pl.DataFrame({"r": [str(i) for i in range(1, 11)]}).select(
        layouts.scaled(ten, layouts.rating_value(ten, pl.col("r")))
    )
    assert values["r"].to_list() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    stars = Spec(stars=True)
    words = [
        "FIVE",
        "4.0 out of 5 stars",
        "5 stars",
        "★★★☆☆",
        "3",
        "great",
        "STAR_RATING_UNSPECIFIED",
    ]
    read = pl.DataFrame({"r": words}).select(layouts.rating_value(stars, pl.col("r")))
    assert read["r"].to_list() == [5, 4, 5, 3, 3, None, None]


def test_a_wrong_layout_is_named_with_its_fault(tmp_path: Path) -> None:
    base = {"name": "shop", "required": ["id"], "fields": {"id": "id", "platform": "p"}}
    cases = [
        (
            {
                **base,
                "fields": {**base["fields"], "occurred_at": {"column": "t", "zone": "Mars/Base"}},
            },
            "zone 'Mars/Base'",
        ),
        (
            {**base, "fields": {**base["fields"], "occurred_at": "t", "stars": "s"}},
            "stars is not a reviews field",
        ),
        ({**base, "fields": {"id": "id", "occurred_at": "t"}}, "must map platform"),
        (
            {
                **base,
                "fields": {**base["fields"], "occurred_at": {"column": "t", "format": "julian"}},
            },
            "format 'julian'",
        ),
        (
            {**base, "name": "other", "fields": {**base["fields"], "occurred_at": "t"}},
            "must be its file name",
        ),
        (
            {**base, "identity": "always", "fields": {**base["fields"], "occurred_at": "t"}},
            "identity must be required or optional, not 'always'",
        ),
        (
            {
                **base,
                "fields": {
                    **base["fields"],
                    "occurred_at": "t",
                    "email": {"column": "e", "default": "x"},
                },
            },
            "only a column that is not an identity may have a default",
        ),
        (
            {
                **base,
                "fields": {
                    **base["fields"],
                    "occurred_at": "t",
                    "title": {"value": "a", "list": "true"},
                },
            },
            "true only for a column",
        ),
    ]
    for raw, fault in cases:
        with pytest.raises(LayoutError, match=fault.replace("(", r"\(")):
            layouts._layout("reviews", tmp_path / "shop.yaml", raw)


def test_every_shipped_layout_loads() -> None:
    names = {s: {x.name for x in layouts.layouts(s)} for s in ("reviews", "social")}
    assert names == {
        "reviews": {
            "cjm",
            "marketplace",
            "trustpilot",
            "google_business_profile",
            "yelp",
            "bazaarvoice",
            "amazon",
            "yotpo",
        },
        "social": {"cjm", "brandwatch", "meltwater", "sprout_social", "talkwalker"},
    }


def test_the_readme_example_layout_reads_its_export(workspace, tmp_path, monkeypatch) -> None:
    """A user adds a layout without code: the README's example, as written there."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = readme.split("# transforms/layouts/reviews/shop_reviews.yaml\n", 1)[1]
    example = example.split("```", 1)[0]
    folder = tmp_path / "layouts" / "reviews"
    folder.mkdir(parents=True)
    (folder / "shop_reviews.yaml").write_text(example)
    monkeypatch.setattr(layouts, "LAYOUT_DIR", tmp_path / "layouts")
    layouts.layouts.cache_clear()
    try:
        land(
            workspace,
            "reviews",
            DAY,
            "widget.csv",
            "Review No,Customer,Score (1-10),Comment,Posted\n"
            "17,cust-9,7,Comfortable,05/10/2026 09:30\n"
            "18,cust-9,11,Too small,05/10/2026 09:45\n",
        )
        m = ingest_one(workspace, "reviews", D)
    finally:
        layouts.layouts.cache_clear()
    assert (m.read, m.accepted, m.quarantined_by_reason) == (2, 1, {"rating_out_of_range": 1})
    [row] = lake_events(workspace, "reviews").iter_rows(named=True)
    # 7 of 10 is 4 of 5; 09:30 in Lisbon (UTC+1 in summer time) is 08:30 UTC.
    assert (row["native_id"], row["user_id"], row["rating"], row["platform"]) == (
        "17",
        "cust-9",
        4,
        "shop",
    )
    assert row["occurred_at"] == datetime(2026, 10, 5, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize("indent", [2, 4])
def test_a_json_document_picks_its_layout_by_its_first_record(workspace, indent) -> None:
    # A vendor's API page saved as it came: a pretty-printed array of records.
    reviews = [
        {
            "id": 7001,
            "score": 4,
            "content": "Fits well",
            "created_at": "2026-10-05T06:00:00Z",
            "email": "noa@mail.example",
        },
        {
            "id": 7002,
            "score": 2,
            "content": "Too thin",
            "created_at": "2026-10-05T07:00:00Z",
            "email": "eli@mail.example",
        },
    ]
    land(workspace, "reviews", DAY, "page-1.jsonl", json.dumps(reviews, indent=indent))
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted, m.quarantined) == (2, 2, 0)
    assert "read with the yotpo layout" in m.files[0].note
    events = lake_events(workspace, "reviews").sort("native_id")
    assert events["native_id"].to_list() == ["7001", "7002"]
    assert events["rating"].to_list() == [4, 2]


def _one_line_array(records: list[dict]) -> str:
    return json.dumps(records)


def _pretty_array(records: list[dict]) -> str:
    return json.dumps(records, indent=2) + "\n"


@pytest.mark.parametrize("shape", [_one_line_array, _pretty_array])
@pytest.mark.parametrize("name", ["reviews.json", "reviews.JSON.gz", "reviews"])
def test_a_json_array_file_of_any_name_lands_each_record(workspace, shape, name) -> None:
    # An API page saved as .json (an array on one line, or pretty-printed), gzipped or
    # named without an extension: each element is a review, none is lost or merged.
    records = [
        {
            "id": 8000 + n,
            "score": n,
            "content": f"text {n}",
            "created_at": "2026-10-05T06:00:00Z",
            "email": f"buyer{n}@mail.example",
        }
        for n in (1, 3, 5)
    ]
    body = shape(records).encode()
    land(workspace, "reviews", DAY, name, gzip.compress(body) if name.endswith("gz") else body)
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted, m.quarantined, m.skipped) == (3, 3, 0, [])
    events = lake_events(workspace, "reviews").sort("native_id")
    assert events["native_id"].to_list() == ["8001", "8003", "8005"]
    assert events["rating"].to_list() == [1, 3, 5]
    assert events["email_sha256"].to_list() == [
        sha(f"test-saltbuyer{n}@mail.example") for n in (1, 3, 5)
    ]


def test_a_one_line_array_keeps_each_bad_element_apart(workspace) -> None:
    # One element of the array is broken: it alone is quarantined, under the line of
    # the array, and the others land.
    at = "2026-10-05T06:00:00Z"
    records = [
        {"id": 9001, "score": 4, "content": "ok", "created_at": at, "email": "a@mail.example"},
        {"id": 9002, "score": 9, "content": "ok", "created_at": at, "email": "b@mail.example"},
        {"id": 9003, "score": 2, "content": "no", "created_at": at, "email": "c@mail.example"},
    ]
    land(workspace, "reviews", DAY, "page.json", json.dumps(records))
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (3, 2, {"rating_out_of_range": 1})
    assert sorted(lake_events(workspace, "reviews")["native_id"]) == ["9001", "9003"]
    [bad] = lake_quarantine(workspace, "reviews").iter_rows(named=True)
    assert (bad["native_id"], bad["source_line"]) == ("9002", 1)


def test_api_response_pages_are_read_record_by_record(workspace) -> None:
    # Pages of the vendors' list endpoints saved as they came: the records sit in a list
    # of the page beside its paging fields. One page a line, or one pretty-printed page.
    google_page = {
        "reviews": [
            {
                "reviewId": "g-p1",
                "reviewer": {"displayName": "Ines"},
                "starRating": "FOUR",
                "createTime": "2026-10-05T09:00:00Z",
            },
            {
                "reviewId": "g-p2",
                "reviewer": {"displayName": "Tom"},
                "starRating": "ONE",
                "createTime": "2026-10-05T09:10:00Z",
            },
        ],
        "averageRating": 2.5,
        "totalReviewCount": 3,
        "nextPageToken": "tok-2",
    }
    last_page = {
        "reviews": [
            {
                "reviewId": "g-p3",
                "reviewer": {"displayName": "Ada"},
                "starRating": "SIX",
                "createTime": "2026-10-05T09:20:00Z",
            }
        ],
        "averageRating": 2.5,
        "totalReviewCount": 3,
    }
    empty_page = {"averageRating": 2.5, "totalReviewCount": 3, "reviews": []}
    land(workspace, "reviews", DAY, "google.jsonl", jsonl(google_page, last_page, empty_page))
    bazaarvoice_page = {
        "Limit": 2,
        "Offset": 0,
        "TotalResults": 1,
        "HasErrors": False,
        "Results": [
            {
                "Id": "bv-p1",
                "AuthorId": "cust-8",
                "Rating": 5,
                "SubmissionTime": "2026-10-05T10:00:00.000+00:00",
            }
        ],
    }
    land(workspace, "reviews", DAY, "bv-page.json", json.dumps(bazaarvoice_page, indent=2))
    m = ingest_one(workspace, "reviews", D)
    # Four records in three pages (and one empty page): the pages are not records.
    assert (m.read, m.accepted, m.quarantined_by_reason) == (4, 3, {"rating_out_of_range": 1})
    notes = {f.file.rsplit("/", 1)[-1]: f.note for f in m.files}
    assert notes == {
        "bv-page.json": "read as one JSON document, not line by line; read with the "
        "bazaarvoice layout; read as pages of an API's response (the records in 'Results')",
        "google.jsonl": "read with the google_business_profile layout; read as pages of an "
        "API's response (the records in 'reviews')",
    }
    events = by_id(lake_events(workspace, "reviews"))
    assert {k: v["rating"] for k, v in events.items()} == {"g-p1": 4, "g-p2": 1, "bv-p1": 5}
    assert {k: v["source_line"] for k, v in events.items()} == {"g-p1": 1, "g-p2": 1, "bv-p1": 1}
    assert events["bv-p1"]["user_id"] == "cust-8"
    [bad] = lake_quarantine(workspace, "reviews").iter_rows(named=True)
    assert (bad["native_id"], bad["source_line"]) == ("g-p3", 2)


def test_a_page_is_held_to_the_record_limit_record_by_record(workspace) -> None:
    # A page far over CJM_MAX_LINE_BYTES is read; only its one oversized record is not.
    mentions = [
        {
            "resourceId": f"bw-{n}",
            "date": "2026-10-05T07:45:10.000+0000",
            "author": f"fan{n}",
            "fullText": "x" * 600,
            "pageType": "twitter",
            "threadEntryType": "post",
        }
        for n in range(40)
    ]
    mentions[7]["fullText"] = "y" * 5000
    page = {"resultsTotal": 40, "resultsPage": 0, "resultsPageSize": 40, "results": mentions}
    land(workspace, "social", DAY, "mentions.json", json.dumps(page))
    settings = workspace.model_copy(update={"max_line_bytes": 4096})
    m = ingest_one(settings, "social", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (40, 39, {"record_too_large": 1})
    [bad] = lake_quarantine(settings, "social").iter_rows(named=True)
    assert bad["source_line"] == 1 and bad["reason"] == "record_too_large"
