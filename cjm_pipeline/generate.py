"""Deterministic sample data in the four native formats, plus ground truth.

``generate(out, customers, start, days, seed)`` simulates customers of five
personas through discovery, consideration, purchase, experience and loyalty,
across web (Segment JSON lines), email (SendGrid webhook JSON lines), social
(listening export CSV) and reviews (review export JSON lines), with a crm
customers export. It then adds the mess of real feeds: late arrival, re-delivery,
device clock skew and malformed records of every kind.

Ground truth goes to ``<out>/truth`` (never read by the pipeline): the true
customer of every identifier, each customer's persona, and one row per written
record with its intended stage, true time, and whether it is good, a duplicate or
malformed (with the quarantine reason ingestion must give).

Cost is linear in the number of customers: customers are simulated in chunks and
their records appended to the per-day files.
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import polars as pl

from transforms import social

CHUNK_CUSTOMERS = 2000
BRAND = "northwind"
SITE = "https://www.northwind-outfitters.example"

PERSONAS: dict[str, dict] = {
    # weight, journeys, sessions per journey, purchase probability, devices,
    # email subscription, social presence, review propensity, entry channels
    "researcher": dict(
        weight=0.24,
        journeys=(1, 2),
        sessions=(4, 9),
        buy=0.45,
        devices=(2, 3),
        subscribe=0.7,
        social=0.35,
        review=0.55,
        gap_hours=30,
        entry=["organic_search", "email", "social_mention", "paid_search"],
    ),
    "bargain_hunter": dict(
        weight=0.2,
        journeys=(1, 2),
        sessions=(2, 5),
        buy=0.35,
        devices=(1, 2),
        subscribe=0.9,
        social=0.2,
        review=0.3,
        gap_hours=20,
        abandon=0.5,
        entry=["email", "paid_search", "email", "affiliate"],
    ),
    "impulse_buyer": dict(
        weight=0.2,
        journeys=(1, 2),
        sessions=(1, 2),
        buy=0.7,
        devices=(1, 2),
        subscribe=0.3,
        social=0.7,
        review=0.25,
        gap_hours=3,
        entry=["paid_social", "paid_social", "social_mention", "direct"],
    ),
    "loyal_repeat": dict(
        weight=0.14,
        journeys=(2, 4),
        sessions=(1, 3),
        buy=0.95,
        devices=(1, 3),
        subscribe=0.95,
        social=0.5,
        review=0.6,
        gap_hours=24,
        entry=["email", "direct", "email", "organic_search"],
    ),
    "window_shopper": dict(
        weight=0.22,
        journeys=(1, 2),
        sessions=(1, 3),
        buy=0.0,
        devices=(1, 1),
        subscribe=0.25,
        social=0.3,
        review=0.0,
        gap_hours=40,
        entry=["organic_search", "paid_social", "social_mention", "paid_search"],
    ),
}
EDGE_CASES = (
    "late_arrival_4d",
    "duplicate_event",
    "id_switch_mid_session",
    "bot_endless_session",
    "reviews_only",
)
FIRST = ["ava", "liam", "mia", "noah", "zoe", "omar", "lena", "ravi", "ines", "kai", "sara", "tom"]
LAST = ["berg", "okafor", "silva", "tanaka", "novak", "reyes", "weber", "haddad", "kim", "moreau"]
DOMAINS = ["mailbox.example", "inbox.example", "post.example", "webmail.example"]
PLATFORMS = ["instagram", "x", "tiktok", "facebook"]
REVIEW_PLATFORMS = ["trustpilot", "google"]
PRODUCTS = [
    (f"sku-{i:04d}", cat, price)
    for i, (cat, price) in enumerate(
        [
            ("jackets", 149.0),
            ("boots", 129.0),
            ("tents", 299.0),
            ("packs", 89.0),
            ("socks", 14.0),
            ("gloves", 39.0),
            ("stoves", 79.0),
            ("lamps", 29.0),
        ]
        * 6
    )
]
AD_CAMPAIGNS = {
    "paid_search": ("google", "cpc", "autumn_search"),
    "paid_social": ("instagram", "paid_social", "trail_season"),
    "affiliate": ("deals_site", "affiliate", "partner_deals"),
}
REVIEW_TEXT = {
    5: ["Excellent quality, arrived early. Will buy again.", "Love it, exactly as described."],
    4: ["Good product, delivery took a little long.", "Nice fit, solid build."],
    3: ["It is fine, nothing special.", "Okay, but the sizing runs small."],
    2: ["Disappointed, the zip broke after a week.", "Slow delivery and poor packaging."],
    1: ["Terrible, arrived damaged and support never answered.", "Asked for a refund."],
}
MALFORMED_RATE = 0.004
LATE_RATE = 0.02
DUPLICATE_RATE = 0.01
SKEWED_DEVICE_RATE = 0.1


@dataclass
class Customer:
    key: str
    persona: str
    email: str
    user_id: str | None
    devices: list[str]
    handles: list[tuple[str, str]]
    handles_in_crm: bool
    subscribed: bool
    skew: dict[str, timedelta] = field(default_factory=dict)
    identified_devices: set[str] = field(default_factory=set)
    signup_at: datetime | None = None
    subscribed_at: datetime | None = None
    purchased: bool = False
    orders: list[str] = field(default_factory=list)


@dataclass
class Rec:
    """One event before serialisation: its source, true time, stage and payload."""

    source: str
    at: datetime
    stage: str
    event_type: str
    native_id: str
    payload: dict
    customer: str


class Sim:
    """Simulates one customer's journeys as a time-ordered list of records."""

    def __init__(self, rng: random.Random, start: datetime, end: datetime, campaigns: list[dict]):
        self.rng = rng
        self.start = start
        self.end = end
        self.campaigns = campaigns
        self.recs: list[Rec] = []

    # -- identifiers ----------------------------------------------------------
    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- web ------------------------------------------------------------------
    def web(
        self,
        c: Customer,
        device: str,
        at: datetime,
        kind: str,
        stage: str,
        *,
        event: str | None = None,
        path: str = "/",
        utm: tuple | None = None,
        referrer: str | None = None,
        props: dict | None = None,
        title: str = "",
        anonymous_id: str | None = None,
    ) -> None:
        if at >= self.end or at < self.start:
            return
        payload: dict = {
            "type": kind,
            "messageId": self.uid(),
            "anonymousId": anonymous_id or device,
        }
        if c.user_id and (device in c.identified_devices or kind == "identify"):
            payload["userId"] = c.user_id
        url = SITE + path
        if utm:
            url += f"?utm_source={utm[0]}&utm_medium={utm[1]}&utm_campaign={utm[2]}"
        context: dict = {
            "page": {"url": url, "path": path, "referrer": referrer or "", "title": title or path},
            "userAgent": "Mozilla/5.0",
            "library": {"name": "analytics.js"},
        }
        if utm:
            context["campaign"] = {"source": utm[0], "medium": utm[1], "name": utm[2]}
        payload["context"] = context
        if kind == "track":
            payload["event"] = event
        if kind == "page":
            payload["name"] = title or path
        if props:
            payload["properties"] = props
        if kind == "identify":
            payload["traits"] = {"email": c.email}
            c.identified_devices.add(device)
        skew = c.skew.get(device)
        send_delay = timedelta(milliseconds=self.rng.randint(50, 2000))
        net = timedelta(milliseconds=self.rng.randint(20, 400))
        if skew is None:
            payload["timestamp"] = _iso(at)
            payload["originalTimestamp"] = _iso(at)
            payload["sentAt"] = _iso(at + send_delay)
        else:
            payload["originalTimestamp"] = _iso(at + skew)
            payload["sentAt"] = _iso(at + skew + send_delay)
        payload["receivedAt"] = _iso(at + send_delay + net)
        etype = event or kind
        self.recs.append(Rec("web", at, stage, etype, payload["messageId"], payload, c.key))

    def session(
        self,
        c: Customer,
        at: datetime,
        device: str,
        stage_path: list[tuple[str, str]],
        entry: str | None,
    ) -> datetime:
        """A web session that walks the given (stage, step) list; returns its end."""
        rng = self.rng
        utm = AD_CAMPAIGNS.get(entry or "")
        referrer = {
            "organic_search": "https://www.google.com/",
            "paid_search": "https://www.google.com/",
            "paid_social": "https://l.instagram.com/",
        }.get(entry or "")
        if entry == "email":
            camp = rng.choice([x for x in self.campaigns if x["category"] != "transactional"])
            utm = ("newsletter", "email", camp["utm_campaign"])
        t = at
        landing = True
        for stage, step in stage_path:
            product = rng.choice(PRODUCTS)
            if landing:
                path = {
                    "discovery": rng.choice(["/", "/landing/trail-season", "/blog/packing-list"]),
                    "experience": "/account/orders",
                    "loyalty": "/rewards",
                }.get(stage, f"/products/{product[0]}")
                self.web(
                    c,
                    device,
                    t,
                    "page",
                    stage,
                    path=path,
                    utm=utm,
                    referrer=referrer,
                    title="Northwind Outfitters",
                )
                landing = False
                signed_in = c.user_id and c.signup_at and t > c.signup_at
                # A newsletter link carries the subscriber (Segment's ajs_uid / ajs_aid
                # querystring), so the site identifies the visitor by email on arrival.
                if device not in c.identified_devices and (signed_in or entry == "email"):
                    t += timedelta(seconds=rng.randint(5, 40))
                    self.web(c, device, t, "identify", "unclassified")
            t += timedelta(seconds=rng.randint(10, 240))
            if step == "browse":
                self.web(
                    c,
                    device,
                    t,
                    "page",
                    stage,
                    path=rng.choice(["/", "/blog/packing-list", "/landing/trail-season"]),
                )
            elif step == "list":
                self.web(
                    c,
                    device,
                    t,
                    "track",
                    stage,
                    event="Product List Viewed",
                    path=f"/category/{product[1]}",
                    props={"category": product[1], "list_id": product[1]},
                )
            elif step == "search":
                self.web(
                    c,
                    device,
                    t,
                    "track",
                    stage,
                    event="Products Searched",
                    path="/search",
                    props={"query": rng.choice(["rain jacket", "tent 2p", "wool socks"])},
                )
            elif step == "product":
                self.web(
                    c, device, t, "page", stage, path=f"/products/{product[0]}", title=product[0]
                )
                t += timedelta(seconds=rng.randint(2, 20))
                self.web(
                    c,
                    device,
                    t,
                    "track",
                    stage,
                    event="Product Viewed",
                    path=f"/products/{product[0]}",
                    props={"product_id": product[0], "category": product[1], "price": product[2]},
                )
            elif step == "reviews":
                self.web(
                    c,
                    device,
                    t,
                    "track",
                    stage,
                    event="Reviews Viewed",
                    path=f"/products/{product[0]}/reviews",
                    props={"product_id": product[0]},
                )
            elif step == "cart":
                self.web(
                    c,
                    device,
                    t,
                    "track",
                    stage,
                    event="Product Added",
                    path="/cart",
                    props={"product_id": product[0], "price": product[2], "quantity": 1},
                )
            elif step == "signup":
                c.user_id = c.user_id or f"usr_{self.uid()[:12]}"
                c.signup_at = t
                self.web(c, device, t, "identify", "unclassified")
                t += timedelta(seconds=rng.randint(1, 5))
                self.web(c, device, t, "track", stage, event="Signed Up", path="/account/signup")
            elif step == "checkout":
                if not c.user_id:
                    c.user_id = f"usr_{self.uid()[:12]}"
                    c.signup_at = t
                if device not in c.identified_devices:
                    self.web(c, device, t, "identify", "unclassified")
                    t += timedelta(seconds=rng.randint(2, 10))
                self.web(
                    c,
                    device,
                    t,
                    "track",
                    stage,
                    event="Checkout Started",
                    path="/checkout",
                    props={"checkout_id": self.uid()[:8]},
                )
            elif step == "pay":
                self.web(
                    c,
                    device,
                    t,
                    "track",
                    stage,
                    event="Payment Info Entered",
                    path="/checkout/payment",
                    props={"step": "2", "method": rng.choice(["card", "paypal"])},
                )
            elif step == "order":
                order_id = f"ord_{self.uid()[:10]}"
                c.orders.append(order_id)
                c.purchased = True
                total = round(rng.uniform(20, 400), 2)
                self.web(
                    c,
                    device,
                    t,
                    "track",
                    stage,
                    event="Order Completed",
                    path="/checkout/complete",
                    props={"order_id": order_id, "revenue": total, "currency": "EUR"},
                )
                self.email(
                    c,
                    t + timedelta(seconds=30),
                    "transactional",
                    "order_confirmation",
                    clicks=False,
                    order_id=order_id,
                )
            elif step == "account":
                self.web(c, device, t, "page", stage, path="/account/orders", title="Your orders")
            elif step == "rewards":
                self.web(c, device, t, "page", stage, path="/rewards", title="Rewards")
            elif step == "refund" and c.orders:
                self.web(
                    c,
                    device,
                    t,
                    "track",
                    stage,
                    event="Order Refunded",
                    path="/account/orders",
                    props={"order_id": c.orders[-1]},
                )
        return t

    # -- email ----------------------------------------------------------------
    def email(
        self,
        c: Customer,
        at: datetime,
        category: str,
        campaign: str,
        *,
        clicks: bool = True,
        order_id: str | None = None,
        open_rate: float = 0.3,
    ) -> datetime | None:
        """One send with its delivery events; returns the click time if the customer clicked."""
        if at >= self.end or at < self.start:
            return None
        rng = self.rng
        stage = {
            "newsletter": "discovery",
            "promo": "discovery",
            "transactional": "experience",
            "loyalty": "loyalty",
        }[category]
        click_stage = {
            "newsletter": "consideration",
            "promo": "consideration",
            "transactional": "experience",
            "loyalty": "loyalty",
        }[category]
        msg = f"{self.uid()[:22]}.filter0001p1"
        base = {
            "email": c.email,
            "sg_message_id": msg,
            "category": [category, campaign],
            "marketing_campaign_name": campaign,
        }
        if category != "transactional":
            base.update(utm_source="newsletter", utm_medium="email", utm_campaign=campaign)
        if order_id:
            base["order_id"] = order_id
        if c.user_id and rng.random() < 0.5:
            base["user_id"] = c.user_id

        def emit(event: str, t: datetime, stage_: str, **extra: object) -> None:
            if t >= self.end:
                return
            sg = self.uid().replace("-", "")[:22]
            payload = {
                **base,
                "event": event,
                "timestamp": int(t.timestamp()),
                "sg_event_id": sg,
                **extra,
            }
            self.recs.append(Rec("email", t, stage_, event, sg, payload, c.key))

        emit("processed", at, stage)
        roll = rng.random()
        t = at + timedelta(seconds=rng.randint(2, 90))
        if roll < 0.02:
            emit(
                "bounce",
                t,
                stage,
                type="bounce",
                reason=f"550 5.1.1 <{c.email}>: mailbox unavailable",
                status="5.1.1",
            )
            return None
        if roll < 0.03:
            emit("dropped", t, stage, reason="Bounced Address")
            return None
        emit("delivered", t, stage, response="250 OK")
        if rng.random() > open_rate:
            return None
        t += timedelta(minutes=rng.randint(5, 60 * 20))
        emit("open", t, stage, useragent="Mozilla/5.0")
        if rng.random() < 0.25:
            emit("open", t + timedelta(minutes=rng.randint(1, 600)), stage, useragent="Mozilla/5.0")
        if rng.random() < 0.004:
            emit("spamreport", t + timedelta(seconds=30), stage)
            return None
        if rng.random() < 0.006 and category != "transactional":
            emit("unsubscribe", t + timedelta(seconds=40), stage)
            c.subscribed = False
            return None
        if not clicks or rng.random() > 0.3:
            return None
        t += timedelta(seconds=rng.randint(3, 120))
        emit(
            "click",
            t,
            click_stage,
            url=f"{SITE}/landing/{campaign}?utm_source=newsletter&utm_medium=email&utm_campaign={campaign}",
        )
        return t

    # -- social and reviews ---------------------------------------------------
    def social(
        self,
        c: Customer,
        at: datetime,
        kind: str,
        stage: str,
        text: str,
        campaign: str = "",
        url: str = "",
        reply_to: str = "",
        sentiment: str = "neutral",
    ) -> None:
        if not c.handles or at >= self.end or at < self.start:
            return
        platform, handle = self.rng.choice(c.handles)
        mid = f"{platform[:2]}_{self.uid()[:16]}"
        row = {
            "mention_id": mid,
            "platform": platform,
            "author_handle": "@" + handle,
            "created_at": _iso(at),
            "kind": kind,
            "text": text,
            "url": url,
            "campaign": campaign,
            "in_reply_to": reply_to,
            "sentiment": sentiment,
        }
        self.recs.append(Rec("social", at, stage, kind, mid, row, c.key))

    def review(
        self, c: Customer, at: datetime, rating: int, order_id: str | None, by_email: bool = True
    ) -> None:
        if at >= self.end or at < self.start:
            return
        rid = f"rv_{self.uid()[:14]}"
        platform = self.rng.choice(REVIEW_PLATFORMS)
        handle = f"{c.handles[0][1]}" if c.handles and not by_email else None
        row = {
            "review_id": rid,
            "platform": platform,
            "reviewer_email": c.email if by_email or not handle else None,
            "reviewer_handle": handle,
            "rating": rating,
            "title": ["", "Awful", "Poor", "Average", "Good", "Great"][rating],
            "text": self.rng.choice(REVIEW_TEXT[rating]),
            "language": "en",
            "created_at": _iso(at),
            "order_id": order_id,
        }
        self.recs.append(Rec("reviews", at, "experience", "review", rid, row, c.key))


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _campaigns(start: date, days: int) -> list[dict]:
    out = []
    for d in range(days):
        day = start + timedelta(days=d)
        if day.weekday() in (1, 4):
            week = day.isocalendar().week
            out.append(
                {"day": d, "category": "newsletter", "utm_campaign": f"weekly_picks_w{week:02d}"}
            )
        if d % 10 == 3:
            out.append({"day": d, "category": "promo", "utm_campaign": f"flash_sale_{day:%m%d}"})
        if d % 14 == 7:
            out.append({"day": d, "category": "loyalty", "utm_campaign": f"rewards_{day:%m%d}"})
    out.append({"day": -1, "category": "transactional", "utm_campaign": "order_confirmation"})
    return out


