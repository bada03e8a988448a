"""Each adapter on hand-written native records: mapping, every malformation, counts."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from cjm_pipeline.ingest import ingest_one
from tests.conftest import lake_events, lake_quarantine, land, segment_call

DAY = "2026-10-05"
D = date(2026, 10, 5)


def test_web_good_records_map_to_the_canonical_event(workspace) -> None:
    lines = [
        segment_call(),
        segment_call(
            type="identify",
            event=None,
            messageId="m-2",
            userId="u-7",
            traits={"email": " Ana.Silva@Mailbox.Example "},
        ),
        # a skewed device: no timestamp, client clock 2 h fast
        segment_call(
            messageId="m-3",
            event="Order Completed",
            timestamp=None,
            originalTimestamp="2026-10-05T12:00:00.000Z",
            sentAt="2026-10-05T12:00:01.000Z",
            receivedAt="2026-10-05T10:00:01.250Z",
            properties={"order_id": "o-1", "revenue": 120.0},
        ),
        segment_call(
            type="page",
            event=None,
            messageId="m-4",
            context={"page": {"url": "https://shop.example/blog?x=1"}},
        ),
    ]
    land(workspace, "web", DAY, "part-1.jsonl", "\n".join(lines) + "\n")
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.quarantined, m.duplicates) == (4, 4, 0, 0)
    events = lake_events(workspace, "web").sort("native_id")
    first = events.row(0, named=True)
    assert first["event_type"] == "product_view"
    assert first["event_id"] == hashlib.sha256(b"web:m-1").hexdigest()[:32]
    assert (first["utm_source"], first["utm_medium"], first["utm_campaign"]) == (
        "google",
        "cpc",
        "fall",
    )
    assert first["path"] == "/p/9"
    assert json.loads(first["properties"]) == {"product_id": "sku-9", "price": 19.5}
    identify = events.row(1, named=True)
    assert identify["event_type"] == "identify"
    assert (
        identify["email_sha256"]
        == hashlib.sha256(b"test-saltana.silva@mailbox.example").hexdigest()
    )
    order = events.row(2, named=True)
    assert order["occurred_at"].isoformat() == "2026-10-05T10:00:00.250000+00:00"
    assert (order["order_id"], order["revenue"]) == ("o-1", 120.0)
    assert events.row(3, named=True)["path"] == "/blog"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"type":"track","event":"Product Viewed","messageId":"m-9","anonym', "invalid_json"),
        (segment_call(messageId=None), "missing_id"),
        (segment_call(anonymousId=None), "missing_identity"),
        (segment_call(timestamp="05/10/2026"), "invalid_timestamp"),
        (segment_call(timestamp="2031-01-01T00:00:00Z"), "future_timestamp"),
        (segment_call(timestamp="2025-01-01T00:00:00Z"), "stale_timestamp"),
        (segment_call(event=None), "unknown_call"),
        (segment_call(event="  "), "unknown_call"),
        (segment_call(type="subscribe", event=None), "unknown_call"),
        (segment_call(context="mobile"), "wrong_type"),
        (segment_call(properties={"revenue": "lots"}), "wrong_type"),
        ('"a string"', "wrong_type"),
        # An array stands for its elements: one that is not an object is wrong_type.
        ("[7]", "wrong_type"),
    ],
)
def test_web_malformed_records_are_quarantined_with_their_reason(workspace, line, reason) -> None:
    land(workspace, "web", DAY, "part-1.jsonl", segment_call(messageId="good") + "\n" + line + "\n")
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.quarantined) == (2, 1, 1)
    q = lake_quarantine(workspace, "web").row(0, named=True)
    assert q["reason"] == reason
    assert q["source_line"] == 2
    assert q["detail"].startswith("web/2026-10-05/part-1.jsonl:2")


def test_non_utf8_line_is_quarantined_and_the_rest_lands(workspace) -> None:
    bad = segment_call(messageId="m-bad").replace("sku-9", "caf\u00e9").encode("latin-1")
    land(
        workspace,
        "web",
        DAY,
        "part-1.jsonl",
        segment_call().encode() + b"\n" + bad + b"\n" + segment_call(messageId="m-3").encode(),
    )
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (3, 2, {"invalid_utf8": 1})


def test_email_sendgrid_events(workspace) -> None:
    def ev(**f):
        base = {
            "email": "kai.kim@inbox.example",
            "timestamp": 1791187200,
            "event": "click",
            "sg_event_id": "e-1",
            "sg_message_id": "msg.filter01",
            "category": ["newsletter", "fall"],
            "url": "https://shop.example/landing?utm_source=newsletter&utm_medium=email&utm_campaign=fall",
            "marketing_campaign_name": "Fall letter",
        }
        base.update(f)
        return {k: v for k, v in base.items() if v is not None}

    batch = [
        ev(sg_event_id="e-2", event="delivered", url=None),
        ev(sg_event_id="e-3", event="open", category="promo"),
    ]
    lines = [
        json.dumps(ev()),
        json.dumps(batch),  # a whole webhook POST body on one line
        json.dumps(
            ev(sg_event_id="e-4", event="bounce", reason="550 <kai.kim@inbox.example> unknown")
        ),
        json.dumps(ev(sg_event_id="e-5", event="opened_twice")),
        json.dumps(ev(sg_event_id="e-6", timestamp="yesterday")),
        # no sg_event_id, and no timestamp or message id to derive one from
        json.dumps(ev(sg_event_id=None, sg_message_id=None, timestamp=None)),
        json.dumps(ev(sg_event_id="e-8", email=None)),
        json.dumps(ev(sg_event_id="e-9", category={"a": 1})),
    ]
    land(workspace, "email", DAY, "sendgrid.json", "\n".join(lines))
    m = ingest_one(workspace, "email", D)
    assert m.read == 9 and m.accepted == 4
    assert m.quarantined_by_reason == {
        "invalid_timestamp": 1,
        "missing_id": 1,
        "missing_identity": 1,
        "unknown_event": 1,
        "wrong_type": 1,
    }
    events = lake_events(workspace, "email").sort("native_id")
    assert events["event_type"].to_list() == [
        "email_clicked",
        "email_delivered",
        "email_opened",
        "email_bounced",
    ]
    click = events.row(0, named=True)
    assert (click["utm_campaign"], click["campaign"], click["path"]) == ("fall", "fall", "/landing")
    assert click["occurred_at"] == datetime.fromtimestamp(1791187200, UTC)
    assert json.loads(events.row(2, named=True)["properties"])["category"] == ["promo"]
    assert "kai.kim" not in events.row(3, named=True)["properties"]


SOCIAL_HEADER = (
    "mention_id,platform,author_handle,created_at,kind,text,url,campaign,in_reply_to,sentiment\n"
)


def test_social_csv_export(workspace) -> None:
    rows = (
        "x_1,x,@Trail_Fan,2026-10-05T09:00:00Z,mention,"
        '"Loving @northwind, ask @friend_9 or\nmail me at a@b.example",,,,positive\n'
        "ig_2,instagram,trail_fan,2026-10-05 10:00:00,ad_click,,https://shop.example/l?utm_source=instagram&utm_medium=paid_social&utm_campaign=trail,trail,,\n"
        "ig_3,instagram,someone,2026-10-05T10:00:00Z,like,,,,,\n"
        "ig_4,instagram,,2026-10-05T10:00:00Z,comment,hi,,,post_1,\n"
        "ig_5,instagram,someone,2026-10-05T10:00:00Z,comment,too,many,fields,here,x,y\n"
    )
    land(workspace, "social", DAY, "mentions.csv", SOCIAL_HEADER + rows)
    m = ingest_one(workspace, "social", D)
    assert (m.read, m.accepted) == (5, 2)
    assert m.quarantined_by_reason == {"invalid_csv": 1, "missing_identity": 1, "unknown_event": 1}
    q = lake_quarantine(workspace, "social").sort("source_line")
    assert q["source_line"].to_list() == [5, 6, 7]  # the first record spans lines 2-3
    events = lake_events(workspace, "social").sort("native_id")
    mention, ad = events.row(1, named=True), events.row(0, named=True)
    assert mention["text"] == "Loving @[handle], ask @[handle] or\nmail me at [email]"
    assert mention["social_handle_sha256"] == hashlib.sha256(b"test-saltx:trail_fan").hexdigest()
    assert (ad["event_type"], ad["channel"], ad["utm_medium"]) == (
        "social_ad_click",
        "paid_social",
        "paid_social",
    )
    assert ad["social_handle_sha256"] == hashlib.sha256(b"test-saltinstagram:trail_fan").hexdigest()


def test_reviews_jsonl_and_csv(workspace) -> None:
    def rv(**f):
        base = {
            "review_id": "r-1",
            "platform": "Trustpilot",
            "reviewer_email": "mia@post.example",
            "rating": 4,
            "title": "Good",
            "text": "Solid boots",
            "language": "EN",
            "created_at": "2026-10-05T07:00:00Z",
            "order_id": "o-1",
        }
        base.update(f)
        return json.dumps(base)

    lines = [
        rv(),
        rv(review_id="r-2", rating=7),
        rv(review_id="r-3", rating="five"),
        rv(review_id="r-4", rating=None),
        rv(review_id="r-5", reviewer_email=None, order_id=None),
        rv(review_id="r-6", rating=3.5),
    ]
    land(workspace, "reviews", DAY, "reviews.jsonl", "\n".join(lines))
    land(
        workspace,
        "reviews",
        DAY,
        "reviews.csv",
        "review_id,platform,reviewer_handle,rating,created_at,order_id,recommended\n"
        "r-7,google,Mia P.,5,2026-10-05T06:00:00Z,,\n"
        # A marketplace review: keyed by its order alone; the buyer says they recommend.
        "r-8,marketplace,,5,2026-10-05T06:30:00Z,o-9, Yes\n"
        "r-9,marketplace,,2,2026-10-05T06:40:00Z,o-10,0\n"
        "r-10,marketplace,,4,2026-10-05T06:50:00Z,o-11,maybe\n",
    )
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted) == (10, 4)
    assert m.quarantined_by_reason == {
        "missing_identity": 1,
        "rating_out_of_range": 3,
        "wrong_type": 2,
    }
    events = lake_events(workspace, "reviews").sort("native_id")
    assert events["native_id"].to_list() == ["r-1", "r-7", "r-8", "r-9"]
    assert events["rating"].to_list() == [4, 5, 5, 2]
    assert events["platform"].to_list() == ["trustpilot", "google", "marketplace", "marketplace"]
    assert events["order_id"].to_list() == ["o-1", None, "o-9", "o-10"]
    assert json.loads(events["properties"][0]) == {"title": "Good", "language": "en"}
    assert [json.loads(p).get("recommended") for p in events["properties"]] == [
        None,
        None,
        True,
        False,
    ]
    q = lake_quarantine(workspace, "reviews")
    assert not q["raw_redacted"].str.contains("mia@post.example").any()


def test_crm_rows_become_hashed_identity_edges(workspace) -> None:
    land(
        workspace,
        "crm",
        DAY,
        "customers.csv",
        "user_id,email,social_handles,created_at\n"
        "u-1,Zoe@Mail.Example,instagram:@zoe_k;x:@zk,2026-01-01\n"
        "u-2,zoe2@mail.example,,2026-01-01\n"
        ",nobody@mail.example,,2026-01-01\n",
    )
    m = ingest_one(workspace, "crm", D)
    assert (m.read, m.accepted, m.quarantined) == (3, 2, 1)
    crm = pl.read_parquet(workspace.crm_partition(DAY) / "customers.parquet")
    assert crm.height == 3  # two handles for u-1, none for u-2
    assert set(crm["social_handle_sha256"].drop_nulls()) == {
        hashlib.sha256(b"test-saltinstagram:zoe_k").hexdigest(),
        hashlib.sha256(b"test-saltx:zk").hexdigest(),
    }
    q = lake_quarantine(workspace, "crm")
    assert "nobody@" not in q["raw_redacted"][0]


def test_gzip_files_are_read_and_a_corrupt_one_is_quarantined_whole(workspace) -> None:
    land(workspace, "web", DAY, "a.jsonl.gz", gzip.compress((segment_call() + "\n").encode()))
    land(
        workspace,
        "web",
        DAY,
        "b.jsonl.gz",
        gzip.compress((segment_call(messageId="m-2") + "\n").encode())[:-12],
    )
    land(workspace, "web", DAY, "c.jsonl", "")
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (2, 1, {"unreadable_file": 1})
    q = lake_quarantine(workspace, "web").row(0, named=True)
    assert q["source_file"] == "web/2026-10-05/b.jsonl.gz" and q["source_line"] is None
    assert any("c.jsonl is empty" in msg for msg in m.messages)


def test_missing_landing_folder_is_a_message_not_a_crash(workspace) -> None:
    m = ingest_one(workspace, "web", D)
    assert m.status == "missing" and m.read == 0
    assert "no landing folder" in m.messages[0]


def test_duplicates_within_a_file_and_from_an_earlier_day(workspace) -> None:
    land(
        workspace,
        "web",
        "2026-10-04",
        "p.jsonl",
        segment_call(messageId="m-1", timestamp="2026-10-04T08:00:00Z"),
    )
    land(
        workspace,
        "web",
        DAY,
        "p.jsonl",
        "\n".join(
            [
                segment_call(messageId="m-1", timestamp="2026-10-04T08:00:00Z"),
                segment_call(messageId="m-2"),
                segment_call(messageId="m-2"),
            ]
        ),
    )
    ingest_one(workspace, "web", D - timedelta(days=1))
    m = ingest_one(workspace, "web", D)
    assert (m.read, m.accepted, m.duplicates_in_batch, m.duplicates_other_dates) == (3, 1, 1, 1)


def test_a_quarantined_record_names_every_rule_it_breaks(workspace) -> None:
    land(
        workspace,
        "reviews",
        DAY,
        "reviews.csv",
        "review_id,platform,reviewer_email,rating,created_at\n"
        ",trustpilot,,9,last tuesday\n"
        "r-2,trustpilot,mia@post.example,4,last tuesday\n",
    )
    m = ingest_one(workspace, "reviews", D)
    assert m.quarantined_by_reason == {"missing_id": 1, "invalid_timestamp": 1}
    details = lake_quarantine(workspace, "reviews").sort("source_line")["detail"].to_list()
    # The first broken rule is the reason; the detail goes on to the others, in order.
    first, rest = details[0].split("; also ", 1)
    assert "review_id" in first
    assert [part.split(" (", 1)[0] for part in rest.split("; ")] == [
        "missing_identity",
        "rating_out_of_range",
        "invalid_timestamp",
    ]
    assert "last tuesday" in rest
    assert "; also" not in details[1]
