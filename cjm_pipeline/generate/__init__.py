"""Deterministic sample data in native landing formats, plus ground truth.

``generate(out, customers, start, days, seed, profile=...)`` writes landing files
under ``<out>/landing`` and ground truth under ``<out>/truth`` (never read by the
pipeline). A profile is one module with a ``generate`` function of the same
arguments (without ``profile``); add a third by writing one and naming it in
``PROFILES``.

Profiles:
- ``multichannel`` (default): an online shop's own feeds: web (Segment JSON lines),
  email (SendGrid webhook JSON lines), social (listening export CSV), reviews
  (review export JSON lines) and a crm customers export, with late arrival,
  re-delivery, device clock skew and malformed records of every kind.
- ``marketplace``: what a marketplace exports and nothing else: orders (JSON lines,
  one snapshot of each order, landed on the day of its last status change) and
  reviews keyed by order id (CSV in several languages).

Ground truth, every profile:
- ``records/part-*.parquet``: one row per written landing record: ``source``,
  ``native_id``, ``file`` and ``line`` (where it was written), ``landing_date``,
  ``customer_key``, ``persona``, ``stage`` (intended journey stage),
  ``native_event``, ``occurred_at`` (true time), ``status`` (ok, duplicate or
  malformed), ``reason`` (the quarantine reason ingestion must give a malformed
  record) and ``late_days`` (days it landed after its own day).
- ``customers.csv`` (one row per customer: key, persona, user_id, email, purchased,
  orders), ``identifiers.csv`` (kind, value, customer_key: the true owner of every
  identifier), ``crm_rows.csv`` (customer_key, file, line of each crm row) and
  ``summary.json`` (counts and the arguments).

Marketplace only:
- ``orders.parquet``: one row per order purchased in the range: ``order_id``,
  ``customer_id``, ``status`` (as of the written snapshot), ``purchased_at``,
  ``delivered_at``, ``revenue`` (items' price x quantity plus freight),
  ``is_repeat`` (not the customer's first order) and ``previous_order_at``.
- ``reviews.parquet``: one row per review written: ``review_id``, ``order_id``,
  ``customer_id``, ``rating``, ``language`` (the true one, also where the file
  leaves it empty; null for a review without text), ``has_text``, ``created_at``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from cjm_pipeline.generate import marketplace, multichannel
from cjm_pipeline.generate.multichannel_journeys import EDGE_CASES, PERSONAS

PROFILES: dict[str, Callable[..., dict]] = {
    "multichannel": multichannel.generate,
    "marketplace": marketplace.generate,
}

__all__ = ["EDGE_CASES", "PERSONAS", "PROFILES", "generate"]


def generate(
    out: Path,
    customers: int,
    start: date,
    days: int,
    seed: int,
    progress: Callable[[str], None] = print,
    profile: str = "multichannel",
) -> dict:
    """Write landing files and ground truth for ``customers`` customers over ``days`` days."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[profile](Path(out), customers, start, days, seed, progress)
