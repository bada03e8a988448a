"""The multichannel profile's records: web calls and sessions (Segment), email sends
(SendGrid), social posts and reviews, each appended to a customer's ``Sim``."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cjm_pipeline.generate.common import Rec, iso, new_uuid

BRAND = "northwind"
SITE = "https://www.northwind-outfitters.example"
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
REFERRERS = {
    "organic_search": "https://www.google.com/",
    "paid_search": "https://www.google.com/",
    "paid_social": "https://l.instagram.com/",
}
REVIEW_TEXT = {
    5: ["Excellent quality, arrived early. Will buy again.", "Love it, exactly as described."],
    4: ["Good product, delivery took a little long.", "Nice fit, solid build."],
    3: ["It is fine, nothing special.", "Okay, but the sizing runs small."],
    2: ["Disappointed, the zip broke after a week.", "Slow delivery and poor packaging."],
    1: ["Terrible, arrived damaged and support never answered.", "Asked for a refund."],
}
EMAIL_STAGE = {
    # category: (stage of the send, stage of a click)
    "newsletter": ("discovery", "consideration"),
    "promo": ("discovery", "consideration"),
    "transactional": ("experience", "experience"),
    "loyalty": ("loyalty", "loyalty"),
}


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
class Sim:
    """One customer's simulation: its random stream, the time range, the email
    campaigns, and the records made so far."""

    rng: random.Random
    start: datetime
    end: datetime
    campaigns: list[dict]
    recs: list[Rec] = field(default_factory=list)

    def uid(self) -> str:
        return new_uuid(self.rng)

    def in_range(self, at: datetime) -> bool:
        return self.start <= at < self.end


def web(
    sim: Sim,
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
) -> None:
    """One Segment call (page, track or identify) from ``device``."""
    if not sim.in_range(at):
        return
    payload: dict = {"type": kind, "messageId": sim.uid(), "anonymousId": device}
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
    _stamp(sim.rng, payload, at, c.skew.get(device))
    etype = event or kind
    sim.recs.append(Rec("web", at, stage, etype, payload["messageId"], payload, c.key))


def _stamp(rng: random.Random, payload: dict, at: datetime, skew: timedelta | None) -> None:
    """Segment's times; a skewed device clock shows in the client times only."""
    send_delay = timedelta(milliseconds=rng.randint(50, 2000))
    net = timedelta(milliseconds=rng.randint(20, 400))
    if skew is None:
        payload["timestamp"] = iso(at)
        payload["originalTimestamp"] = iso(at)
        payload["sentAt"] = iso(at + send_delay)
    else:
        payload["originalTimestamp"] = iso(at + skew)
        payload["sentAt"] = iso(at + skew + send_delay)
    payload["receivedAt"] = iso(at + send_delay + net)


# A session step: (sim, customer, device, time, stage, product) -> the step's end.
Step = Callable[[Sim, Customer, str, datetime, str, tuple], datetime]


def _track(event: str, path: Callable[[tuple], str], props: Callable[[Sim, tuple], dict]) -> Step:
    def step(sim: Sim, c: Customer, device: str, t: datetime, stage: str, product: tuple):
        web(
            sim,
            c,
            device,
            t,
            "track",
            stage,
            event=event,
            path=path(product),
            props=props(sim, product),
        )
        return t

    return step


def _browse(sim: Sim, c: Customer, device: str, t: datetime, stage: str, product: tuple):
    path = sim.rng.choice(["/", "/blog/packing-list", "/landing/trail-season"])
    web(sim, c, device, t, "page", stage, path=path)
    return t


def _product(sim: Sim, c: Customer, device: str, t: datetime, stage: str, product: tuple):
    path = f"/products/{product[0]}"
    web(sim, c, device, t, "page", stage, path=path, title=product[0])
    t += timedelta(seconds=sim.rng.randint(2, 20))
    props = {"product_id": product[0], "category": product[1], "price": product[2]}
    web(sim, c, device, t, "track", stage, event="Product Viewed", path=path, props=props)
    return t