def _make_customer(rng: random.Random, idx: int, persona: str, key: str) -> Customer:
    p = PERSONAS.get(persona, PERSONAS["researcher"])
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first}.{last}.{idx}@{rng.choice(DOMAINS)}"
    n_devices = rng.randint(*p["devices"])
    devices = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n_devices)]
    handles = []
    if rng.random() < p["social"]:
        for platform in rng.sample(PLATFORMS, rng.choice([1, 1, 2])):
            handles.append((platform, f"{first}{last}_{idx}_{platform[:2]}"))
    c = Customer(
        key=key,
        persona=persona,
        email=email,
        user_id=None,
        devices=devices,
        handles=handles,
        handles_in_crm=rng.random() < 0.85,
        subscribed=rng.random() < p["subscribe"],
    )
    for d in devices:
        if rng.random() < SKEWED_DEVICE_RATE:
            c.skew[d] = timedelta(seconds=rng.choice([-1, 1]) * rng.randint(60, 3 * 3600))
    return c


def _simulate(sim: Sim, c: Customer) -> None:
    """Journeys of one customer, from the persona's behaviour."""
    rng = sim.rng
    p = PERSONAS[c.persona]
    span = (sim.end - sim.start).total_seconds()
    n_journeys = rng.randint(*p["journeys"])
    starts = sorted(
        sim.start + timedelta(seconds=rng.uniform(0, span * 0.95)) for _ in range(n_journeys)
    )
    if c.subscribed:
        c.subscribed_at = sim.start - timedelta(days=rng.randint(1, 300))
        if rng.random() < 0.6 or c.persona == "loyal_repeat":
            c.user_id = f"usr_{sim.uid()[:12]}"
            c.signup_at = c.subscribed_at
    next_free = sim.start
    for j_start in starts:
        t = max(j_start, next_free)
        entry = rng.choice(p["entry"])
        if entry == "email" and not c.subscribed:
            entry = "organic_search"
        first_device = c.devices[0]
        # discovery touch off-site
        if entry == "paid_social" and c.handles:
            sim.social(
                c,
                t - timedelta(seconds=5),
                "ad_click",
                "discovery",
                "",
                campaign="trail_season",
                url=f"{SITE}/landing/trail-season?utm_source=instagram&utm_medium=paid_social&utm_campaign=trail_season",
            )
        if entry == "social_mention" and c.handles:
            sim.social(
                c,
                t - timedelta(hours=rng.randint(1, 30)),
                "mention",
                "discovery",
                f"Has anyone tried @{BRAND} gear? Looking for a new tent.",
                sentiment="neutral",
            )
        n_sessions = rng.randint(*p["sessions"])
        buys = rng.random() < p["buy"]
        plan = _session_plan(rng, c, n_sessions, buys, p)
        for i, steps in enumerate(plan):
            device = first_device if not c.user_id or i == 0 else rng.choice(c.devices)
            if c.user_id is None:
                device = first_device
            if steps and steps[0][1] == "signup" and c.subscribed:
                steps = steps[1:]
            t = sim.session(c, t, device, steps, entry if i == 0 else None)
            if any(s == "order" for _, s in steps):
                _after_purchase(sim, c, t, p)
            t += timedelta(hours=rng.expovariate(1 / p["gap_hours"]) + 0.6)
        next_free = t
    _emails(sim, c, p)


