"""Ingestion of generated data, scored against the generator's ground truth."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest

from cjm_pipeline.ingest import ingest
from cjm_pipeline.settings import ALL_SOURCES, Settings
from tests.conftest import lake_events, sample_dates


def test_malformed_records_are_exactly_the_quarantined_ones(sample, truth) -> None:
    expected = (
        truth.filter(pl.col("status") == "malformed")
        .select(pl.col("file"), pl.col("line"), pl.col("reason"))
        .sort("file", "line")
    )
    quarantine = pl.read_parquet(
        sample.lake_dir / "quarantine" / "*" / "*" / "*.parquet", hive_partitioning=False
    )
    got = quarantine.select(
        pl.col("source_file").alias("file"), pl.col("source_line").alias("line"), "reason"
    ).sort("file", "line")
    assert expected.height > 40
    assert got.to_dicts() == expected.to_dicts()
    # every detail names the file and the line
    for row in quarantine.iter_rows(named=True):
        assert row["detail"].startswith(f"{row['source_file']}:{row['source_line']}")


def test_good_records_land_once_with_their_true_time(sample, truth) -> None:
    ok = truth.filter(pl.col("status") == "ok")
    events = lake_events(sample)
    assert events["event_id"].is_unique().all()
    assert events.height == ok.height
    joined = ok.join(events, on=["source", "native_id"], how="inner", suffix="_lake")
    assert joined.height == ok.height
    # device clock skew is corrected to within the network latency (< 1 s)
    drift = (joined["occurred_at"] - joined["occurred_at_lake"]).abs().max()
    assert drift.total_seconds() < 1
    # a late record lands in the partition of the day it arrived, not the day it happened
    late = joined.filter(pl.col("late_days") > 0)
    assert late.height > 0
    assert (late["source_file"] == late["file"]).all()


def test_duplicates_are_recognised_across_days(sample, truth) -> None:
    manifests = [json.loads(p.read_text()) for p in (sample.lake_dir / "manifests").rglob("*.json")]
    counted = sum(m["duplicates"] for m in manifests)
    assert counted == truth.filter(pl.col("status") == "duplicate").height
    assert sum(m["duplicates_other_dates"] for m in manifests) > 0
    assert sum(m["duplicates_in_batch"] for m in manifests) > 0


def test_counts_reconcile_for_every_source_and_date(sample, truth) -> None:
    manifests = [json.loads(p.read_text()) for p in (sample.lake_dir / "manifests").rglob("*.json")]
    # One per source and date, the sources the sample does not deliver (orders) included.
    assert len(manifests) == len(sample_dates()) * len(ALL_SOURCES)
    for m in manifests:
        assert m["read"] == m["accepted"] + m["quarantined"] + m["duplicates"], m
    events_read = sum(m["read"] for m in manifests if m["source"] != "crm")
    assert events_read == truth.height


def _lake_strings(lake: Path) -> list[str]:
    texts = []
    for path in lake.rglob("*"):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            for name, dtype in frame.schema.items():
                if dtype == pl.String:
                    texts.extend(frame[name].drop_nulls().to_list())
        elif path.is_file():
            texts.append(path.read_text())
    return texts


def test_no_raw_email_or_handle_reaches_the_lake(sample) -> None:
    identifiers = pl.read_csv(sample.truth_dir / "identifiers.csv")
    emails = identifiers.filter(pl.col("kind") == "email")["value"].to_list()
    handles = [
        v.split(":", 1)[1]
        for v in identifiers.filter(pl.col("kind") == "social_handle")["value"].to_list()
    ]
    assert emails and handles
    haystack = pl.Series(_lake_strings(sample.lake_dir)).str.to_lowercase()
    needles = [e.lower() for e in emails] + [h.lower() for h in handles]
    leaks = haystack.filter(haystack.str.contains_any(needles))
    assert leaks.len() == 0, leaks.head(3).to_list()


def test_emails_hash_with_the_configured_salt(sample) -> None:
    identifiers = pl.read_csv(sample.truth_dir / "identifiers.csv")
    email = identifiers.filter(pl.col("kind") == "email")["value"][0]
    expected = hashlib.sha256(f"{sample.salt}{email.lower()}".encode()).hexdigest()
    crm = pl.read_parquet(
        sample.lake_dir / "crm_customers" / "*" / "*.parquet", hive_partitioning=False
    )
    events = lake_events(sample)
    assert expected in set(crm["email_sha256"]) | set(events["email_sha256"].drop_nulls())


def _lake_digest(lake: Path) -> dict[str, str]:
    return {
        p.relative_to(lake).as_posix(): hashlib.sha256(
            pl.read_parquet(p).write_ipc(None).getvalue()
        ).hexdigest()
        for p in sorted(lake.rglob("*.parquet"))
    }


@pytest.mark.parametrize("order", ["forward", "backward"])
def test_reingest_and_backfill_order_leave_the_same_lake(sample, tmp_path, order) -> None:
    """Ingesting twice, or in reverse date order, gives the lake of one forward pass."""
    expected = _lake_digest(sample.lake_dir)
    copy = Settings(data_dir=tmp_path, salt=sample.salt)
    # Hard links: a landing folder reached through a symbolic link is refused.
    shutil.copytree(sample.landing_dir, tmp_path / "landing", copy_function=os.link)
    dates = sample_dates() if order == "forward" else list(reversed(sample_dates()))
    ingest(copy, dates, progress=lambda _: None)
    ingest(copy, dates, progress=lambda _: None)
    assert _lake_digest(copy.lake_dir) == expected
    manifests = {
        p.relative_to(copy.lake_dir).as_posix(): json.loads(p.read_text())
        for p in (copy.lake_dir / "manifests").rglob("*.json")
    }
    for rel, m in manifests.items():
        original = json.loads((sample.lake_dir / rel).read_text())
        for key in ("read", "accepted", "quarantined", "duplicates"):
            assert m[key] == original[key], (rel, key)
