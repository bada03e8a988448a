"""The journey pipeline in vectorised pandas: the benchmark's comparison point.

Same semantics as the dbt models for what the funnel needs: stage and touchpoint
rules from the seeds, sessions (gap and cap), journeys (long gaps), stage entry
times, status as of the run date, and ``agg_stage_funnel``. It takes the identity
map (identifier -> customer) as given, from the dbt build, and skips what the funnel
does not use (company events joining journeys, ids, the other marts).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SEEDS = Path(__file__).resolve().parent.parent / "models" / "seeds"
RULE_FIELDS = ["event_type", "utm_medium", "campaign", "path", "referrer"]
STAGES = ["discovery", "consideration", "purchase", "experience", "loyalty"]


def _like(pattern: str) -> str:
    """A SQL LIKE pattern as an anchored regular expression."""
    parts = (".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return "^" + "".join(parts) + "$"


def _match(signatures: pd.DataFrame, rules: pd.DataFrame, column: str) -> pd.Series:
    """First matching rule (by priority) for each signature, or 'unclassified'."""
    found = pd.Series(None, index=signatures.index, dtype=object)
    for rule in rules.sort_values(["priority", "rule_id"]).to_dict("records"):
        mask = found.isna() & (signatures["source"] == rule["source"])
        for field in RULE_FIELDS:
            pattern = rule.get(field)
            if pattern is None or pd.isna(pattern):
                continue
            values = signatures[field].fillna("")
            if pattern == "(none)":
                mask &= values == ""
            else:
                mask &= values.str.match(_like(pattern))
        found[mask] = rule[column]
    return found.fillna("unclassified")


def _read_events(lake: Path, run_date: date) -> pd.DataFrame:
    columns = [
        "event_id",
        "source",
        "event_type",
        "occurred_at",
        "anonymous_id",
        "user_id",
        "email_sha256",
        "social_handle_sha256",
        *RULE_FIELDS[1:],
    ]
    tables = []
    for path in sorted(lake.glob("events/source=*/date=*/*.parquet")):
        if date.fromisoformat(path.parent.name.removeprefix("date=")) <= run_date:
            tables.append(pq.read_table(path, columns=columns))
    return pa.concat_tables(tables).to_pandas()


def _identity_node(events: pd.DataFrame) -> pd.Series:
    node = pd.Series(None, index=events.index, dtype=object)
    for kind, column in [
        ("anon", "anonymous_id"),
        ("handle", "social_handle_sha256"),
        ("email", "email_sha256"),
        ("user", "user_id"),
    ]:
        present = events[column].notna() & (events[column] != "")
        node = node.where(~present, kind + ":" + events[column].astype(str))
    return node


def run(
    lake: Path,
    identities: pd.DataFrame,
    run_date: date,
    gap_minutes: int = 30,
    cap_hours: int = 12,
    journey_gap_days: int = 30,
) -> pd.DataFrame:
    """The stage funnel per journey-start week, first-touch channel and stage."""
    events = _read_events(lake, run_date)
    events["node"] = _identity_node(events)
    events = events.merge(identities, on="node", how="inner")

    stage_rules = pd.read_csv(SEEDS / "stage_rules.csv", dtype=str)
    stage_rules["priority"] = stage_rules["priority"].astype(int)
    touch_rules = pd.read_csv(SEEDS / "touchpoint_rules.csv", dtype=str)
    touch_rules["priority"] = touch_rules["priority"].astype(int)
    stages = pd.read_csv(SEEDS / "stages.csv")
    touchpoints = pd.read_csv(SEEDS / "touchpoints.csv")
    event_types = pd.read_csv(SEEDS / "event_types.csv")

    keys = ["source", *RULE_FIELDS]
    signatures = events[keys].drop_duplicates().reset_index(drop=True)
    signatures["stage"] = _match(signatures, stage_rules, "stage")
    signatures["touchpoint_id"] = _match(signatures, touch_rules, "touchpoint_id")
    events = events.merge(signatures, on=keys, how="left")
    order = dict(zip(stages["stage"], stages["stage_order"], strict=True))
    events["stage_order"] = events["stage"].map(order).fillna(0).astype(int)
    channel = dict(zip(touchpoints["touchpoint_id"], touchpoints["channel"], strict=True))
    events["channel"] = events["touchpoint_id"].map(channel).fillna("unclassified")
    company = set(event_types.loc[event_types["initiated_by"] == "company", "event_type"])
    conversions = set(event_types.loc[event_types["is_conversion"], "event_type"])
    events["is_conversion"] = events["event_type"].isin(conversions)

    activity = events[~events["event_type"].isin(company)].sort_values(
        ["customer_id", "occurred_at", "event_id"], ignore_index=True
    )
    by_customer = activity.groupby("customer_id", sort=False)["occurred_at"]
    gap = by_customer.diff()
    first = gap.isna()
    activity["block"] = (first | (gap > pd.Timedelta(minutes=gap_minutes))).cumsum()
    activity["journey"] = (first | (gap > pd.Timedelta(days=journey_gap_days))).cumsum()
    block_start = activity.groupby("block", sort=False)["occurred_at"].transform("min")
    activity["piece"] = (
        (activity["occurred_at"] - block_start).dt.total_seconds() // (cap_hours * 3600)
    ).astype(int)
    activity["session"] = activity.groupby(["block", "piece"], sort=False).ngroup()

    # Post-purchase stages count only after a conversion in the same journey.
    post = set(stages.loc[stages["funnel"] == "post_purchase", "stage_order"])
    conversion_at = (
        activity["occurred_at"].where(activity["is_conversion"]).groupby(activity["journey"])
    ).transform("min")
    too_early = activity["stage_order"].isin(post) & ~(activity["occurred_at"] >= conversion_at)
    activity["stage_order"] = activity["stage_order"].where(~too_early, 0)

    grouped = activity.groupby("journey", sort=False)
    journeys = pd.DataFrame(
        {
            "started_at": grouped["occurred_at"].min(),
            "last_activity_at": grouped["occurred_at"].max(),
            "furthest": grouped["stage_order"].max(),
            "channel": grouped["channel"].first(),
            "converted": grouped["is_conversion"].any(),
        }
    )
    for k in range(1, 6):
        reached = activity[activity["stage_order"] >= k]
        journeys[f"entered_{k}"] = reached.groupby("journey", sort=False)["occurred_at"].min()

    run_end = pd.Timestamp(datetime.combine(run_date + timedelta(days=1), datetime.min.time()))
    run_end = run_end.tz_localize("UTC")
    past = (run_end - journeys["last_activity_at"]) > pd.Timedelta(days=journey_gap_days)
    journeys["status"] = np.where(
        journeys["converted"], "converted", np.where(past, "dropped", "in_progress")
    )
    journeys["post"] = np.where(
        ~journeys["converted"],
        None,
        np.where(
            journeys["furthest"] >= 5, "reached_loyalty", np.where(past, "dropped", "in_progress")
        ),
    )
    start = journeys["started_at"].dt.tz_convert("UTC").dt.tz_localize(None)
    journeys["period_start"] = (
        start - pd.to_timedelta(start.dt.day_of_week, unit="D")
    ).dt.normalize()

    rows = []
    for k, stage in enumerate(STAGES, start=1):
        entered = journeys[journeys["furthest"] >= k].copy()
        if k < 5:
            entered["to_next"] = (
                entered[f"entered_{k + 1}"] - entered[f"entered_{k}"]
            ).dt.total_seconds()
            outcome = entered["post"].where(entered["post"].notna(), entered["status"])
            entered["outcome"] = np.where(
                entered["furthest"] > k,
                "advanced",
                np.where(outcome == "dropped", "dropped", "in_progress"),
            )
        else:
            entered["to_next"] = np.nan
            entered["outcome"] = "completed"
        counts = (
            entered.groupby(["period_start", "channel", "outcome"]).size().unstack(fill_value=0)
        )
        timing = entered.groupby(["period_start", "channel"])["to_next"].quantile([0.5, 0.9])
        timing = timing.unstack() / 3600.0
        part = counts.join(timing).reset_index()
        part["stage"] = stage
        rows.append(part)
    funnel = pd.concat(rows, ignore_index=True)
    for column in ["advanced", "dropped", "in_progress", "completed"]:
        funnel[column] = funnel[column].fillna(0).astype(int) if column in funnel else 0
    funnel["entered"] = funnel[["advanced", "dropped", "in_progress", "completed"]].sum(axis=1)
    return funnel