def _session_plan(
    rng: random.Random, c: Customer, n: int, buys: bool, p: dict
) -> list[list[tuple[str, str]]]:
    plan: list[list[tuple[str, str]]] = []
    plan.append([("discovery", "browse")] + [("discovery", "browse")] * rng.randint(0, 2))
    for _ in range(max(0, n - 2)):
        steps = [("consideration", rng.choice(["list", "search", "product"]))]
        steps += [
            ("consideration", rng.choice(["product", "product", "reviews", "list"]))
            for _ in range(rng.randint(1, 4))
        ]
        if rng.random() < 0.25:
            steps.append(("consideration", "cart"))
        plan.append(steps)
    if n >= 2 or buys:
        last = [("consideration", "product"), ("consideration", "cart")]
        if buys:
            if not c.user_id and rng.random() < 0.5:
                last.insert(0, ("consideration", "signup"))
            last += [("purchase", "checkout"), ("purchase", "pay"), ("purchase", "order")]
        elif c.persona == "bargain_hunter" and rng.random() < p.get("abandon", 0):
            last += [("purchase", "checkout")]
        elif c.persona == "window_shopper" and rng.random() < 0.5:
            last = [("consideration", "product")]
        if n >= 2 or not buys:
            plan.append(last)
        else:
            plan[0] = plan[0] + last
    return plan


