"""The marketplace profile's orders: a catalogue, when customers buy, and each
order's life from purchase to delivery, cancellation or return."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from cjm_pipeline.generate.common import iso, start_of

PLATFORM = "marketplace"
REPEAT_SHARE = 0.03
REPEAT_WITHIN_90_DAYS = 0.6
CANCELED_SHARE = 0.01
UNAVAILABLE_SHARE = 0.006
RETURNED_SHARE = 0.02
DELAYED_SHARE = 0.12  # deliveries held up in transit; most of them end up late
TIMESTAMPS = ("purchased_at", "approved_at", "shipped_at", "delivered_at")


@dataclass
class Order:
    """An order's whole life; ``snapshot`` cuts it at the end of the range."""

    order_id: str
    customer_id: str
    purchased_at: datetime
    approved_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    estimated_at: datetime
    ended: tuple[str, datetime] | None  # canceled / unavailable / returned, and when
    items: list[dict]
    previous_order_at: datetime | None

    @property
    def revenue(self) -> float:
        return round(sum(i["price"] * i["quantity"] + i["freight"] for i in self.items), 2)

    @property
    def late(self) -> bool:
        return self.delivered_at is not None and self.delivered_at > self.estimated_at

    def snapshot(self, end: datetime) -> tuple[str, dict, datetime]:
        """Status, timestamps and time of the last change as of ``end``; an order
        still on its way is exported at ``end``."""
        known = {k: t for k in TIMESTAMPS if (t := getattr(self, k)) is not None and t < end}
        if self.ended and self.ended[1] < end:
            status, at = self.ended
            if status == "returned":
                known["returned_at"] = at
            return status, known, at
        if "delivered_at" in known:
            return "delivered", known, known["delivered_at"]
        status = "shipped" if "shipped_at" in known else "approved"
        status = status if "approved_at" in known else "processing"
        return status, known, end - timedelta(microseconds=1)


@dataclass
class Catalogue:
    products: list[tuple[str, str, float]]  # product_id, seller_id, price
    currency: str


def catalogue(seed: int) -> Catalogue:
    rng = random.Random(f"{seed}:marketplace:catalogue")
    currency = rng.choice(["BRL", "BRL", "EUR"])
    scale = 1.0 if currency == "BRL" else 0.18
    sellers = [f"{rng.getrandbits(128):032x}" for _ in range(80)]
    products = [
        (f"{rng.getrandbits(128):032x}", rng.choice(sellers), rng.lognormvariate(4.4, 0.9) * scale)
        for _ in range(400)
    ]
    return Catalogue([(p, s, round(max(price, 2.0), 2)) for p, s, price in products], currency)


def purchase_times(rng: random.Random, start: datetime, days: int) -> list[datetime]:
    """One purchase, or (for a repeat buyer) two or three with gaps in days."""
    span = float(days)
    if rng.random() >= REPEAT_SHARE:
        return [start + timedelta(days=rng.uniform(0, span))]
    gaps = []
    for _ in range(3 if rng.random() < 0.15 else 2):
        later = rng.random() >= REPEAT_WITHIN_90_DAYS
        gap = rng.uniform(91, 240) if later else rng.uniform(3, 89)
        if gap > span - sum(gaps) - 0.5:  # the range cannot hold it
            gap = rng.uniform(0.2, max(0.3, (span - sum(gaps)) / 2))
        gaps.append(gap)
    first = start + timedelta(days=rng.uniform(0, max(0.0, span - sum(gaps))))
    times = [first]
    for gap in gaps:
        times.append(times[-1] + timedelta(days=gap))
    return [t for t in times if t < start + timedelta(days=days)]


def _items(rng: random.Random, catalogue: Catalogue) -> list[dict]:
    n = rng.choices([1, 2, 3], [0.88, 0.09, 0.03])[0]
    out = []
    for product_id, seller_id, price in rng.sample(catalogue.products, n):
        freight = round(rng.uniform(3, 20) * (1 if catalogue.currency == "BRL" else 0.2), 2)
        quantity = 1 if rng.random() < 0.9 else 2
        out.append(
            {
                "product_id": product_id,
                "seller_id": seller_id,
                "price": price,
                "freight": freight,
                "quantity": quantity,
            }
        )
    return out


def make_order(
    rng: random.Random,
    customer_id: str,
    purchased: datetime,
    previous: datetime | None,
    catalogue: Catalogue,
) -> Order:
    estimated = start_of((purchased + timedelta(days=rng.randint(12, 25))).date())
    approved = purchased + timedelta(minutes=rng.expovariate(1 / 40) + 1)
    shipped = approved + timedelta(days=rng.uniform(0.5, 4))
    transit = rng.uniform(2, 10) + (rng.uniform(8, 25) if rng.random() < DELAYED_SHARE else 0)
    delivered = shipped + timedelta(days=transit)
    ended = None
    roll = rng.random()
    if roll < CANCELED_SHARE:
        cancel = purchased + timedelta(hours=rng.uniform(0.2, 72))
        approved = approved if approved < cancel else None
        shipped = delivered = None
        ended = ("canceled", cancel)
    elif roll < CANCELED_SHARE + UNAVAILABLE_SHARE:
        shipped = delivered = None
        ended = ("unavailable", approved + timedelta(days=rng.uniform(1, 5)))
    elif roll < CANCELED_SHARE + UNAVAILABLE_SHARE + RETURNED_SHARE:
        ended = ("returned", delivered + timedelta(days=rng.uniform(2, 20)))
    return Order(
        order_id=f"{rng.getrandbits(128):032x}",
        customer_id=customer_id,
        purchased_at=purchased,
        approved_at=approved,
        shipped_at=shipped,
        delivered_at=delivered,
        estimated_at=estimated,
        ended=ended,
        items=_items(rng, catalogue),
        previous_order_at=previous,
    )


def order_payload(order: Order, status: str, known: dict, currency: str) -> dict:
    payload: dict = {"order_id": order.order_id, "customer_id": order.customer_id}
    payload["status"] = status
    payload.update({k: iso(known[k]) if k in known else None for k in TIMESTAMPS})
    payload["estimated_delivery_at"] = iso(order.estimated_at)
    if "returned_at" in known:
        payload["returned_at"] = iso(known["returned_at"])
    if status in ("canceled", "unavailable"):
        payload["canceled_at"] = iso(order.ended[1])
    # The last status change: the end of a canceled, unavailable or returned order, else
    # the latest step it reached.
    changed = order.ended[1] if status == (order.ended or ("",))[0] else max(known.values())
    payload["updated_at"] = iso(changed)
    payload.update(currency=currency, platform=PLATFORM, items=order.items)
    return payload
