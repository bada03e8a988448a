"""CSV exports read in the dialect they are written in: tab-, semicolon- and
pipe-separated files, decimal commas in the number columns of semicolon and tab files,
a header no delimiter splits better than the comma, and quoted fields holding the other
delimiters. The rows are written by hand here; the expected values are worked out by
hand, not by the reader."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from cjm_pipeline.ingest import ingest_one
from tests.conftest import lake_events, lake_quarantine, land
from transforms import crm, orders, reviews
from transforms.readers import csv_delimiter

DAY = "2026-10-05"
D = date(2026, 10, 5)
SALT = "test-salt"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {row["native_id"]: row for row in rows}


AMAZON_COLUMNS = [
    "marketplace",
    "customer_id",
    "review_id",
    "product_id",
    "product_parent",
    "product_title",
    "product_category",
    "star_rating",
    "helpful_votes",
    "total_votes",
    "vine",
    "verified_purchase",
    "review_headline",
    "review_body",
    "review_date",
]


def test_amazon_reviews_tab_separated_load_without_conversion(workspace) -> None:
    header = "\t".join(AMAZON_COLUMNS) + "\n"
    us = header + (
        # Commas and semicolons in a tab-separated file are text.
        "US\t52001\tRT7QQA\tB0TENT01\t810200\tDome tent, 2 person\tOutdoors\t5\t3\t3\tN\tY\t"
        "Dry all night\tHeavy rain; no leaks, easy pitch\t2026-10-04\n"
        "US\t52002\tRT7QQB\tB0TENT01\t810200\tDome tent, 2 person\tOutdoors\t2\t0\t1\tN\tN\t"
        "Poles bent\tOne pole bent on day two\t2026-10-05\n"
    )
    # An object store's key with no extension, tab-separated: told by its content.
    other = header + (
        "UK\t52003\tRT7QQC\tB0LAMP02\t810300\tHead lamp\tOutdoors\t4\t1\t1\tN\tY\t"
        "Bright\tLasts a weekend\t2026-10-05\n"
    )
    land(workspace, "reviews", DAY, "amazon_reviews_us.tsv.gz", gzip.compress(us.encode()))
    land(workspace, "reviews", DAY, "part-00000", other)

    m = ingest_one(workspace, "reviews", D)

    assert m.reconciles()
    assert (m.read, m.accepted, m.quarantined) == (3, 3, 0)
    assert m.skipped == []
    notes = {f.file: f.note for f in m.files}
    assert notes == {
        "reviews/2026-10-05/amazon_reviews_us.tsv.gz": "read as tab-separated; "
        "read with the amazon layout",
        "reviews/2026-10-05/part-00000": "read as tab-separated; read with the amazon layout",
    }
    events = by_id(lake_events(workspace, "reviews").to_dicts())
    assert sorted(events) == ["RT7QQA", "RT7QQB", "RT7QQC"]
    first = events["RT7QQA"]
    assert (first["rating"], first["platform"], first["event_type"]) == (
        5,
        "amazon",
        "review_posted",
    )
    assert first["text"] == "Heavy rain; no leaks, easy pitch"
    assert json.loads(first["properties"]) == {"title": "Dry all night"}
    assert first["social_handle_sha256"] == sha(f"{SALT}amazon:52001")
    assert first["occurred_at"] == datetime(2026, 10, 4, tzinfo=UTC)
    assert (events["RT7QQB"]["rating"], events["RT7QQC"]["rating"]) == (2, 4)


def test_semicolon_reviews_with_decimal_comma_ratings(workspace) -> None:
    land(
        workspace,
        "reviews",
        DAY,
        "bewertungen.csv",
        "review_id;platform;reviewer_handle;rating;title;text;created_at\n"
        # A whole rating written with a decimal comma is that number.
        "de-1;trusted_shops;@lena_k;4,0;Gut;Gut, aber teuer;2026-10-05T08:00:00Z\n"
        'de-2;trusted_shops;@jonas_b;5;Super;"Passt; sitzt gut";2026-10-05T09:00:00Z\n'
        # A half star is no rating on a 1-5 scale of whole stars: out of range, not a
        # value that cannot be read.
        "de-3;trusted_shops;@mia_s;4,5;Fast;Fast perfekt;2026-10-05T10:00:00Z\n"
        'de-4;trusted_shops;@tim_r;1,0;Nein;"Sagte ""nie wieder""";2026-10-05T11:00:00Z\n',
    )

    m = ingest_one(workspace, "reviews", D)

    assert m.reconciles()
    assert (m.read, m.accepted) == (4, 3)
    assert m.quarantined_by_reason == {"rating_out_of_range": 1}
    assert m.files[0].note == (
        "read as semicolon-separated; decimal commas read as decimal points in rating"
    )
    events = by_id(lake_events(workspace, "reviews").to_dicts())
    assert {k: e["rating"] for k, e in events.items()} == {"de-1": 4, "de-2": 5, "de-4": 1}
    assert events["de-1"]["text"] == "Gut, aber teuer"
    assert events["de-2"]["text"] == "Passt; sitzt gut"
    assert events["de-4"]["text"] == 'Sagte "nie wieder"'
    [rejected] = lake_quarantine(workspace, "reviews").to_dicts()
    assert (rejected["native_id"], rejected["source_line"]) == ("de-3", 4)
    # The quarantined record keeps the value as exported, in its own dialect.
    assert ";4,5;" in rejected["raw_redacted"]