def _after_purchase(sim: Sim, c: Customer, t: datetime, p: dict) -> None:
    rng = sim.rng
    order_id = c.orders[-1]
    good = rng.random() < (0.85 if c.persona == "loyal_repeat" else 0.7)
    sim.email(
        c,
        t + timedelta(days=rng.uniform(0.5, 2)),
        "transactional",
        "order_shipped",
        clicks=True,
        order_id=order_id,
        open_rate=0.6,
    )
    device = rng.choice(c.devices)
    sim.session(c, t + timedelta(days=rng.uniform(1, 3)), device, [("experience", "account")], None)
    if not good:
        if c.handles and rng.random() < 0.6:
            sim.social(
                c,
                t + timedelta(days=rng.uniform(2, 5)),
                "dm",
                "experience",
                f"My order {order_id} is late, can someone help?",
                sentiment="negative",
            )
        if rng.random() < 0.3:
            sim.session(
                c, t + timedelta(days=rng.uniform(3, 8)), device, [("experience", "refund")], None
            )
    if rng.random() < p["review"] or (not good and rng.random() < 0.5):
        rating = rng.choice([4, 5, 5]) if good else rng.choice([1, 2, 2, 3])
        sim.review(
            c,
            t + timedelta(days=rng.uniform(3, 10)),
            rating,
            order_id,
            by_email=not c.handles or rng.random() < 0.7,
        )
    if good and (c.persona == "loyal_repeat" or rng.random() < 0.15):
        sim.session(
            c, t + timedelta(days=rng.uniform(4, 12)), device, [("loyalty", "rewards")], None
        )
        if c.handles and rng.random() < 0.5:
            sim.social(
                c,
                t + timedelta(days=rng.uniform(5, 14)),
                "share",
                "loyalty",
                f"Loving my new gear from @{BRAND}!",
                sentiment="positive",
            )
    elif c.handles and rng.random() < 0.3:
        sim.social(
            c,
            t + timedelta(days=rng.uniform(1, 6)),
            "comment",
            "consideration",
            f"@{BRAND} does this come in other colours?",
            reply_to=f"post_{rng.randint(1, 40)}",
        )


