"""The marketplace profile: an orders and reviews export with the shares a real
marketplace shows, a snapshot per order on the day of its last change, and a truth
that matches the files. Expected values come from the files, read here."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from cjm_pipeline.generate import generate

START = date(2026, 6, 1)
DAYS = 120
STATUS_TIMES = ("purchased_at", "approved_at", "shipped_at", "delivered_at", "returned_at")


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("market")
    generate(root, 5000, START, DAYS, 11, progress=lambda _: None, profile="marketplace")
    return root


@pytest.fixture(scope="module")
def records(market: Path) -> pl.DataFrame:
    return pl.read_parquet(market / "truth" / "records" / "*.parquet")


def _lines(market: Path, source: str) -> dict[tuple[str, int], bytes]:
    """Every data line of a source's files by (file relative to landing, line)."""
    out = {}
    for path in sorted((market / "landing" / source).glob("*/*")):
        rel = path.relative_to(market / "landing").as_posix()
        for i, line in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
            if source == "reviews" and i == 1:
                continue
            out[(rel, i)] = line
    return out


def _good(market: Path, records: pl.DataFrame, source: str) -> list[tuple[str, bytes]]:
    """The (landing day, line) of each record the truth calls ok."""
    lines = _lines(market, source)
    ok = records.filter((pl.col("source") == source) & (pl.col("status") == "ok"))
    return [(f.split("/")[1], lines[(f, n)]) for f, n in ok.select("file", "line").iter_rows()]


@pytest.fixture(scope="module")
def orders(market: Path, records: pl.DataFrame) -> list[dict]:
    return [{**json.loads(line), "_day": day} for day, line in _good(market, records, "orders")]


