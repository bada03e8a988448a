"""The journey pipeline in vectorised pandas: the benchmark's comparison point.

The journey semantics of the contract, written again without the dbt models, for
what ``agg_stage_funnel`` needs: stage, touchpoint and loyalty-signal rules from the
seeds, each event's customer through its strongest identifier that merges, sessions
(gap and cap), journeys (long gaps; records naming an order join that order's
journey), status and post-purchase outcome as of the run date, the population of
each journey, and the funnel. It is given the identity map (identifier -> customer)
and the identifiers that do not merge, both from the dbt build, and skips what the
funnel does not use (company events, ids, personas, the other marts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SEEDS = Path(__file__).resolve().parent.parent / "models" / "seeds"
# The event sources the models read from the lake.
SOURCES = ["web", "email", "social", "reviews"]
SIGNATURE = ["source", "event_type", "native_event", "utm_medium", "campaign", "path", "referrer"]
STAGE_FIELDS = ["event_type", "native_event", "utm_medium", "campaign", "path"]
TOUCHPOINT_FIELDS = ["event_type", "native_event", "utm_medium", "campaign", "path", "referrer"]
LOYALTY_FIELDS = ["event_type", "native_event", "campaign", "path"]
STAGES = ["discovery", "consideration", "purchase", "experience", "loyalty"]
# Identifier kinds, strongest first: an event goes to the customer of the first one
# it carries that merges.
IDENTIFIERS = [
    ("user", "user_id"),
    ("email", "email_sha256"),
    ("handle", "social_handle_sha256"),
    ("anon", "anonymous_id"),
    ("order", "order_id"),
]
KNOWN_KINDS = {"user", "email", "handle"}
# Records of these sources on indirect touchpoints are what customers say elsewhere:
# a journey of nothing else is an unlinked voice.
VOICE_SOURCES = {"social", "reviews"}
FUNNEL_POPULATIONS = {"known", "anonymous"}
# What a record's properties.recommended may say for "yes" (read as a boolean cast).
TRUE_WORDS = {"true", "t", "1", "yes", "y"}


def _like(pattern: str) -> str:
    """A SQL LIKE pattern as an anchored regular expression."""
    parts = (".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return "(?s)^" + "".join(parts) + "$"


def _first_rule(signatures: pd.DataFrame, rules: pd.DataFrame, fields: list[str]) -> pd.Series:
    """The rule_id of the first matching rule (rules come in priority order) for each
    signature, or NaN.

    A rule field matches when empty, when '(none)' and the value is missing, or when
    the value matches it as a LIKE pattern; the source must always match."""
    found = pd.Series(None, index=signatures.index, dtype=object)
    for rule in rules.to_dict("records"):
        mask = found.isna() & (signatures["source"] == rule["source"])
        for field in fields:
            pattern = rule[field]
            if pd.isna(pattern):
                continue
            values = signatures[field].fillna("")
            mask &= (values == "") if pattern == "(none)" else values.str.match(_like(pattern))
        found[mask] = rule["rule_id"]
    return found


def _rules(name: str) -> pd.DataFrame:
    """A rule seed, indexed by rule_id, in the order rules are tried."""
    rules = pd.read_csv(SEEDS / f"{name}.csv", dtype=str)
    rules["priority"] = rules["priority"].astype(int)
    return rules.sort_values(["priority", "rule_id"]).set_index("rule_id", drop=False)


def _read_events(lake: Path, run_date: date) -> pd.DataFrame:
    """Every event landed up to the run date, once (a re-delivered event is kept
    from its earliest landing)."""
    columns = [
        "event_id",
        "source",
        "event_type",
        "native_event",
        "occurred_at",
        "anonymous_id",
        "user_id",
        "email_sha256",
        "social_handle_sha256",
        "order_id",
        "utm_medium",
        "campaign",
        "path",
        "referrer",
        "properties",
        "source_file",
        "source_line",
    ]
    tables = []
    for source in SOURCES:
        for path in sorted(lake.glob(f"events/source={source}/date=*/*.parquet")):
            landed = date.fromisoformat(path.parent.name.removeprefix("date="))
            if landed <= run_date:
                table = pq.read_table(path, columns=columns)
                tables.append(table.append_column("landed", pa.array([landed] * len(table))))
    events = pa.concat_tables(tables, promote_options="default").to_pandas()
    repeated = events["event_id"].duplicated(keep=False)
    if repeated.any():
        first = (
            events[repeated]
            .sort_values(["event_id", "landed", "source_file", "source_line"])
            .drop_duplicates("event_id")
        )
        events = pd.concat([events[~repeated], first], ignore_index=True)
    return events


def _customer_node(events: pd.DataFrame, not_merging: set[str]) -> pd.Series:
    """The identifier each event's customer is found through: its strongest one
    that merges, else its strongest one; a record with none (unattributed) is its own
    node, ``event:`` and its event id."""
    strongest = pd.Series(None, index=events.index, dtype=object)
    merging = pd.Series(None, index=events.index, dtype=object)
    for kind, column in reversed(IDENTIFIERS):
        values = events[column]
        present = values.notna() & (values != "")
        node = (kind + ":" + values[present].astype(str)).reindex(events.index)
        strongest = strongest.mask(present, node)
        merging = merging.mask(present & ~node.isin(not_merging), node)
    return merging.fillna(strongest).fillna("event:" + events["event_id"].astype(str))


def _classify(events: pd.DataFrame) -> pd.DataFrame:
    """Stage, touchpoint (channel and type) and loyalty signal of every event, from
    the seeds, matched once per distinct signature."""
    stage_rules = _rules("stage_rules")
    touch_rules = _rules("touchpoint_rules")
    loyalty_rules = _rules("loyalty_signals")
    stages = pd.read_csv(SEEDS / "stages.csv")
    touchpoints = pd.read_csv(SEEDS / "touchpoints.csv").set_index("touchpoint_id")
    event_types = pd.read_csv(SEEDS / "event_types.csv")

    signatures = events[SIGNATURE].drop_duplicates().reset_index(drop=True)
    stage = _first_rule(signatures, stage_rules, STAGE_FIELDS).map(stage_rules["stage"])
    touchpoint = _first_rule(signatures, touch_rules, TOUCHPOINT_FIELDS).map(
        touch_rules["touchpoint_id"]
    )
    signatures["touchpoint_id"] = touchpoint.fillna("unclassified")
    signatures["stage_order"] = (
        stage.map(dict(zip(stages["stage"], stages["stage_order"], strict=True)))
        .fillna(0)
        .astype(int)
    )
    loyalty = _first_rule(signatures, loyalty_rules, LOYALTY_FIELDS)
    signatures["signal"] = loyalty.map(loyalty_rules["signal"])
    signatures["needs_recommendation"] = (
        loyalty.map(loyalty_rules["recommended"]).fillna("").str.lower() == "true"
    )
    events = events.merge(signatures, on=SIGNATURE, how="left")

    post = set(stages.loc[stages["funnel"] == "post_purchase", "stage_order"])
    events["is_post_purchase"] = events["stage_order"].isin(post)
    events["channel"] = events["touchpoint_id"].map(touchpoints["channel"]).fillna("unclassified")
    touchpoint_type = events["touchpoint_id"].map(touchpoints["touchpoint_type"])
    events["is_voice"] = events["source"].isin(VOICE_SOURCES) & (touchpoint_type == "indirect")
    company = set(event_types.loc[event_types["initiated_by"] == "company", "event_type"])
    conversions = set(event_types.loc[event_types["is_conversion"], "event_type"])
    events["is_activity"] = ~events["event_type"].isin(company)
    events["is_conversion"] = events["event_type"].isin(conversions)

    recommended = pd.Series(False, index=events.index)
    asked = events["needs_recommendation"] & events["signal"].notna()
    recommended[asked] = events.loc[asked, "properties"].map(_recommends)
    keeps_signal = ~events["needs_recommendation"] | recommended
    events["loyalty_signal"] = events["signal"].where(keeps_signal)
    return events


def _recommends(properties: object) -> bool:
    """Whether a record's properties say ``recommended`` is true."""
    if not isinstance(properties, str):
        return False
    try:
        value = json.loads(properties).get("recommended")
    except (ValueError, AttributeError):
        return False
    if value is None:
        return False
    return str(value).lower() in TRUE_WORDS


