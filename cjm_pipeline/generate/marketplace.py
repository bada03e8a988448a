"""The marketplace profile: what a marketplace exports, and nothing else.

- ``orders/<day>/orders.jsonl``: one order a line (order_id, customer_id, status,
  purchased_at, approved_at, shipped_at, delivered_at, estimated_delivery_at,
  returned_at for a returned order, canceled_at for a canceled or unavailable one,
  updated_at (the time of its last status change), currency, platform, items). A real export is a
  snapshot, so each order is written once, in the folder of the day of its last
  status change as of the end of the range: a delivered order on its delivery day
  with every timestamp, a canceled one on the day it was canceled; an order still
  on its way at the end lands on the last day with its status then (processing:
  placed, payment not yet approved; approved; shipped). A status's timestamps that
  have not happened are null. ``estimated_delivery_at`` is the promise made at
  purchase, so it may lie after the landing day.
- ``reviews/<day>/reviews.csv``: the reviews adapter's CSV, keyed by order id only
  (no reviewer email or handle), on the day each review was written; where the
  platform asked, whether the buyer recommends the product.

Every customer has a stable ``customer_id``; about 3% buy again (some within 90
days of their previous order, some later: gaps beyond 90 days need a range longer
than 90 days). Malformed records and duplicate re-deliveries are rare, as in the
multichannel profile, and recorded in the truth.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from cjm_pipeline.generate.common import (
    Edits,
    LandingFiles,
    Rec,
    TruthWriter,
    csv_line,
    drop_fields,
    iso,
    json_line,
    malform_csv,
    malform_json,
    set_fields,
    start_of,
    write_summary,
)
from cjm_pipeline.generate.marketplace_orders import (
    PLATFORM,
    TIMESTAMPS,
    Catalogue,
    Order,
    catalogue,
    make_order,
    order_payload,
    purchase_times,
)
from cjm_pipeline.generate.marketplace_reviews import LANGUAGES, compose
from transforms import reviews

CHUNK_CUSTOMERS = 2000
FILE_NAMES = {"orders": "orders.jsonl", "reviews": "reviews.csv"}
REVIEW_SHARE = 0.6
LATE_REVIEW_SHARE = 0.05  # written more than 30 days after the purchase
NO_TEXT_SHARE = 0.25
LANGUAGE_GIVEN_SHARE = 0.5
# Share of reviews where the platform asked whether the buyer would recommend the
# product; a happy buyer mostly says yes.
RECOMMEND_ASKED_SHARE = 0.4
MALFORMED_RATE = 0.005
DUPLICATE_RATE = 0.005
# Ratings skew positive as on real marketplaces; a late or returned order is rated
# from the second row. The first row is chosen so that the mixture is about
# 55/20/9/4/12 % for 5 to 1 stars.
RATINGS = (5, 4, 3, 2, 1)
RATING_WEIGHTS = (0.585, 0.207, 0.086, 0.035, 0.087)
RATING_WEIGHTS_LATE = (0.15, 0.12, 0.13, 0.1, 0.5)


def _review(rng: random.Random, order: Order, end: datetime) -> tuple[dict, dict] | None:
    """A review of a delivered order (its CSV row and its truth), if one is written
    in the range."""
    if order.delivered_at is None or order.delivered_at >= end or rng.random() >= REVIEW_SHARE:
        return None
    if rng.random() < LATE_REVIEW_SHARE:
        created = max(
            order.delivered_at + timedelta(days=1),
            order.purchased_at + timedelta(days=rng.uniform(31, 75)),
        )
    else:
        created = order.delivered_at + timedelta(days=1 + 9 * rng.random() ** 2)
        # Most reviews come within a month of the purchase; only a delivery that
        # itself took a month pushes one past it.
        month = order.purchased_at + timedelta(days=rng.uniform(27, 29.9))
        created = max(min(created, month), order.delivered_at + timedelta(hours=20))
    bad_order = order.late or (order.ended is not None and order.ended[0] == "returned")
    weights = RATING_WEIGHTS_LATE if bad_order else RATING_WEIGHTS
    rating = rng.choices(RATINGS, weights)[0]
    language, title, text = None, "", ""
    if rng.random() >= NO_TEXT_SHARE:
        language = rng.choices(list(LANGUAGES), list(LANGUAGES.values()))[0]
        title, text = compose(rng, language, rating, order.late)
    shown = language if language and rng.random() < LANGUAGE_GIVEN_SHARE else ""
    recommended = None
    if rng.random() < RECOMMEND_ASKED_SHARE:
        recommended = rng.random() < {5: 0.95, 4: 0.8, 3: 0.3}.get(rating, 0.03)
    review_id = f"{rng.getrandbits(128):032x}"
    if created >= end:
        return None
    row = {
        "review_id": review_id,
        "platform": PLATFORM,
        "reviewer_email": "",
        "reviewer_handle": "",
        "rating": rating,
        "title": title,
        "text": text,
        "language": shown,
        "created_at": iso(created),
        "order_id": order.order_id,
        "recommended": "" if recommended is None else str(recommended).lower(),
    }
    truth = {
        "review_id": review_id,
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "rating": rating,
        "language": language,
        "has_text": bool(text),
        "recommended": recommended,
        "created_at": created,
    }
    return row, truth


def _set_timestamps(value: str | None) -> Callable[[dict, str, random.Random], None]:
    """Every status timestamp the order has set to ``value`` (None: the future time),
    whichever of them an adapter reads as the order's time."""

    def edit(p: dict, future: str, _rng: random.Random) -> None:
        for k in (*TIMESTAMPS, "returned_at", "canceled_at", "updated_at"):
            if p.get(k) is not None:
                p[k] = value if value is not None else future

    return edit