@pytest.fixture(scope="module")
def reviews(market: Path, records: pl.DataFrame) -> list[dict]:
    header = (market / "landing" / "reviews").glob("*/reviews.csv").__next__()
    columns = header.read_text().splitlines()[0].split(",")
    out = []
    for day, line in _good(market, records, "reviews"):
        row = dict(zip(columns, next(csv.reader(io.StringIO(line.decode()))), strict=True))
        out.append({**row, "_day": day})
    return out


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate(tmp_path / name, 400, START, 20, seed, lambda _: None, "marketplace")
    a, b, c = (_digest(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c


def test_only_orders_and_reviews_are_exported(market: Path) -> None:
    sources = {p.name for p in (market / "landing").iterdir()}
    assert sources == {"orders", "reviews"}
    names = {p.name for p in (market / "landing").glob("*/*/*")}
    assert names == {"orders.jsonl", "reviews.csv"}


def test_each_order_is_a_snapshot_landed_on_its_last_change(orders: list[dict]) -> None:
    last_day = (START + timedelta(days=DAYS - 1)).isoformat()
    currencies = set()
    for o in orders:
        times = {k: _t(o[k]) for k in STATUS_TIMES if o.get(k)}
        assert o["platform"] == "marketplace"
        currencies.add(o["currency"])
        assert o["items"] and all(
            set(i) == {"product_id", "seller_id", "price", "freight", "quantity"}
            for i in o["items"]
        )
        assert START.isoformat() <= o["_day"] <= last_day
        assert o["_day"] >= max(times.values()).date().isoformat()
        status = o["status"]
        has = {k for k in STATUS_TIMES if o.get(k)}
        expected = {
            "processing": {"purchased_at"},
            "approved": {"purchased_at", "approved_at"},
            "shipped": {"purchased_at", "approved_at", "shipped_at"},
            "delivered": {"purchased_at", "approved_at", "shipped_at", "delivered_at"},
            "returned": set(STATUS_TIMES),
            "unavailable": {"purchased_at", "approved_at"},
        }.get(status)
        if status == "canceled":
            assert has <= {"purchased_at", "approved_at"}
        else:
            assert has == expected, (status, has)
        if status in ("processing", "approved", "shipped"):
            assert o["_day"] == last_day
        if status == "delivered":
            assert o["_day"] == o["delivered_at"][:10]
        assert sorted(times.values()) == [times[k] for k in STATUS_TIMES if k in times]
        # updated_at is the last status change: the cancellation of a canceled or
        # unavailable order (its canceled_at, after every other time), else its latest time.
        if status in ("canceled", "unavailable"):
            assert o["updated_at"] == o["canceled_at"]
            assert _t(o["canceled_at"]) > max(times.values())
        else:
            assert "canceled_at" not in o
            assert _t(o["updated_at"]) == max(times.values())
        assert o["_day"] >= o["updated_at"][:10]
    assert len(currencies) == 1 and currencies <= {"BRL", "EUR"}


def test_status_shares(orders: list[dict]) -> None:
    counts = Counter(o["status"] for o in orders)
    n = len(orders)
    assert n > 4500
    assert counts["delivered"] / n > 0.85
    assert 0.005 < counts["canceled"] / n < 0.016
    assert 0.002 < counts["unavailable"] / n < 0.011
    assert 0.005 < counts["returned"] / n < 0.035
    assert counts["shipped"] > 0 and counts["approved"] > 0


def test_repeat_buyers_about_three_percent_within_and_beyond_90_days(
    orders: list[dict], market: Path
) -> None:
    by_customer = defaultdict(list)
    for o in orders:
        by_customer[o["customer_id"]].append(_t(o["purchased_at"]))
    repeat = [sorted(t) for t in by_customer.values() if len(t) > 1]
    assert 0.02 < len(repeat) / len(by_customer) < 0.04
    gaps = [(b - a).days for t in repeat for a, b in itertools.pairwise(t)]
    assert any(g < 90 for g in gaps) and any(g > 90 for g in gaps)
    truth = pl.read_parquet(market / "truth" / "orders.parquet")
    repeat_ids = {o["order_id"] for o in orders if _is_later(o, by_customer)}
    in_files = truth.filter(pl.col("order_id").is_in([o["order_id"] for o in orders]))
    assert set(in_files.filter(pl.col("is_repeat"))["order_id"]) == repeat_ids
    assert truth.filter(pl.col("is_repeat"))["previous_order_at"].null_count() == 0
    assert truth.filter(~pl.col("is_repeat"))["previous_order_at"].null_count() == (
        truth.filter(~pl.col("is_repeat")).height
    )


def _is_later(o: dict, by_customer: dict) -> bool:
    return _t(o["purchased_at"]) > min(by_customer[o["customer_id"]])


def test_reviews_keyed_by_order_after_delivery(reviews: list[dict], orders: list[dict]) -> None:
    by_id = {o["order_id"]: o for o in orders}
    for r in reviews:
        assert r["platform"] == "marketplace"
        assert r["reviewer_email"] == "" and r["reviewer_handle"] == ""
        o = by_id.get(r["order_id"])
        if o is None:  # its order's record was malformed
            continue
        assert o["delivered_at"] and _t(r["created_at"]) > _t(o["delivered_at"])
        assert r["_day"] == r["created_at"][:10]
    delay = [
        (_t(r["created_at"]) - _t(by_id[r["order_id"]]["delivered_at"])).days
        for r in reviews
        if r["order_id"] in by_id
    ]
    assert sum(1 <= d + 1 <= 10 for d in delay) / len(delay) > 0.85


def test_review_shares_over_orders_old_enough(market: Path, orders: list[dict]) -> None:
    """Orders purchased in the first 30 days: every review of theirs is in range."""
    truth = pl.read_parquet(market / "truth" / "reviews.parquet")
    early = {
        o["order_id"]: _t(o["purchased_at"])
        for o in orders
        if o["status"] in ("delivered", "returned") and _t(o["purchased_at"]) < datetime(2026, 7, 1)
    }
    mine = truth.filter(pl.col("order_id").is_in(list(early)))
    assert 0.55 < mine.height / len(early) < 0.65
    late = sum(
        (created.replace(tzinfo=None) - early[oid]).days >= 30
        for oid, created in mine.select("order_id", "created_at").iter_rows()
    )
    assert 0.025 < late / mine.height < 0.08


def test_ratings_skew_positive_and_drop_when_late(reviews: list[dict], orders: list[dict]) -> None:
    counts = Counter(int(r["rating"]) for r in reviews)
    n = sum(counts.values())
    for rating, share, tol in ((5, 0.55, 0.04), (4, 0.2, 0.03), (3, 0.09, 0.025)):
        assert abs(counts[rating] / n - share) < tol, rating
    assert abs(counts[2] / n - 0.04) < 0.02 and abs(counts[1] / n - 0.12) < 0.03
    by_id = {o["order_id"]: o for o in orders}
    late, on_time = [], []
    for r in reviews:
        o = by_id.get(r["order_id"])
        if o and o["status"] == "delivered":
            was_late = _t(o["delivered_at"]) > _t(o["estimated_delivery_at"])
            (late if was_late else on_time).append(int(r["rating"]))
    assert len(late) > 50
    assert sum(late) / len(late) < sum(on_time) / len(on_time) - 1


def test_texts_in_several_languages_with_matching_tone(reviews: list[dict], market: Path) -> None:
    with_text = [r for r in reviews if r["text"]]
    assert 0.15 < 1 - len(with_text) / len(reviews) < 0.35
    assert all(r["language"] == "" for r in reviews if not r["text"])
    given = [r for r in with_text if r["language"]]
    assert 0.35 < len(given) / len(with_text) < 0.65
    truth = pl.read_parquet(market / "truth" / "reviews.parquet")
    languages = Counter(truth.filter(pl.col("has_text"))["language"].to_list())
    assert languages.most_common(1)[0][0] == "pt"
    assert {"es", "en", "de", "fr"} <= set(languages) and {"it", "nl"} & set(languages)
    good = {r["text"] for r in with_text if int(r["rating"]) >= 4}
    bad = {r["text"] for r in with_text if int(r["rating"]) <= 2}
    assert good and bad and not good & bad


def test_truth_matches_the_files(market: Path, records: pl.DataFrame, orders: list[dict]) -> None:
    truth = pl.read_parquet(market / "truth" / "orders.parquet")
    ids = set(truth["order_id"])
    assert {o["order_id"] for o in orders} <= ids
    assert records.filter(pl.col("source") == "orders").n_unique("native_id") == len(ids)
    by_id = {r["order_id"]: r for r in truth.iter_rows(named=True)}
    for o in orders:
        t = by_id[o["order_id"]]
        assert t["status"] == o["status"] and t["customer_id"] == o["customer_id"]
        revenue = sum(i["price"] * i["quantity"] + i["freight"] for i in o["items"])
        assert t["revenue"] == pytest.approx(revenue, abs=0.01)
    reviews = pl.read_parquet(market / "truth" / "reviews.parquet")
    assert set(reviews["order_id"]) <= ids
    owner = {r["order_id"]: r["customer_id"] for r in truth.iter_rows(named=True)}
    assert all(owner[o] == c for o, c in reviews.select("order_id", "customer_id").iter_rows())


def test_malformed_and_duplicate_records_are_what_the_truth_says(
    market: Path, records: pl.DataFrame
) -> None:
    lines = _lines(market, "orders")
    broken = records.filter((pl.col("source") == "orders") & (pl.col("status") == "malformed"))
    assert broken.height > 5
    for file, n, reason in broken.select("file", "line", "reason").iter_rows():
        line = lines[(file, n)]
        if reason == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                line.decode("utf-8")
            continue
        if reason == "invalid_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        o = json.loads(line)
        if reason == "missing_id":
            assert "order_id" not in o
        elif reason == "missing_identity":
            assert "customer_id" not in o
        elif reason == "wrong_type":
            assert not isinstance(o["items"], list)
        elif reason == "invalid_timestamp":
            with pytest.raises(ValueError):
                _t(o["purchased_at"])
        else:
            assert reason == "future_timestamp"
            assert _t(o["purchased_at"]) > datetime(2027, 6, 1)
    assert records.filter(pl.col("status") == "malformed")["source"].n_unique() == 2
    dupes = records.filter(pl.col("status") == "duplicate")
    assert dupes.height > 5
    firsts = records.filter(pl.col("status") == "ok").select("native_id", "file", "line")
    both = dupes.join(firsts, on="native_id", suffix="_first")
    assert both.height == dupes.height
    for source in ("orders", "reviews"):
        lines = _lines(market, source)
        for f, n, f0, n0 in (
            both.filter(pl.col("source") == source)
            .select("file", "line", "file_first", "line_first")
            .iter_rows()
        ):
            assert lines[(f, n)] == lines[(f0, n0)]
            assert f >= f0