def _emails(sim: Sim, c: Customer, p: dict) -> None:
    rng = sim.rng
    open_rate = {
        "researcher": 0.35,
        "bargain_hunter": 0.45,
        "impulse_buyer": 0.15,
        "loyal_repeat": 0.5,
        "window_shopper": 0.12,
    }[c.persona]
    for camp in sim.campaigns:
        if camp["day"] < 0 or not c.subscribed:
            continue
        if camp["category"] == "loyalty" and not c.purchased:
            continue
        at = sim.start + timedelta(days=camp["day"], hours=9, minutes=rng.randint(0, 90))
        click = sim.email(c, at, camp["category"], camp["utm_campaign"], open_rate=open_rate)
        if click is not None:
            device = rng.choice(c.devices) if c.user_id else c.devices[0]
            stage = "loyalty" if camp["category"] == "loyalty" else "consideration"
            steps = (
                [(stage, "rewards")]
                if stage == "loyalty"
                else [(stage, "product"), (stage, "list")]
            )
            sim.session(c, click + timedelta(seconds=rng.randint(1, 5)), device, steps, "email")


def _edge_case(sim: Sim, c: Customer, name: str) -> list[str]:
    """Named customers that exercise one tricky case each; returns extra notes."""
    rng = sim.rng
    t = sim.start + timedelta(days=2, hours=10)
    c.user_id = f"usr_edge_{name}"
    c.signup_at = sim.start - timedelta(days=30)
    dev = c.devices[0]
    if name == "late_arrival_4d":
        sim.session(
            c,
            t,
            dev,
            [("discovery", "browse"), ("consideration", "product"), ("consideration", "product")],
            "direct",
        )
    elif name == "duplicate_event":
        sim.session(
            c,
            t,
            dev,
            [
                ("consideration", "product"),
                ("consideration", "cart"),
                ("purchase", "checkout"),
                ("purchase", "pay"),
                ("purchase", "order"),
            ],
            "direct",
        )
    elif name == "id_switch_mid_session":
        c.signup_at = None
        c.user_id = None
        sim.session(
            c, t, dev, [("discovery", "browse"), ("consideration", "product")], "paid_search"
        )
        t2 = t + timedelta(minutes=6)
        c.user_id = "usr_edge_id_switch_mid_session"
        c.signup_at = t2
        sim.web(c, dev, t2, "identify", "unclassified")
        new_anon = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        c.devices.append(new_anon)
        c.identified_devices.add(new_anon)
        sim.session(
            c,
            t2 + timedelta(minutes=1),
            new_anon,
            [("consideration", "product"), ("consideration", "cart")],
            None,
        )
    elif name == "bot_endless_session":
        c.user_id = None
        c.signup_at = None
        for i in range(2 * 24 * 180):
            sim.web(
                c,
                dev,
                t + timedelta(seconds=20 * i),
                "page",
                "consideration",
                path=f"/products/sku-{i % 48:04d}",
            )
    elif name == "reviews_only":
        c.user_id = None
        c.handles = []
        sim.review(c, t, 2, None, by_email=True)
    return []


