"""The multichannel profile's customers: five personas walking discovery,
consideration, purchase, experience and loyalty, and the named edge cases."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from cjm_pipeline.generate.common import new_uuid
from cjm_pipeline.generate.multichannel_events import (
    BRAND,
    SITE,
    Customer,
    Sim,
    email,
    review,
    session,
    social,
    web,
)

SKEWED_DEVICE_RATE = 0.1
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


def make_customer(rng: random.Random, idx: int, persona: str, key: str) -> Customer:
    p = PERSONAS.get(persona, PERSONAS["researcher"])
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first}.{last}.{idx}@{rng.choice(DOMAINS)}"
    n_devices = rng.randint(*p["devices"])
    devices = [new_uuid(rng) for _ in range(n_devices)]
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


def simulate(sim: Sim, c: Customer) -> None:
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
            social(
                sim,
                c,
                t - timedelta(seconds=5),
                "ad_click",
                "discovery",
                "",
                campaign="trail_season",
                url=f"{SITE}/landing/trail-season?utm_source=instagram&utm_medium=paid_social&utm_campaign=trail_season",
            )
        if entry == "social_mention" and c.handles:
            social(
                sim,
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
            t = session(sim, c, t, device, steps, entry if i == 0 else None)
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
    email(
        sim,
        c,
        t + timedelta(days=rng.uniform(0.5, 2)),
        "transactional",
        "order_shipped",
        clicks=True,
        order_id=order_id,
        open_rate=0.6,
    )
    device = rng.choice(c.devices)
    session(
        sim, c, t + timedelta(days=rng.uniform(1, 3)), device, [("experience", "account")], None
    )
    if not good:
        if c.handles and rng.random() < 0.6:
            social(
                sim,
                c,
                t + timedelta(days=rng.uniform(2, 5)),
                "dm",
                "experience",
                f"My order {order_id} is late, can someone help?",
                sentiment="negative",
            )
        if rng.random() < 0.3:
            session(
                sim,
                c,
                t + timedelta(days=rng.uniform(3, 8)),
                device,
                [("experience", "refund")],
                None,
            )
    if rng.random() < p["review"] or (not good and rng.random() < 0.5):
        rating = rng.choice([4, 5, 5]) if good else rng.choice([1, 2, 2, 3])
        review(
            sim,
            c,
            t + timedelta(days=rng.uniform(3, 10)),
            rating,
            order_id,
            by_email=not c.handles or rng.random() < 0.7,
        )
    if good and (c.persona == "loyal_repeat" or rng.random() < 0.15):
        session(
            sim, c, t + timedelta(days=rng.uniform(4, 12)), device, [("loyalty", "rewards")], None
        )
        if c.handles and rng.random() < 0.5:
            social(
                sim,
                c,
                t + timedelta(days=rng.uniform(5, 14)),
                "share",
                "loyalty",
                f"Loving my new gear from @{BRAND}!",
                sentiment="positive",
            )
    elif c.handles and rng.random() < 0.3:
        social(
            sim,
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
        click = email(sim, c, at, camp["category"], camp["utm_campaign"], open_rate=open_rate)
        if click is not None:
            device = rng.choice(c.devices) if c.user_id else c.devices[0]
            stage = "loyalty" if camp["category"] == "loyalty" else "consideration"
            steps = (
                [(stage, "rewards")]
                if stage == "loyalty"
                else [(stage, "product"), (stage, "list")]
            )
            session(sim, c, click + timedelta(seconds=rng.randint(1, 5)), device, steps, "email")


def edge_case(sim: Sim, c: Customer, name: str) -> None:
    """A named customer that exercises one tricky case."""
    rng = sim.rng
    t = sim.start + timedelta(days=2, hours=10)
    c.user_id = f"usr_edge_{name}"
    c.signup_at = sim.start - timedelta(days=30)
    dev = c.devices[0]
    if name == "late_arrival_4d":
        session(
            sim,
            c,
            t,
            dev,
            [("discovery", "browse"), ("consideration", "product"), ("consideration", "product")],
            "direct",
        )
    elif name == "duplicate_event":
        session(
            sim,
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
        session(
            sim, c, t, dev, [("discovery", "browse"), ("consideration", "product")], "paid_search"
        )
        t2 = t + timedelta(minutes=6)
        c.user_id = "usr_edge_id_switch_mid_session"
        c.signup_at = t2
        web(sim, c, dev, t2, "identify", "unclassified")
        new_anon = new_uuid(rng)
        c.devices.append(new_anon)
        c.identified_devices.add(new_anon)
        session(
            sim,
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
            web(
                sim,
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
        review(sim, c, t, 2, None, by_email=True)