def _future_review(p: dict, future: str, _rng: random.Random) -> None:
    p["created_at"] = future


def _rating_out_of_range(p: dict, _future: str, rng: random.Random) -> None:
    p["rating"] = rng.choice([0, 6, 10])


MALFORM_KINDS = {
    "orders": [
        "invalid_json",
        "missing_id",
        "missing_identity",
        "invalid_timestamp",
        "future_timestamp",
        "wrong_type",
        "invalid_utf8",
    ],
    "reviews": [
        "invalid_csv",
        "missing_id",
        "missing_identity",
        "invalid_timestamp",
        "future_timestamp",
        "rating_out_of_range",
        "wrong_type",
        "invalid_utf8",
    ],
}
MALFORM_EDITS: dict[str, Edits] = {
    "orders": {
        "missing_id": drop_fields("order_id"),
        "missing_identity": drop_fields("customer_id"),
        "invalid_timestamp": _set_timestamps("31/02/2026 25:61"),
        "future_timestamp": _set_timestamps(None),
        "wrong_type": set_fields(items="2 items"),
    },
    "reviews": {
        "missing_id": set_fields(review_id=""),
        "missing_identity": set_fields(order_id=""),
        "invalid_timestamp": set_fields(created_at="last tuesday"),
        "future_timestamp": _future_review,
        "rating_out_of_range": _rating_out_of_range,
        "wrong_type": set_fields(rating="five stars"),
    },
}


class _Landing:
    """Writes a customer's records, breaking or re-delivering a few, and their truth."""

    def __init__(self, out: Path, start: date, days: int):
        self.files = LandingFiles(out / "landing", start, FILE_NAMES, {"reviews": reviews.COLUMNS})
        self.truth = TruthWriter(out / "truth")
        self.start = start_of(start)
        self.days = days
        self.written = 0

    def write(self, rng: random.Random, rec: Rec, landed_at: datetime, persona: str) -> None:
        land = (landed_at - self.start).days
        if rng.random() < MALFORMED_RATE:
            if rec.source == "orders":
                data, reason = malform_json(
                    rng, rec.payload, MALFORM_KINDS["orders"], MALFORM_EDITS["orders"], landed_at
                )
            else:
                data, reason = malform_csv(
                    rng,
                    rec.payload,
                    reviews.COLUMNS,
                    MALFORM_KINDS["reviews"],
                    MALFORM_EDITS["reviews"],
                    landed_at,
                    "text",
                )
            where = self.files.emit(rec.source, land, data)
            self.truth.record(rec, rec.customer, persona, where, "malformed", reason, 0)
            self.written += 1
            return
        if rec.source == "orders":
            data = json_line(rec.payload)
        else:
            data = csv_line([rec.payload[c] for c in reviews.COLUMNS])
        where = self.files.emit(rec.source, land, data)
        self.truth.record(rec, rec.customer, persona, where, "ok", None, 0)
        self.written += 1
        if rng.random() < DUPLICATE_RATE:
            again = min(self.days - 1, land + rng.choice([0, 1, 1, 2, 3]))
            where = self.files.emit(rec.source, again, data)
            self.truth.record(rec, rec.customer, persona, where, "duplicate", None, again - land)
            self.written += 1

    def close(self) -> None:
        self.files.close()
        self.truth.close()