def test_decimal_commas_are_left_alone_in_a_comma_file(workspace) -> None:
    land(
        workspace,
        "reviews",
        DAY,
        "reviews.csv",
        "review_id,platform,reviewer_handle,rating,created_at\n"
        'en-1,trustpilot,@amy,"4,0",2026-10-05T08:00:00Z\n'
        "en-2,trustpilot,@bob,4,2026-10-05T08:00:00Z\n",
    )
    m = ingest_one(workspace, "reviews", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (2, 1, {"wrong_type": 1})
    assert m.files[0].note == ""


def test_a_column_with_decimal_points_keeps_its_commas_as_wrong(workspace) -> None:
    # A semicolon file whose totals use the decimal point: 1,250 is not a decimal comma
    # there (it may be a thousands separator), so it is not read as 1.25.
    land(
        workspace,
        "orders",
        DAY,
        "orders.csv",
        "order_id;customer_id;purchased_at;total\n"
        "o-1;c-1;2026-10-05T08:00:00Z;12.50\n"
        "o-2;c-2;2026-10-05T08:00:00Z;1,250\n",
    )
    m = ingest_one(workspace, "orders", D)
    assert (m.read, m.accepted, m.quarantined_by_reason) == (2, 1, {"invalid_amount": 1})
    assert m.files[0].note == "read as semicolon-separated"
    [event] = lake_events(workspace, "orders").to_dicts()
    assert event["revenue"] == pytest.approx(12.5)


def test_semicolon_orders_with_decimal_comma_totals(workspace) -> None:
    land(
        workspace,
        "orders",
        DAY,
        "bestellungen.csv",
        "order_id;customer_id;status;purchased_at;total_price;currency\n"
        "b-1;k-1;paid;2026-10-05T08:00:00Z;1234,50;EUR\n"
        "b-2;k-2;paid;2026-10-05T09:00:00Z;80;EUR\n",
    )
    m = ingest_one(workspace, "orders", D)
    assert m.reconciles()
    assert (m.read, m.accepted, m.quarantined) == (2, 2, 0)
    assert m.files[0].note == (
        "read as semicolon-separated; decimal commas read as decimal points in total_price"
    )
    events = by_id(lake_events(workspace, "orders").to_dicts())
    assert events["b-1:order_completed"]["revenue"] == pytest.approx(1234.5)
    assert events["b-2:order_completed"]["revenue"] == pytest.approx(80.0)


def test_thousands_commas_are_never_read_as_decimals(workspace) -> None:
    # 1,250 may group thousands or be a decimal: with no value that can only be a
    # decimal comma, the totals are not converted and stay invalid amounts.
    land(
        workspace,
        "orders",
        DAY,
        "orders.tsv",
        "order_id\tcustomer_id\tstatus\tpurchased_at\ttotal\n"
        "t-1\tk-1\tpaid\t2026-10-05T08:00:00Z\t1,250\n"
        "t-2\tk-2\tpaid\t2026-10-05T09:00:00Z\t89\n"
        "t-3\tk-3\tpaid\t2026-10-05T10:00:00Z\t2,400\n",
    )
    m = ingest_one(workspace, "orders", D)
    assert m.reconciles()
    assert (m.read, m.accepted) == (3, 1)
    assert m.quarantined_by_reason == {"invalid_amount": 2}
    assert m.files[0].note == "read as tab-separated"
    events = by_id(lake_events(workspace, "orders").to_dicts())
    assert events["t-2:order_completed"]["revenue"] == pytest.approx(89.0)


def test_pipe_separated_orders(workspace) -> None:
    land(
        workspace,
        "orders",
        DAY,
        "orders.csv",
        "order_id|email|status|purchased_at|delivered_at|total|platform\n"
        "p-1|Ana.Silva@Shop.Example|delivered|2026-10-01T09:00:00Z|2026-10-04T15:00:00Z|80.00|"
        # A quoted field holding a pipe and a comma.
        '"Shop | EU, north"\n'
        "p-2|beto@shop.example|processing|2026-10-05T07:30:00Z||19.9|web\n"
        # A decimal comma in a pipe file is not read: the rule is for semicolon and tab
        # files only.
        "p-3|caio@shop.example|processing|2026-10-05T07:40:00Z||12,5|web\n",
    )

    m = ingest_one(workspace, "orders", D)

    assert m.reconciles()
    assert (m.read, m.accepted, m.quarantined_by_reason) == (3, 2, {"invalid_amount": 1})
    assert m.files[0].note == "read as pipe-separated"
    events = by_id(lake_events(workspace, "orders").to_dicts())
    assert sorted(events) == ["p-1:order_completed", "p-1:order_delivered", "p-2:order_completed"]
    completed = events["p-1:order_completed"]
    assert completed["revenue"] == pytest.approx(80.0)
    assert completed["email_sha256"] == sha(f"{SALT}ana.silva@shop.example")
    assert completed["platform"] == "shop | eu, north"
    assert events["p-1:order_delivered"]["occurred_at"] == datetime(2026, 10, 4, 15, tzinfo=UTC)
    assert events["p-2:order_completed"]["revenue"] == pytest.approx(19.9)


def test_semicolon_crm_export_with_quoted_handle_lists(workspace) -> None:
    land(
        workspace,
        "crm",
        DAY,
        "kunden.tsv",
        # A .tsv name, but semicolons inside: the content says the delimiter.
        "user_id;email;social_handles;created_at\n"
        'u-1;lena@post.example;"instagram:@lena_k;tiktok:@lenak";2026-01-02\n'
        "u-2;jonas@post.example;;2026-02-03\n",
    )
    m = ingest_one(workspace, "crm", D)
    assert m.reconciles()
    assert (m.read, m.accepted, m.quarantined) == (2, 2, 0)
    assert m.files[0].note == "read as semicolon-separated"
    edges = lake_crm(workspace)
    handles = sorted(
        (row["user_id"], row["social_handle_sha256"]) for row in edges if row["user_id"] == "u-1"
    )
    assert handles == sorted(
        [("u-1", sha(f"{SALT}instagram:lena_k")), ("u-1", sha(f"{SALT}tiktok:lenak"))]
    )
    assert [row["email_sha256"] for row in edges if row["user_id"] == "u-2"] == [
        sha(f"{SALT}jonas@post.example")
    ]


def lake_crm(settings) -> list[dict]:
    files = list((settings.lake_dir / "crm_customers").rglob("*.parquet"))
    return pl.read_parquet(files, hive_partitioning=False).to_dicts()


def test_an_ambiguous_header_falls_back_to_comma(workspace) -> None:
    # user_id,email;created_at: the comma and the semicolon each find one known column
    # name, and the rows split evenly either way: a tie, so the comma.
    land(
        workspace,
        "crm",
        DAY,
        "customers.csv",
        "user_id,email;created_at\nu-1,zoe@mail.example;2026-01-02\n",
    )
    m = ingest_one(workspace, "crm", D)
    [count] = m.files
    assert (count.quarantined_whole, count.note) == ("unreadable_file", "")
    [whole] = lake_quarantine(workspace, "crm").to_dicts()
    assert (
        "(the header lacks the required column(s) email; "
        "the header has user_id, email;created_at)" in whole["detail"]
    )


@pytest.mark.parametrize(
    ("text", "columns", "expected"),
    [
        # One known column and nothing else: every delimiter finds it, so the comma.
        ("user_id\nu-1\n", crm.COLUMNS, ","),
        # The header splits into no known name at all: the comma.
        ("name;mail\nzoe;zoe@mail.example\n", crm.COLUMNS, ","),
        # A tie on the header, broken by the rows: only the semicolon splits them into
        # as many fields as the header.
        ("user_id,email;created_at\nu-1,x,y;2026-01-02\n", crm.COLUMNS, ";"),
        # More known names win over the rows' split.
        ("user_id\temail\nu-1,a\tb,c\n", crm.COLUMNS, "\t"),
        ("order_id|customer_id|purchased_at\n", orders.COLUMNS, "|"),
        # Quoted header cells holding another delimiter stay whole.
        ('"review_id";"rating";"text"\n"r;1";"5";"a,b|c"\n', reviews.COLUMNS, ";"),
    ],
)
def test_csv_delimiter(text: str, columns: list[str], expected: str) -> None:
    assert csv_delimiter(text, columns) == expected


def test_a_txt_file_is_read_by_its_content(workspace) -> None:
    land(
        workspace,
        "orders",
        DAY,
        "export.txt",
        "order_id\tcustomer_id\tpurchased_at\ttotal\nt-1\tc-1\t2026-10-05T08:00:00Z\t9,90\n",
    )
    # Prose with a semicolon is no CSV: listed, not read.
    land(workspace, "orders", DAY, "notes.txt", "called the shop; no reply\n")
    m = ingest_one(workspace, "orders", D)
    assert [(f.file, f.accepted, f.note) for f in m.files] == [
        (
            "orders/2026-10-05/export.txt",
            1,
            "read as tab-separated; decimal commas read as decimal points in total",
        )
    ]
    assert [s.entry for s in m.skipped] == ["notes.txt"]
    [event] = lake_events(workspace, "orders").to_dicts()
    assert event["revenue"] == pytest.approx(9.9)