def _journeys_of_activity(
    activity: pd.DataFrame, gap_minutes: int, cap_hours: int, journey_gap_days: int
) -> pd.DataFrame:
    """Sessions and journeys of the customers' activity (sorted by customer, time and
    event id), and how far each event takes its journey."""
    customer = activity["customer_id"]
    first = customer.ne(customer.shift())

    # Sessions: the benchmark's pipelines all build them, though the funnel does not
    # use them.
    gap = activity["occurred_at"].diff()
    activity["block"] = (first | (gap > pd.Timedelta(minutes=gap_minutes))).cumsum()
    block_start = activity.groupby("block", sort=False)["occurred_at"].transform("min")
    piece = (activity["occurred_at"] - block_start).dt.total_seconds() // (cap_hours * 3600)
    activity["session"] = activity.groupby(["block", piece.astype(int)], sort=False).ngroup()

    # The customer's orders: the first conversion carrying each order id. A later
    # record naming one (not itself a conversion) follows that order.
    conversions = activity[activity["is_conversion"] & activity["order_id"].notna()]
    orders = conversions.drop_duplicates(["customer_id", "order_id"])[
        ["customer_id", "order_id", "occurred_at", "event_id"]
    ].rename(columns={"occurred_at": "ordered_at", "event_id": "order_event_id"})
    named = activity[["customer_id", "order_id"]].merge(
        orders, on=["customer_id", "order_id"], how="left"
    )
    named.index = activity.index
    activity["follows_order"] = (
        named["ordered_at"].notna()
        & (activity["occurred_at"] >= named["ordered_at"])
        & ~activity["is_conversion"]
    )

    # Journeys: a new one after more than the journey gap since the customer's
    # previous activity that does not follow an order.
    free_at = activity["occurred_at"].where(~activity["follows_order"])
    previous_free = free_at.groupby(customer, sort=False).shift()
    previous_free = previous_free.groupby(customer, sort=False).ffill()
    starts = ~activity["follows_order"] & (
        previous_free.isna()
        | (activity["occurred_at"] - previous_free > pd.Timedelta(days=journey_gap_days))
    )
    by_time = starts.cumsum()

    # Post-purchase stages count only after a conversion in the journey (by time);
    # records following an order always count.
    converted_so_far = activity["is_conversion"].groupby(by_time, sort=False).cummax()
    counts = ~activity["is_post_purchase"] | activity["follows_order"] | converted_so_far
    activity["progress"] = activity["stage_order"].where(counts, 0)

    # A record following an order joins the journey of the order's conversion.
    order_journey = pd.Series(by_time.to_numpy(), index=activity["event_id"])
    activity["journey"] = by_time.where(
        ~activity["follows_order"], named["order_event_id"].map(order_journey)
    ).astype(int)
    return activity


