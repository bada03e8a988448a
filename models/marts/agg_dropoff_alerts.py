"""Drop-off alerts: per stage, the drop-off rate of the latest settled journey-start
period against the period before it, and whether it rose enough to warn.

A period is settled when every journey that started in it has had time to be decided
at the stage: the journey gap (``journey_gap_days``) after the period's end before
purchase, and the return window (``return_window_days``) after it at experience, both
before the end of the run date. Younger periods are right-censored (their drops are
not known yet) and are never compared. Rates are over journeys of known outcome
(advanced + dropped) of the funnel's populations (agg_stage_funnel, persona summed).

A stage is an alert when its rate rose by at least ``alert_rise`` (a share: 0.05 is
five percentage points), Fisher's exact test of the two periods' two-by-two tables
gives p below ``alert_alpha``, and each period holds at least ``min_journeys`` journeys
of known outcome. The marts gate reports an alert as a warning.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

COLUMNS = [
    "stage",
    "stage_order",
    "period_grain",
    "period_start",
    "previous_period_start",
    "journeys_known",
    "journeys_dropped",
    "drop_off_rate",
    "previous_journeys_known",
    "previous_journeys_dropped",
    "previous_drop_off_rate",
    "rate_change",
    "p_value",
    "is_alert",
]


def _period_end(start: date, grain: str) -> date:
    """The first day after a period that starts on ``start``."""
    if grain == "day":
        return start + timedelta(days=1)
    if grain == "week":
        return start + timedelta(days=7)
    return (pd.Timestamp(start) + pd.offsets.MonthBegin(1)).date()


def alerts(
    funnel: pd.DataFrame,
    run_date: date,
    grain: str,
    gap_days: int,
    window_days: int,
    rise: float,
    alpha: float,
    min_journeys: int,
) -> pd.DataFrame:
    """The alerts table from agg_stage_funnel's rows (see the docstring)."""
    from scipy.stats import fisher_exact

    run_end = run_date + timedelta(days=1)
    rows = []
    stages = funnel[funnel["stage_order"].between(1, 4)]
    for (stage, order), group in stages.groupby(["stage", "stage_order"]):
        horizon = timedelta(days=window_days if order == 4 else gap_days)
        by_period = (
            group.groupby("period_start")[["journeys_advanced", "journeys_dropped"]]
            .sum()
            .sort_index()
        )
        settled = [
            p
            for p in by_period.index
            if _period_end(pd.Timestamp(p).date(), grain) + horizon <= run_end
        ]
        if len(settled) < 2:
            continue
        latest, previous = settled[-1], settled[-2]
        now, before = by_period.loc[latest], by_period.loc[previous]
        known = int(now["journeys_advanced"] + now["journeys_dropped"])
        known_before = int(before["journeys_advanced"] + before["journeys_dropped"])
        if not known or not known_before:
            continue
        dropped, dropped_before = int(now["journeys_dropped"]), int(before["journeys_dropped"])
        rate, rate_before = dropped / known, dropped_before / known_before
        p_value = float(
            fisher_exact(
                [[dropped, known - dropped], [dropped_before, known_before - dropped_before]]
            ).pvalue
        )
        rows.append(
            {
                "stage": stage,
                "stage_order": int(order),
                "period_grain": grain,
                "period_start": pd.Timestamp(latest).date(),
                "previous_period_start": pd.Timestamp(previous).date(),
                "journeys_known": known,
                "journeys_dropped": dropped,
                "drop_off_rate": rate,
                "previous_journeys_known": known_before,
                "previous_journeys_dropped": dropped_before,
                "previous_drop_off_rate": rate_before,
                "rate_change": rate - rate_before,
                "p_value": p_value,
                "is_alert": bool(
                    rate - rate_before >= rise
                    and p_value < alpha
                    and min(known, known_before) >= min_journeys
                ),
            }
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("stage", "period_grain"):
        frame[column] = frame[column].astype("string")
    for column in ("period_start", "previous_period_start"):
        frame[column] = pd.to_datetime(frame[column]).dt.date
    frame["is_alert"] = frame["is_alert"].astype("bool")
    return frame.sort_values("stage_order").reset_index(drop=True)


def _typed(frame: pd.DataFrame):
    """The frame as an Arrow table of fixed column types, so that a night without any
    settled pair of periods still writes DATE, BIGINT and DOUBLE columns (an empty
    pandas frame would leave DuckDB columns of type NULL for a BI tool to trip on)."""
    import pyarrow as pa

    types = {
        "stage": pa.string(),
        "stage_order": pa.int64(),
        "period_grain": pa.string(),
        "period_start": pa.date32(),
        "previous_period_start": pa.date32(),
        "journeys_known": pa.int64(),
        "journeys_dropped": pa.int64(),
        "drop_off_rate": pa.float64(),
        "previous_journeys_known": pa.int64(),
        "previous_journeys_dropped": pa.int64(),
        "previous_drop_off_rate": pa.float64(),
        "rate_change": pa.float64(),
        "p_value": pa.float64(),
        "is_alert": pa.bool_(),
    }
    schema = pa.schema([(name, types[name]) for name in COLUMNS])
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def model(dbt, session):
    dbt.config(materialized="table")
    funnel = dbt.ref("agg_stage_funnel").df()
    # The night's run date comes from int_night: a config would hold the one dbt parsed.
    # (dbt finds a ref only in a call of its own, not at the head of a chain.)
    night = dbt.ref("int_night")
    run_date = night.select("run_date").fetchall()[0][0]
    return _typed(
        alerts(
            funnel,
            run_date,
            str(dbt.config.get("period_grain")),
            int(dbt.config.get("gap_days")),
            int(dbt.config.get("window_days")),
            float(dbt.config.get("rise")),
            float(dbt.config.get("alpha")),
            int(dbt.config.get("min_journeys")),
        )
    )
