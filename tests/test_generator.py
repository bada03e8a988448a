"""The generator is deterministic, rich enough, and honest about what it broke."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from cjm_pipeline.generate import EDGE_CASES, PERSONAS, generate


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _content_digest(root: Path) -> str:
    """Bytes of every file under ``root``; a Parquet file by its rows (as CSV), so the
    digest does not move with the Parquet writer's version."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        h.update(path.relative_to(root).as_posix().encode())
        if path.suffix == ".parquet":
            h.update(pl.read_parquet(path).write_csv().encode())
        else:
            h.update(path.read_bytes())
    return h.hexdigest()


# Computed once from the generator as it was before it became a package (a single
# module), for 60 customers over 4 days with seed 7 (edge cases included), so that
# tests whose expected values come from the multichannel sample keep their meaning.
# Re-pinned once since: the web's planted vocabulary defect became a track call without
# a name (a custom name is now accepted) and an email without any id also lost the
# message id and address an id is now derived from; no random draw moved, so only the
# planted lines changed.
PINNED_LANDING = "eb8357414f419408ae66ee435c229bceaf166bad935416b49f5871f8635553af"
PINNED_TRUTH = "359386c5cc08ff3f95e2451a1dde90b1816bbac48a1afe8be3cfe6eb8829c15c"


def test_multichannel_output_is_unchanged_by_the_refactoring(tmp_path: Path) -> None:
    generate(
        tmp_path, customers=60, start=date(2026, 10, 1), days=4, seed=7, progress=lambda _: None
    )
    assert _content_digest(tmp_path / "landing") == PINNED_LANDING
    assert _content_digest(tmp_path / "truth") == PINNED_TRUTH


def test_a_range_without_a_marketing_send_still_generates(tmp_path: Path) -> None:
    # 2026-03-28 to 03-30 is Saturday to Monday: no newsletter, promo or loyalty send,
    # yet a subscriber may still arrive by email.
    stats = generate(
        tmp_path, customers=80, start=date(2026, 3, 28), days=3, seed=1, progress=lambda _: None
    )
    assert stats["records"] > 0
    web = pl.read_parquet(tmp_path / "truth" / "records" / "*.parquet").filter(
        pl.col("source") == "web"
    )
    assert web.height > 0


def test_unknown_profile_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose from multichannel, marketplace"):
        generate(tmp_path, 10, date(2026, 10, 1), 2, 1, progress=lambda _: None, profile="shop")


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate(
            tmp_path / name,
            customers=120,
            start=date(2026, 10, 1),
            days=5,
            seed=seed,
            progress=lambda _: None,
        )
    a, b, c = (_digest(tmp_path / n / "landing") for n in "abc")
    assert a == b
    assert a != c
    assert _digest(tmp_path / "a" / "truth") == _digest(tmp_path / "b" / "truth")


def test_four_native_formats_and_crm_per_day(sample) -> None:
    for source, name in (
        ("web", "segment-events.jsonl"),
        ("email", "sendgrid-events.jsonl"),
        ("social", "mentions.csv"),
        ("reviews", "reviews.jsonl"),
        ("crm", "customers.csv"),
    ):
        files = list((sample.landing_dir / source).glob(f"*/{name}"))
        assert files, f"no {source} files"


def test_truth_covers_personas_stages_and_edge_cases(sample, truth) -> None:
    customers = pl.read_csv(sample.truth_dir / "customers.csv")
    assert set(customers["persona"]) >= set(PERSONAS)
    assert {f"edge_{n}" for n in EDGE_CASES} <= set(customers["customer_key"])
    ok = truth.filter(pl.col("status") == "ok")
    assert set(ok["stage"]) >= {"discovery", "consideration", "purchase", "experience", "loyalty"}
    # window shoppers never buy; loyal repeat buyers mostly do
    bought = customers.group_by("persona").agg(pl.col("purchased").mean()).to_dict(as_series=False)
    share = dict(zip(bought["persona"], bought["purchased"], strict=True))
    assert share["window_shopper"] == 0
    assert share["loyal_repeat"] > 0.5


def test_mess_of_real_feeds_is_present(truth) -> None:
    statuses = set(truth["status"])
    assert statuses == {"ok", "duplicate", "malformed"}
    assert truth.filter(pl.col("late_days") > 0).height > 0
    assert (
        truth.filter(pl.col("late_days") == 4)["customer_key"]
        .to_list()
        .count("edge_late_arrival_4d")
        == 1
    )
    reasons = set(truth.filter(pl.col("status") == "malformed")["reason"])
    assert len(reasons) >= 7


def test_rates_look_like_email_and_reviews(truth) -> None:
    ok = truth.filter(pl.col("status") == "ok")
    email = ok.filter(pl.col("source") == "email")["native_event"].value_counts()
    counts = dict(zip(email["native_event"], email["count"], strict=True))
    delivered_share = counts["delivered"] / counts["processed"]
    assert 0.9 < delivered_share < 1.0
    assert counts["click"] < counts["open"] < counts["delivered"]