def generate(
    out: Path,
    customers: int,
    start: date,
    days: int,
    seed: int,
    progress: Callable[[str], None] = print,
) -> dict:
    """Write landing files and ground truth for ``customers`` customers over ``days`` days."""
    out = Path(out)
    landing = out / "landing"
    truth = out / "truth"
    start_dt = datetime(start.year, start.month, start.day, tzinfo=UTC)
    end_dt = start_dt + timedelta(days=days)
    campaigns = _campaigns(start, days)
    writer = _Writer(landing, start, days)
    truth_writer = _TruthWriter(truth)
    personas = list(PERSONAS)
    weights = [PERSONAS[p]["weight"] for p in personas]
    n_edges = len(EDGE_CASES) if customers >= 50 else 0
    total = 0
    for chunk_start in range(0, customers, CHUNK_CUSTOMERS):
        for idx in range(chunk_start, min(customers, chunk_start + CHUNK_CUSTOMERS)):
            rng = random.Random(f"{seed}:{idx}")
            sim = Sim(rng, start_dt, end_dt, campaigns)
            if idx < n_edges:
                name = EDGE_CASES[idx]
                c = _make_customer(rng, idx, "researcher", f"edge_{name}")
                c.handles_in_crm = True
                _edge_case(sim, c, name)
            else:
                persona = rng.choices(personas, weights)[0]
                c = _make_customer(rng, idx, persona, f"c{idx:07d}")
                _simulate(sim, c)
            sim.recs.sort(key=lambda r: r.at)
            total += writer.write_customer(rng, c, sim.recs, truth_writer)
            truth_writer.customer(c)
        truth_writer.flush()
        progress(
            f"  generated {min(customers, chunk_start + CHUNK_CUSTOMERS):,}/{customers:,} "
            f"customers, {total:,} records"
        )
    writer.close()
    truth_writer.close()
    stats = {"customers": customers, "records": total, "days": days, "start": start.isoformat()}
    (truth / "summary.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


class _Writer:
    """Appends serialised records to one file per source and landing day."""

    SOCIAL_COLUMNS: ClassVar[list[str]] = social.COLUMNS
    CRM_COLUMNS: ClassVar[list[str]] = ["user_id", "email", "social_handles", "created_at"]
    NAMES: ClassVar[dict[str, str]] = {
        "web": "segment-events.jsonl",
        "email": "sendgrid-events.jsonl",
        "social": "mentions.csv",
        "reviews": "reviews.jsonl",
        "crm": "customers.csv",
    }

    def __init__(self, landing: Path, start: date, days: int):
        self.landing = landing
        self.start = start
        self.days = days
        self.files: dict[tuple[str, int], object] = {}
        self.lines: dict[tuple[str, int], int] = {}

    def _file(self, source: str, day: int):
        key = (source, day)
        if key not in self.files:
            folder = self.landing / source / (self.start + timedelta(days=day)).isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            fh = (folder / self.NAMES[source]).open("wb")
            self.files[key] = fh
            self.lines[key] = 0
            if source == "social":
                self._emit(source, day, _csv_line(self.SOCIAL_COLUMNS))
            if source == "crm":
                self._emit(source, day, _csv_line(self.CRM_COLUMNS))
        return self.files[key]

    def _emit(self, source: str, day: int, data: bytes) -> tuple[str, int]:
        fh = self._file(source, day)
        fh.write(data)
        line = self.lines[(source, day)] + 1
        self.lines[(source, day)] += data.count(b"\n")
        rel = f"{source}/{(self.start + timedelta(days=day)).isoformat()}/{self.NAMES[source]}"
        return rel, line

    def _serialise(self, rec: Rec) -> bytes:
        if rec.source == "social":
            return _csv_line([rec.payload.get(c) or "" for c in self.SOCIAL_COLUMNS])
        return (json.dumps(rec.payload, separators=(",", ":")) + "\n").encode()

    def write_customer(
        self, rng: random.Random, c: Customer, recs: list[Rec], truth: _TruthWriter
    ) -> int:
        written = 0
        start_dt = datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)
        late_edge = c.key == "edge_late_arrival_4d"
        dup_edge = c.key == "edge_duplicate_event"
        for i, rec in enumerate(recs):
            day = (rec.at - start_dt).days
            late = 0
            if late_edge and i == 1:
                late = 4
            elif rng.random() < LATE_RATE:
                late = rng.randint(1, 5)
            land = day + late
            if land >= self.days:
                continue
            malformed = None
            if c.key.startswith("c") and rng.random() < MALFORMED_RATE:
                malformed = _malform(rng, rec, start_dt + timedelta(days=land))
            if malformed is not None:
                data, reason = malformed
                file, line = self._emit(rec.source, land, data)
                truth.record(rec, c, file, line, land, "malformed", reason, late)
                written += 1
                continue
            data = self._serialise(rec)
            file, line = self._emit(rec.source, land, data)
            truth.record(rec, c, file, line, land, "ok", None, late)
            written += 1
            is_dup = (
                dup_edge and rec.event_type == "Order Completed"
            ) or rng.random() < DUPLICATE_RATE
            if is_dup:
                dland = min(self.days - 1, land + rng.choice([0, 1, 1, 2, 3]))
                file, line = self._emit(rec.source, dland, data)
                truth.record(rec, c, file, line, dland, "duplicate", None, dland - day)
                written += 1
        if c.user_id and c.key != "edge_reviews_only":
            signup_day = max(0, min(self.days - 1, ((c.signup_at or start_dt) - start_dt).days))
            handles = ";".join(f"{p}:@{h}" for p, h in c.handles) if c.handles_in_crm else ""
            row = [c.user_id, c.email, handles, _iso(c.signup_at or start_dt)]
            file, line = self._emit("crm", signup_day, _csv_line(row))
            truth.crm(c, file, line)
        return written

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()


