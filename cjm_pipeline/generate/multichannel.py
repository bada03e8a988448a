"""The multichannel profile: an online shop's own feeds.

Customers of five personas (``multichannel_journeys``) across web (Segment JSON
lines), email (SendGrid webhook JSON lines), social (listening export CSV) and
reviews (review export JSON lines), with a crm customers export; then the mess of
real feeds: late arrival, re-delivery, device clock skew and malformed records of
every kind. Customers are simulated in chunks and their records appended to the
per-day files, so cost is linear in the number of customers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

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
from cjm_pipeline.generate.multichannel_events import Customer, Sim
from cjm_pipeline.generate.multichannel_journeys import (
    EDGE_CASES,
    PERSONAS,
    edge_case,
    make_customer,
    simulate,
)
from transforms import social

CHUNK_CUSTOMERS = 2000
MALFORMED_RATE = 0.004
LATE_RATE = 0.02
DUPLICATE_RATE = 0.01
FILE_NAMES = {
    "web": "segment-events.jsonl",
    "email": "sendgrid-events.jsonl",
    "social": "mentions.csv",
    "reviews": "reviews.jsonl",
    "crm": "customers.csv",
}
CRM_COLUMNS = ["user_id", "email", "social_handles", "created_at"]
_JSON_KINDS = [
    "invalid_json",
    "missing_id",
    "missing_identity",
    "invalid_timestamp",
    "future_timestamp",
    "unknown_event",
    "wrong_type",
    "invalid_utf8",
]
MALFORM_KINDS = {
    # A web call names any event (custom names are kept): a track call without one is
    # the web's vocabulary defect.
    "web": [k if k != "unknown_event" else "unknown_call" for k in _JSON_KINDS],
    "email": _JSON_KINDS,
    "social": [
        "invalid_csv",
        "missing_id",
        "missing_identity",
        "invalid_timestamp",
        "future_timestamp",
        "unknown_event",
        "invalid_utf8",
    ],
    "reviews": [k if k != "unknown_event" else "rating_out_of_range" for k in _JSON_KINDS],
}


def _email_future(p: dict, future: str, _rng: random.Random) -> None:
    p["timestamp"] = int(datetime.fromisoformat(future.replace("Z", "+00:00")).timestamp())


def _set_future(field: str) -> Callable[[dict, str, random.Random], None]:
    def edit(p: dict, future: str, _rng: random.Random) -> None:
        p[field] = future

    return edit


def _rating_out_of_range(p: dict, _future: str, rng: random.Random) -> None:
    p["rating"] = rng.choice([0, 6, 7, 10])


MALFORM_EDITS: dict[str, Edits] = {
    "web": {
        "missing_id": drop_fields("messageId"),
        "missing_identity": drop_fields("anonymousId", "userId"),
        "invalid_timestamp": set_fields(timestamp="not a timestamp"),
        "future_timestamp": _set_future("timestamp"),
        "unknown_call": set_fields(type="track", event=None),
        "wrong_type": set_fields(context="mobile-app"),
    },
    "email": {
        # Without sg_event_id an id is derived from the message id or address and the
        # time: an event has no id only when neither is there.
        "missing_id": drop_fields("sg_event_id", "sg_message_id", "email"),
        "missing_identity": drop_fields("email"),
        "invalid_timestamp": set_fields(timestamp="yesterday"),
        "future_timestamp": _email_future,
        "unknown_event": set_fields(event="opened_twice"),
        "wrong_type": set_fields(category={"name": "newsletter"}),
    },
    "social": {
        "missing_id": set_fields(mention_id=""),
        "missing_identity": set_fields(author_handle=""),
        "invalid_timestamp": set_fields(created_at="31/02/2026 25:61"),
        "future_timestamp": _set_future("created_at"),
        "unknown_event": set_fields(kind="like"),
    },
    "reviews": {
        "missing_id": drop_fields("review_id"),
        "missing_identity": set_fields(reviewer_email=None, reviewer_handle=None),
        "invalid_timestamp": set_fields(created_at="last tuesday"),
        "future_timestamp": _set_future("created_at"),
        "rating_out_of_range": _rating_out_of_range,
        "wrong_type": set_fields(rating="five stars"),
    },
}


def generate(
    out: Path, customers: int, start: date, days: int, seed: int, progress: Callable[[str], None]
) -> dict:
    """Write the multichannel landing files and ground truth."""
    start_dt = start_of(start)
    end_dt = start_dt + timedelta(days=days)
    campaigns = email_campaigns(start, days)
    files = LandingFiles(
        out / "landing", start, FILE_NAMES, {"social": social.COLUMNS, "crm": CRM_COLUMNS}
    )
    truth = TruthWriter(out / "truth")
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
                c = make_customer(rng, idx, "researcher", f"edge_{name}")
                c.handles_in_crm = True
                edge_case(sim, c, name)
            else:
                persona = rng.choices(personas, weights)[0]
                c = make_customer(rng, idx, persona, f"c{idx:07d}")
                simulate(sim, c)
            sim.recs.sort(key=lambda r: r.at)
            total += _write_customer(files, days, rng, c, sim.recs, truth)
            truth.customer(*_truth_customer(c))
        truth.flush()
        progress(
            f"  generated {min(customers, chunk_start + CHUNK_CUSTOMERS):,}/{customers:,} "
            f"customers, {total:,} records"
        )
    files.close()
    truth.close()
    stats = {"customers": customers, "records": total, "days": days, "start": start.isoformat()}
    write_summary(out / "truth", stats)
    return stats


def email_campaigns(start: date, days: int) -> list[dict]:
    """The sends of the range: newsletters on Tuesdays and Fridays, a promo every ten
    days, a loyalty send every two weeks, and the transactional stream."""
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


def _serialise(rec: Rec) -> bytes:
    if rec.source == "social":
        return csv_line([rec.payload.get(c) or "" for c in social.COLUMNS])
    return json_line(rec.payload)


def _malform(rng: random.Random, rec: Rec, land_at: datetime) -> tuple[bytes, str]:
    """A broken version of the record and the quarantine reason it must get."""
    kinds, edits = MALFORM_KINDS[rec.source], MALFORM_EDITS[rec.source]
    if rec.source == "social":
        return malform_csv(rng, rec.payload, social.COLUMNS, kinds, edits, land_at, "author_handle")
    return malform_json(rng, rec.payload, kinds, edits, land_at)


def _write_customer(
    files: LandingFiles,
    days: int,
    rng: random.Random,
    c: Customer,
    recs: list[Rec],
    truth: TruthWriter,
) -> int:
    """Land a customer's records (late, duplicated or broken as the rates say) and
    their crm row; returns how many records were written."""
    written = 0
    start_dt = start_of(files.start)
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
        if land >= days:
            continue
        if c.key.startswith("c") and rng.random() < MALFORMED_RATE:
            data, reason = _malform(rng, rec, start_dt + timedelta(days=land))
            where = files.emit(rec.source, land, data)
            truth.record(rec, c.key, c.persona, where, "malformed", reason, late)
            written += 1
            continue
        data = _serialise(rec)
        where = files.emit(rec.source, land, data)
        truth.record(rec, c.key, c.persona, where, "ok", None, late)
        written += 1
        is_dup = (dup_edge and rec.event_type == "Order Completed") or rng.random() < DUPLICATE_RATE
        if is_dup:
            dland = min(days - 1, land + rng.choice([0, 1, 1, 2, 3]))
            where = files.emit(rec.source, dland, data)
            truth.record(rec, c.key, c.persona, where, "duplicate", None, dland - day)
            written += 1
    if c.user_id and c.key != "edge_reviews_only":
        signup_day = max(0, min(days - 1, ((c.signup_at or start_dt) - start_dt).days))
        handles = ";".join(f"{p}:@{h}" for p, h in c.handles) if c.handles_in_crm else ""
        row = [c.user_id, c.email, handles, iso(c.signup_at or start_dt)]
        truth.crm(c.key, files.emit("crm", signup_day, csv_line(row)))
    return written


def _truth_customer(c: Customer) -> tuple[dict, list[tuple[str, str]]]:
    row = {
        "customer_key": c.key,
        "persona": c.persona,
        "user_id": c.user_id,
        "email": c.email,
        "purchased": c.purchased,
        "orders": len(c.orders),
    }
    ids = [("email", c.email)] + [("anonymous_id", d) for d in c.devices]
    if c.user_id:
        ids.append(("user_id", c.user_id))
    ids += [("social_handle", f"{p}:{h}") for p, h in c.handles]
    return row, ids