def _journey_outcomes(
    activity: pd.DataFrame,
    known: set[str],
    unattributed: set[str],
    run_end: pd.Timestamp,
    journey_gap_days: int,
    return_window_days: int,
) -> pd.DataFrame:
    """One row per journey: population, status, post-purchase outcome, the stage it
    reached (0 when none) and when it entered each stage."""
    grouped = activity.groupby("journey", sort=False)
    journeys = pd.DataFrame(
        {
            "customer_id": grouped["customer_id"].first(),
            "started_at": grouped["occurred_at"].min(),
            "last_activity_at": grouped["occurred_at"].max(),
            "reached": grouped["progress"].max(),
            "owned": (~activity["is_voice"]).groupby(activity["journey"], sort=False).sum(),
        }
    )
    # activity is in time order, so a journey's first row is its first touch.
    journeys["channel"] = grouped["channel"].first()
    conversions = activity[activity["is_conversion"]]
    journeys["converted_at"] = conversions.groupby("journey", sort=False)["occurred_at"].min()
    for k in range(1, 4):
        reached = activity[activity["progress"] >= k]
        journeys[f"reached_{k}"] = reached.groupby("journey", sort=False)["occurred_at"].min()

    # The customer's first loyalty signal after the journey's first order, in any of
    # the customer's journeys.
    signals = activity.loc[activity["loyalty_signal"].notna(), ["customer_id", "occurred_at"]]
    converted = journeys.loc[journeys["converted_at"].notna(), ["customer_id", "converted_at"]]
    after = converted.reset_index().merge(signals, on="customer_id")
    after = after[after["occurred_at"] > after["converted_at"]]
    first_signal = after.groupby("journey")["occurred_at"].min()
    window = pd.Timedelta(days=return_window_days)
    window_ends = journeys["converted_at"] + window
    signal_at = first_signal.reindex(journeys.index)
    journeys["retained_at"] = signal_at.where(signal_at <= window_ends)

    is_converted = journeys["converted_at"].notna()
    retained = journeys["retained_at"].notna()
    past = (run_end - journeys["last_activity_at"]) > pd.Timedelta(days=journey_gap_days)
    journeys["status"] = np.select(
        [is_converted, past], ["converted", "dropped"], default="in_progress"
    )
    journeys["post"] = np.select(
        [~is_converted, retained, run_end > window_ends],
        [None, "retained", "lapsed"],
        default="in_window",
    )
    journeys["stage_order"] = np.select(
        [~is_converted, retained], [journeys["reached"], 5], default=4
    )
    journeys["population"] = np.select(
        [
            ~is_converted & ((journeys["owned"] == 0) | journeys["customer_id"].isin(unattributed)),
            ~is_converted & (journeys["reached"] == 0),
            journeys["customer_id"].isin(known),
        ],
        ["unlinked_voice", "unclassified", "known"],
        default="anonymous",
    )
    # A converted journey that skipped a pre-purchase stage entered it at its order.
    journeys["entered_1"] = journeys["reached_1"].fillna(journeys["converted_at"])
    journeys["entered_2"] = journeys["reached_2"].fillna(journeys["converted_at"])
    journeys["entered_3"] = journeys["reached_3"].fillna(journeys["converted_at"])
    journeys["entered_4"] = journeys["converted_at"]
    journeys["entered_5"] = journeys["retained_at"]

    start = journeys["started_at"].dt.tz_convert("UTC").dt.tz_localize(None)
    journeys["period_start"] = (
        start - pd.to_timedelta(start.dt.day_of_week, unit="D")
    ).dt.normalize()
    return journeys