def _csv_line(values: list) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode()


def _malform(rng: random.Random, rec: Rec, land_at: datetime) -> tuple[bytes, str] | None:
    """A broken version of the record and the quarantine reason it must get."""
    kinds = {
        "web": [
            "invalid_json",
            "missing_id",
            "missing_identity",
            "invalid_timestamp",
            "future_timestamp",
            "unknown_event",
            "wrong_type",
            "invalid_utf8",
        ],
        "email": [
            "invalid_json",
            "missing_id",
            "missing_identity",
            "invalid_timestamp",
            "future_timestamp",
            "unknown_event",
            "wrong_type",
            "invalid_utf8",
        ],
        "social": [
            "invalid_csv",
            "missing_id",
            "missing_identity",
            "invalid_timestamp",
            "future_timestamp",
            "unknown_event",
            "invalid_utf8",
        ],
        "reviews": [
            "invalid_json",
            "missing_id",
            "missing_identity",
            "invalid_timestamp",
            "future_timestamp",
            "rating_out_of_range",
            "wrong_type",
            "invalid_utf8",
        ],
    }[rec.source]
    kind = rng.choice(kinds)
    p = dict(rec.payload)
    future = _iso(land_at + timedelta(days=rng.randint(400, 4000)))
    if rec.source == "social":
        cols = _Writer.SOCIAL_COLUMNS
        if kind == "invalid_csv":
            return _csv_line([p.get(c) or "" for c in cols] + ["extra"]), kind
        if kind == "invalid_utf8":
            line = _csv_line([p.get(c) or "" for c in cols])
            return line.replace(b"@", "caf\u00e9 @".encode("latin-1"), 1), kind
        edit = {
            "missing_id": {"mention_id": ""},
            "missing_identity": {"author_handle": ""},
            "invalid_timestamp": {"created_at": "31/02/2026 25:61"},
            "future_timestamp": {"created_at": future},
            "unknown_event": {"kind": "like"},
        }[kind]
        p.update(edit)
        return _csv_line([p.get(c) or "" for c in cols]), kind
    if kind == "invalid_json":
        text = json.dumps(p, separators=(",", ":"))
        return (text[: rng.randint(10, len(text) - 5)] + "\n").encode(), kind
    if kind == "invalid_utf8":
        text = json.dumps(p, separators=(",", ":"), ensure_ascii=False)
        return (text[:-1] + ',"note":"caf\u00e9"}\n').encode("latin-1", errors="replace"), kind
    if rec.source == "web":
        if kind == "missing_id":
            p.pop("messageId")
        elif kind == "missing_identity":
            p.pop("anonymousId", None)
            p.pop("userId", None)
        elif kind == "invalid_timestamp":
            p["timestamp"] = "not a timestamp"
        elif kind == "future_timestamp":
            p["timestamp"] = future
        elif kind == "unknown_event":
            p["type"] = "track"
            p["event"] = "Wishlist Sparkled"
        elif kind == "wrong_type":
            p["context"] = "mobile-app"
    elif rec.source == "email":
        if kind == "missing_id":
            p.pop("sg_event_id")
        elif kind == "missing_identity":
            p.pop("email")
        elif kind == "invalid_timestamp":
            p["timestamp"] = "yesterday"
        elif kind == "future_timestamp":
            p["timestamp"] = int(datetime.fromisoformat(future.replace("Z", "+00:00")).timestamp())
        elif kind == "unknown_event":
            p["event"] = "opened_twice"
        elif kind == "wrong_type":
            p["category"] = {"name": "newsletter"}
    elif rec.source == "reviews":
        if kind == "missing_id":
            p.pop("review_id")
        elif kind == "missing_identity":
            p["reviewer_email"] = None
            p["reviewer_handle"] = None
        elif kind == "invalid_timestamp":
            p["created_at"] = "last tuesday"
        elif kind == "future_timestamp":
            p["created_at"] = future
        elif kind == "rating_out_of_range":
            p["rating"] = rng.choice([0, 6, 7, 10])
        elif kind == "wrong_type":
            p["rating"] = "five stars"
    return (json.dumps(p, separators=(",", ":")) + "\n").encode(), kind