def _signup(sim: Sim, c: Customer, device: str, t: datetime, stage: str, product: tuple):
    c.user_id = c.user_id or f"usr_{sim.uid()[:12]}"
    c.signup_at = t
    web(sim, c, device, t, "identify", "unclassified")
    t += timedelta(seconds=sim.rng.randint(1, 5))
    web(sim, c, device, t, "track", stage, event="Signed Up", path="/account/signup")
    return t


def _checkout(sim: Sim, c: Customer, device: str, t: datetime, stage: str, product: tuple):
    if not c.user_id:
        c.user_id = f"usr_{sim.uid()[:12]}"
        c.signup_at = t
    if device not in c.identified_devices:
        web(sim, c, device, t, "identify", "unclassified")
        t += timedelta(seconds=sim.rng.randint(2, 10))
    props = {"checkout_id": sim.uid()[:8]}
    web(sim, c, device, t, "track", stage, event="Checkout Started", path="/checkout", props=props)
    return t


def _order(sim: Sim, c: Customer, device: str, t: datetime, stage: str, product: tuple):
    order_id = f"ord_{sim.uid()[:10]}"
    c.orders.append(order_id)
    c.purchased = True
    total = round(sim.rng.uniform(20, 400), 2)
    props = {"order_id": order_id, "revenue": total, "currency": "EUR"}
    path = "/checkout/complete"
    web(sim, c, device, t, "track", stage, event="Order Completed", path=path, props=props)
    at = t + timedelta(seconds=30)
    email(sim, c, at, "transactional", "order_confirmation", clicks=False, order_id=order_id)
    return t


def _page(path: str, title: str) -> Step:
    def step(sim: Sim, c: Customer, device: str, t: datetime, stage: str, product: tuple):
        web(sim, c, device, t, "page", stage, path=path, title=title)
        return t

    return step


def _refund(sim: Sim, c: Customer, device: str, t: datetime, stage: str, product: tuple):
    if c.orders:
        props = {"order_id": c.orders[-1]}
        path = "/account/orders"
        web(sim, c, device, t, "track", stage, event="Order Refunded", path=path, props=props)
    return t


STEPS: dict[str, Step] = {
    "browse": _browse,
    "list": _track(
        "Product List Viewed",
        lambda p: f"/category/{p[1]}",
        lambda sim, p: {"category": p[1], "list_id": p[1]},
    ),
    "search": _track(
        "Products Searched",
        lambda p: "/search",
        lambda sim, p: {"query": sim.rng.choice(["rain jacket", "tent 2p", "wool socks"])},
    ),
    "product": _product,
    "reviews": _track(
        "Reviews Viewed", lambda p: f"/products/{p[0]}/reviews", lambda sim, p: {"product_id": p[0]}
    ),
    "cart": _track(
        "Product Added",
        lambda p: "/cart",
        lambda sim, p: {"product_id": p[0], "price": p[2], "quantity": 1},
    ),
    "signup": _signup,
    "checkout": _checkout,
    "pay": _track(
        "Payment Info Entered",
        lambda p: "/checkout/payment",
        lambda sim, p: {"step": "2", "method": sim.rng.choice(["card", "paypal"])},
    ),
    "order": _order,
    "account": _page("/account/orders", "Your orders"),
    "rewards": _page("/rewards", "Rewards"),
    "refund": _refund,
}


def session(
    sim: Sim,
    c: Customer,
    at: datetime,
    device: str,
    stage_path: list[tuple[str, str]],
    entry: str | None,
) -> datetime:
    """A web session that walks the given (stage, step) list; returns its end."""
    rng = sim.rng
    utm = AD_CAMPAIGNS.get(entry or "")
    referrer = REFERRERS.get(entry or "")
    if entry == "email":
        sends = [x for x in sim.campaigns if x["category"] != "transactional"]
        # A range without a marketing send has no newsletter link to arrive from.
        if sends:
            camp = rng.choice(sends)
            utm = ("newsletter", "email", camp["utm_campaign"])
    t = at
    landing = True
    for stage, step in stage_path:
        product = rng.choice(PRODUCTS)
        if landing:
            t = _land(sim, c, device, t, stage, product, utm, referrer, entry)
            landing = False
        t += timedelta(seconds=rng.randint(10, 240))
        t = STEPS[step](sim, c, device, t, stage, product)
    return t