def generate(
    out: Path, customers: int, start: date, days: int, seed: int, progress: Callable[[str], None]
) -> dict:
    """Write the marketplace landing files and ground truth."""
    landing = _Landing(out, start, days)
    products = catalogue(seed)
    begin = start_of(start)
    end = begin + timedelta(days=days)
    orders: list[dict] = []
    review_rows: list[dict] = []
    for chunk_start in range(0, customers, CHUNK_CUSTOMERS):
        for idx in range(chunk_start, min(customers, chunk_start + CHUNK_CUSTOMERS)):
            rng = random.Random(f"{seed}:marketplace:{idx}")
            customer_id = f"{rng.getrandbits(128):032x}"
            times = purchase_times(rng, begin, days)
            persona = "repeat_buyer" if len(times) > 1 else "one_time_buyer"
            previous = None
            placed = []
            for purchased in times:
                order = make_order(rng, customer_id, purchased, previous, products)
                placed.append(order)
                previous = purchased
            for order in placed:
                orders.append(_write_order(rng, landing, order, end, products, persona))
                review = _review(rng, order, end)
                if review is not None:
                    row, truth = review
                    created = truth["created_at"]
                    rec = Rec(
                        "reviews",
                        created,
                        "experience",
                        "review",
                        row["review_id"],
                        row,
                        customer_id,
                    )
                    landing.write(rng, rec, created, persona)
                    review_rows.append(truth)
            ids = [("customer_id", customer_id)] + [("order_id", o.order_id) for o in placed]
            landing.truth.customer(_customer_row(customer_id, persona, len(placed)), ids)
        landing.truth.flush()
        progress(
            f"  generated {min(customers, chunk_start + CHUNK_CUSTOMERS):,}/{customers:,} "
            f"customers, {landing.written:,} records"
        )
    landing.close()
    truth = out / "truth"
    pl.DataFrame(orders, schema=ORDER_SCHEMA).write_parquet(truth / "orders.parquet")
    pl.DataFrame(review_rows, schema=REVIEW_SCHEMA).write_parquet(truth / "reviews.parquet")
    stats = {
        "profile": "marketplace",
        "customers": customers,
        "records": landing.written,
        "orders": len(orders),
        "reviews": len(review_rows),
        "currency": products.currency,
        "days": days,
        "start": start.isoformat(),
    }
    write_summary(truth, stats)
    return stats


ORDER_SCHEMA = {
    "order_id": pl.String,
    "customer_id": pl.String,
    "status": pl.String,
    "purchased_at": pl.Datetime("us", "UTC"),
    "delivered_at": pl.Datetime("us", "UTC"),
    "revenue": pl.Float64,
    "is_repeat": pl.Boolean,
    "previous_order_at": pl.Datetime("us", "UTC"),
}
REVIEW_SCHEMA = {
    "review_id": pl.String,
    "order_id": pl.String,
    "customer_id": pl.String,
    "rating": pl.Int64,
    "language": pl.String,
    "has_text": pl.Boolean,
    "recommended": pl.Boolean,
    "created_at": pl.Datetime("us", "UTC"),
}


def _write_order(
    rng: random.Random,
    landing: _Landing,
    order: Order,
    end: datetime,
    products: Catalogue,
    persona: str,
) -> dict:
    """Land the order's snapshot; returns its truth row."""
    status, known, changed_at = order.snapshot(end)
    payload = order_payload(order, status, known, products.currency)
    rec = Rec(
        "orders", order.purchased_at, "purchase", status, order.order_id, payload, order.customer_id
    )
    landing.write(rng, rec, changed_at, persona)
    return {
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "status": status,
        "purchased_at": order.purchased_at,
        "delivered_at": known.get("delivered_at"),
        "revenue": order.revenue,
        "is_repeat": order.previous_order_at is not None,
        "previous_order_at": order.previous_order_at,
    }


def _customer_row(customer_id: str, persona: str, orders: int) -> dict:
    return {
        "customer_key": customer_id,
        "persona": persona,
        "user_id": customer_id,
        "email": None,
        "purchased": True,
        "orders": orders,
    }