class _TruthWriter:
    """Buffers ground-truth rows and writes them as Parquet parts, one per chunk."""

    def __init__(self, truth: Path):
        self.truth = truth
        (truth / "records").mkdir(parents=True, exist_ok=True)
        for old in (truth / "records").glob("part-*.parquet"):
            old.unlink()
        self.rows: dict[str, list] = {
            k: []
            for k in (
                "source",
                "native_id",
                "file",
                "line",
                "landing_date",
                "customer_key",
                "persona",
                "stage",
                "native_event",
                "occurred_at",
                "status",
                "reason",
                "late_days",
            )
        }
        self.customers: list[dict] = []
        self.identifiers: list[dict] = []
        self.crm_rows: list[dict] = []
        self.part = 0
        self.start: date | None = None

    def record(
        self,
        rec: Rec,
        c: Customer,
        file: str,
        line: int,
        land: int,
        status: str,
        reason: str | None,
        late: int,
    ) -> None:
        r = self.rows
        r["source"].append(rec.source)
        r["native_id"].append(rec.native_id)
        r["file"].append(file)
        r["line"].append(line)
        r["landing_date"].append(file.split("/")[1])
        r["customer_key"].append(c.key)
        r["persona"].append(c.persona)
        r["stage"].append(rec.stage)
        r["native_event"].append(rec.event_type)
        r["occurred_at"].append(rec.at)
        r["status"].append(status)
        r["reason"].append(reason)
        r["late_days"].append(late)

    def customer(self, c: Customer) -> None:
        self.customers.append(
            {
                "customer_key": c.key,
                "persona": c.persona,
                "user_id": c.user_id,
                "email": c.email,
                "purchased": c.purchased,
                "orders": len(c.orders),
            }
        )
        ids = [("email", c.email)] + [("anonymous_id", d) for d in c.devices]
        if c.user_id:
            ids.append(("user_id", c.user_id))
        ids += [("social_handle", f"{p}:{h}") for p, h in c.handles]
        self.identifiers += [{"kind": k, "value": v, "customer_key": c.key} for k, v in ids]

    def crm(self, c: Customer, file: str, line: int) -> None:
        self.crm_rows.append({"customer_key": c.key, "file": file, "line": line})

    def flush(self) -> None:
        if not self.rows["source"]:
            return
        frame = pl.DataFrame(
            self.rows,
            schema_overrides={"occurred_at": pl.Datetime("us", "UTC"), "reason": pl.String},
        )
        frame.write_parquet(self.truth / "records" / f"part-{self.part:05d}.parquet")
        self.part += 1
        for v in self.rows.values():
            v.clear()

    def close(self) -> None:
        self.flush()
        pl.DataFrame(self.customers).write_csv(self.truth / "customers.csv")
        pl.DataFrame(self.identifiers).write_csv(self.truth / "identifiers.csv")
        pl.DataFrame(
            self.crm_rows, schema={"customer_key": pl.String, "file": pl.String, "line": pl.Int64}
        ).write_csv(self.truth / "crm_rows.csv")
