"""Drop-off drivers: which factors make a journey more (or less) likely to drop at a
stage, with how sure the data is.

For each persona scope, stage, factor and level of int_dropoff_factors, the two-by-two
table of journeys with and without the factor, dropped and advanced, gives:

* the drop-off rate with and without the factor, and their ratio (``lift``: the
  relative risk) with a 95% confidence interval (Katz's log method);
* the odds ratio with its 95% interval (Woolf's log method; scipy's sample odds ratio);
* the p-value of Fisher's exact test (two-sided; scipy);
* the q-value: Benjamini-Hochberg's false discovery rate over every table tested in
  the build, since hundreds of factors are tested at once.

A table is tested only when both sides hold at least ``driver_min_journeys`` journeys
and some journeys dropped and some advanced; the others keep their counts and rates with
no statistics (``is_tested`` false). A driver is significant when its q-value is below
``driver_alpha``.
"""

from __future__ import annotations

import math

import pandas as pd

COLUMNS = [
    "persona_scope",
    "stage",
    "stage_order",
    "factor",
    "level",
    "journeys_with",
    "dropped_with",
    "advanced_with",
    "journeys_without",
    "dropped_without",
    "advanced_without",
    "drop_rate_with",
    "drop_rate_without",
    "lift",
    "lift_ci_low",
    "lift_ci_high",
    "odds_ratio",
    "odds_ratio_ci_low",
    "odds_ratio_ci_high",
    "p_value",
    "q_value",
    "is_tested",
    "is_significant",
    "direction",
    "rank_in_stage",
]
Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def _lift_interval(a: int, n1: int, c: int, n0: int) -> tuple[float, float, float]:
    """The relative risk (a/n1)/(c/n0) and its 95% interval by Katz's log method; with
    a zero count, half a journey is added to each dropped count (the usual correction)."""
    if a == 0 or c == 0:
        a, c, n1, n0 = a + 0.5, c + 0.5, n1 + 0.5, n0 + 0.5
    ratio = (a / n1) / (c / n0)
    se = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n0)
    return ratio, ratio * math.exp(-Z95 * se), ratio * math.exp(Z95 * se)


def _odds_interval(a: int, b: int, c: int, d: int) -> tuple[float, float, float]:
    """The sample odds ratio ad/bc and its 95% interval (Woolf), from scipy; with a zero
    cell, half a journey is added to every cell (Haldane-Anscombe)."""
    from scipy.stats.contingency import odds_ratio

    if 0 in (a, b, c, d):
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
        ratio = (a * d) / (b * c)
        se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
        return ratio, ratio * math.exp(-Z95 * se), ratio * math.exp(Z95 * se)
    result = odds_ratio([[a, b], [c, d]], kind="sample")
    low, high = result.confidence_interval(confidence_level=0.95)
    return float(result.statistic), float(low), float(high)


def drivers(counts: pd.DataFrame, min_journeys: int, alpha: float) -> pd.DataFrame:
    """The drivers table from the counts of int_dropoff_factors (see the docstring)."""
    from scipy.stats import false_discovery_control, fisher_exact

    frame = counts.copy()
    frame["journeys_with"] = frame["dropped_with"] + frame["advanced_with"]
    frame["journeys_without"] = frame["dropped_without"] + frame["advanced_without"]
    frame["drop_rate_with"] = frame["dropped_with"] / frame["journeys_with"].where(
        frame["journeys_with"] > 0
    )
    frame["drop_rate_without"] = frame["dropped_without"] / frame["journeys_without"].where(
        frame["journeys_without"] > 0
    )
    dropped = frame["dropped_with"] + frame["dropped_without"]
    advanced = frame["advanced_with"] + frame["advanced_without"]
    frame["is_tested"] = (
        (frame["journeys_with"] >= min_journeys)
        & (frame["journeys_without"] >= min_journeys)
        & (dropped > 0)
        & (advanced > 0)
    )
    stats = {
        name: [math.nan] * len(frame)
        for name in (
            "lift",
            "lift_ci_low",
            "lift_ci_high",
            "odds_ratio",
            "odds_ratio_ci_low",
            "odds_ratio_ci_high",
            "p_value",
        )
    }
    for i, row in enumerate(frame.itertuples(index=False)):
        if not row.is_tested:
            continue
        a, b = int(row.dropped_with), int(row.advanced_with)
        c, d = int(row.dropped_without), int(row.advanced_without)
        lift = _lift_interval(a, a + b, c, c + d)
        odds = _odds_interval(a, b, c, d)
        for name, value in zip(("lift", "lift_ci_low", "lift_ci_high"), lift, strict=True):
            stats[name][i] = value
        for name, value in zip(
            ("odds_ratio", "odds_ratio_ci_low", "odds_ratio_ci_high"), odds, strict=True
        ):
            stats[name][i] = value
        stats["p_value"][i] = float(fisher_exact([[a, b], [c, d]]).pvalue)
    for name, values in stats.items():
        frame[name] = values
    frame["q_value"] = math.nan
    tested = frame["is_tested"]
    if tested.any():
        frame.loc[tested, "q_value"] = false_discovery_control(
            frame.loc[tested, "p_value"].to_numpy(), method="bh"
        )
    frame["is_significant"] = tested & (frame["q_value"] < alpha)
    frame["direction"] = None
    frame.loc[frame["is_significant"] & (frame["lift"] > 1), "direction"] = "more_drop"
    frame.loc[frame["is_significant"] & (frame["lift"] < 1), "direction"] = "less_drop"
    # The strongest drivers of a drop first: significant, then by lift, then by journeys;
    # ties by name, so that the rank is the same whatever order the rows came in.
    frame = frame.sort_values(
        [
            "persona_scope",
            "stage_order",
            "is_significant",
            "lift",
            "journeys_with",
            "factor",
            "level",
        ],
        ascending=[True, True, False, False, False, True, True],
        na_position="last",
        kind="mergesort",
    )
    frame["rank_in_stage"] = frame.groupby(["persona_scope", "stage"]).cumcount() + 1
    integer = [c for c in COLUMNS if c.startswith(("journeys_", "dropped_", "advanced_"))]
    frame[integer] = frame[integer].astype("int64")
    return frame[COLUMNS].reset_index(drop=True)


def model(dbt, session):
    dbt.config(materialized="table")
    min_journeys = int(dbt.config.get("min_journeys"))
    alpha = float(dbt.config.get("alpha"))
    counts = dbt.ref("int_dropoff_factors").df()
    return drivers(counts, min_journeys, alpha)