def _land(
    sim: Sim,
    c: Customer,
    device: str,
    t: datetime,
    stage: str,
    product: tuple,
    utm: tuple | None,
    referrer: str | None,
    entry: str | None,
) -> datetime:
    """The landing page of a session, and the identify call a signed-in visitor makes."""
    rng = sim.rng
    path = {
        "discovery": rng.choice(["/", "/landing/trail-season", "/blog/packing-list"]),
        "experience": "/account/orders",
        "loyalty": "/rewards",
    }.get(stage, f"/products/{product[0]}")
    title = "Northwind Outfitters"
    web(sim, c, device, t, "page", stage, path=path, utm=utm, referrer=referrer, title=title)
    signed_in = c.user_id and c.signup_at and t > c.signup_at
    # A newsletter link carries the subscriber (Segment's ajs_uid / ajs_aid
    # querystring), so the site identifies the visitor by email on arrival.
    if device not in c.identified_devices and (signed_in or entry == "email"):
        t += timedelta(seconds=rng.randint(5, 40))
        web(sim, c, device, t, "identify", "unclassified")
    return t


def email(
    sim: Sim,
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
    if not sim.in_range(at):
        return None
    rng = sim.rng
    stage, click_stage = EMAIL_STAGE[category]
    base = {
        "email": c.email,
        "sg_message_id": f"{sim.uid()[:22]}.filter0001p1",
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
        if t >= sim.end:
            return
        sg = sim.uid().replace("-", "")[:22]
        payload = {**base, "event": event, "timestamp": int(t.timestamp()), "sg_event_id": sg}
        payload.update(extra)
        sim.recs.append(Rec("email", t, stage_, event, sg, payload, c.key))

    emit("processed", at, stage)
    roll = rng.random()
    t = at + timedelta(seconds=rng.randint(2, 90))
    if roll < 0.02:
        reason = f"550 5.1.1 <{c.email}>: mailbox unavailable"
        emit("bounce", t, stage, type="bounce", reason=reason, status="5.1.1")
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
    query = f"utm_source=newsletter&utm_medium=email&utm_campaign={campaign}"
    emit("click", t, click_stage, url=f"{SITE}/landing/{campaign}?{query}")
    return t


def social(
    sim: Sim,
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
    """One row of the social listening export, from one of the customer's handles."""
    if not c.handles or not sim.in_range(at):
        return
    platform, handle = sim.rng.choice(c.handles)
    mid = f"{platform[:2]}_{sim.uid()[:16]}"
    row = {
        "mention_id": mid,
        "platform": platform,
        "author_handle": "@" + handle,
        "created_at": iso(at),
        "kind": kind,
        "text": text,
        "url": url,
        "campaign": campaign,
        "in_reply_to": reply_to,
        "sentiment": sentiment,
    }
    sim.recs.append(Rec("social", at, stage, kind, mid, row, c.key))


def review(
    sim: Sim, c: Customer, at: datetime, rating: int, order_id: str | None, by_email: bool = True
) -> None:
    """One review, signed by the customer's email or (else) a social handle."""
    if not sim.in_range(at):
        return
    rid = f"rv_{sim.uid()[:14]}"
    platform = sim.rng.choice(REVIEW_PLATFORMS)
    handle = f"{c.handles[0][1]}" if c.handles and not by_email else None
    row = {
        "review_id": rid,
        "platform": platform,
        "reviewer_email": c.email if by_email or not handle else None,
        "reviewer_handle": handle,
        "rating": rating,
        "title": ["", "Awful", "Poor", "Average", "Good", "Great"][rating],
        "text": sim.rng.choice(REVIEW_TEXT[rating]),
        "language": "en",
        "created_at": iso(at),
        "order_id": order_id,
    }
    sim.recs.append(Rec("reviews", at, "experience", "review", rid, row, c.key))