def _stage_rows(journeys: pd.DataFrame) -> pd.DataFrame:
    """One row per journey and stage it entered, with its outcome there; journeys of
    no stage get one 'unclassified' row."""
    rows = []
    for k, stage in enumerate(STAGES, start=1):
        entered = journeys[journeys["stage_order"] >= k]
        if k == 5:
            outcome = pd.Series("completed", index=entered.index)
            to_next = pd.Series(np.nan, index=entered.index)
        else:
            dropped = entered["post"] == "lapsed" if k == 4 else entered["status"] == "dropped"
            outcome = pd.Series(
                np.select(
                    [entered["stage_order"] > k, dropped],
                    ["advanced", "dropped"],
                    default="in_progress",
                ),
                index=entered.index,
            )
            to_next = (entered[f"entered_{k + 1}"] - entered[f"entered_{k}"]).dt.total_seconds()
        rows.append(
            pd.DataFrame(
                {
                    "period_start": entered["period_start"],
                    "population": entered["population"],
                    "first_touch_channel": entered["channel"],
                    "stage": stage,
                    "stage_order": k,
                    "funnel": "pre_purchase" if k < 4 else "post_purchase",
                    "outcome": outcome,
                    "is_converted": entered["status"] == "converted",
                    "seconds_to_next": to_next,
                }
            )
        )
    unstaged = journeys[journeys["stage_order"] == 0]
    rows.append(
        pd.DataFrame(
            {
                "period_start": unstaged["period_start"],
                "population": unstaged["population"],
                "first_touch_channel": unstaged["channel"],
                "stage": "unclassified",
                "stage_order": 0,
                "funnel": "unclassified",
                "outcome": "unclassified",
                "is_converted": False,
                "seconds_to_next": np.nan,
            }
        )
    )
    return pd.concat(rows, ignore_index=True)


def run(
    lake: Path,
    identities: pd.DataFrame,
    run_date: date,
    gap_minutes: int = 30,
    cap_hours: int = 12,
    journey_gap_days: int = 30,
    return_window_days: int = 90,
    not_merging: Iterable[str] = (),
) -> pd.DataFrame:
    """The stage funnel per journey-start week, population, first-touch channel and
    stage: journeys entered, advanced, dropped, in progress, completed and converted,
    and the median and 90th percentile hours to the next stage.

    ``identities`` maps each identifier (``node``) to its ``customer_id``;
    ``not_merging`` lists the identifiers that do not merge customers."""
    events = _read_events(lake, run_date)
    events["node"] = _customer_node(events, set(not_merging))
    events = events.merge(identities[["node", "customer_id"]], on="node", how="inner")
    events = _classify(events)

    activity = events[events["is_activity"]].sort_values(
        ["customer_id", "occurred_at", "event_id"], ignore_index=True
    )
    activity = _journeys_of_activity(activity, gap_minutes, cap_hours, journey_gap_days)

    kinds = identities["node"].str.split(":", n=1).str[0]
    known = set(identities.loc[kinds.isin(KNOWN_KINDS), "customer_id"])
    unattributed = set(identities.loc[kinds == "event", "customer_id"])
    run_end = pd.Timestamp(datetime.combine(run_date + timedelta(days=1), datetime.min.time()))
    journeys = _journey_outcomes(
        activity,
        known,
        unattributed,
        run_end.tz_localize("UTC"),
        journey_gap_days,
        return_window_days,
    )

    stages = _stage_rows(journeys)
    counted = stages["population"].isin(FUNNEL_POPULATIONS) | (
        stages["population"] == "unclassified"
    )
    stages = stages[counted]
    keys = ["period_start", "population", "first_touch_channel", "stage", "stage_order", "funnel"]
    counts = stages.groupby([*keys, "outcome"]).size().unstack(fill_value=0)
    for column in ["advanced", "dropped", "in_progress", "completed", "unclassified"]:
        if column not in counts:
            counts[column] = 0
    funnel = pd.DataFrame(
        {
            "entered": counts.sum(axis=1),
            "advanced": counts["advanced"],
            "dropped": counts["dropped"],
            "in_progress": counts["in_progress"],
            "completed": counts["completed"],
            "converted": stages.groupby(keys)["is_converted"].sum(),
        }
    )
    timing = stages.groupby(keys)["seconds_to_next"].quantile([0.5, 0.9]).unstack() / 3600.0
    funnel["median_hours_to_next_stage"] = timing[0.5]
    funnel["p90_hours_to_next_stage"] = timing[0.9]
    return funnel.reset_index()
