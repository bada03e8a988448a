"""Drop-off alerts (agg_dropoff_alerts): the latest settled period against the one
before it, on funnel rows whose periods, rates and Fisher p-values are worked out by
hand here."""

from __future__ import annotations

import importlib.util
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tests.test_dropoff_drivers import fisher_two_sided

MODEL = Path(__file__).resolve().parents[1] / "models" / "marts" / "agg_dropoff_alerts.py"


def _module():
    spec = importlib.util.spec_from_file_location("agg_dropoff_alerts", MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(stage: str, order: int, week: str, advanced: int, dropped: int, persona: str = "a"):
    return {
        "stage": stage,
        "stage_order": order,
        "period_start": pd.Timestamp(week),
        "persona": persona,
        "journeys_advanced": advanced,
        "journeys_dropped": dropped,
    }


FUNNEL = pd.DataFrame(
    [
        # Consideration: 20% then 40% (two personas summed), then a young week.
        _row("consideration", 2, "2026-09-14", 80, 20),
        _row("consideration", 2, "2026-09-21", 30, 20, "a"),
        _row("consideration", 2, "2026-09-21", 30, 20, "b"),
        _row("consideration", 2, "2026-09-28", 50, 0),
        # Purchase: 5 of 55, then 7 of 55: a rise of under five points.
        _row("purchase", 3, "2026-09-14", 50, 5),
        _row("purchase", 3, "2026-09-21", 48, 7),
        # Discovery: one settled week only. Experience: none settled (90-day window).
        _row("discovery", 1, "2026-09-21", 90, 10),
        _row("experience", 4, "2026-09-14", 40, 10),
        _row("experience", 4, "2026-09-21", 10, 40),
    ]
)


def test_the_latest_settled_week_against_the_one_before() -> None:
    # Run date 2026-10-29: its end is 10-30. With a 30-day gap, a week is settled when
    # its end plus 30 days is at most 10-30: the week of 09-21 (ends 09-28, +30 = 10-28)
    # is; the week of 09-28 (ends 10-05, +30 = 11-04) is not.
    frame = _module().alerts(FUNNEL, date(2026, 10, 29), "week", 30, 90, 0.05, 0.05, 30)
    rows = {r["stage"]: r for r in frame.to_dict("records")}
    assert set(rows) == {"consideration", "purchase"}
    c = rows["consideration"]
    assert (c["period_start"], c["previous_period_start"]) == (date(2026, 9, 21), date(2026, 9, 14))
    assert (c["journeys_known"], c["journeys_dropped"]) == (100, 40)
    assert (c["previous_journeys_known"], c["previous_journeys_dropped"]) == (100, 20)
    assert c["rate_change"] == pytest.approx(0.2)
    assert c["p_value"] == pytest.approx(fisher_two_sided(40, 60, 20, 80), rel=1e-9)
    assert c["p_value"] < 0.01 and c["is_alert"]
    p = rows["purchase"]
    assert p["rate_change"] == pytest.approx(7 / 55 - 5 / 55)
    assert not p["is_alert"]


def test_a_rise_must_be_significant_and_large_enough() -> None:
    module = _module()
    # The same rise with a threshold above it, or with too few journeys: no alert.
    assert not module.alerts(FUNNEL, date(2026, 10, 29), "week", 30, 90, 0.25, 0.05, 30)[
        "is_alert"
    ].any()
    assert not module.alerts(FUNNEL, date(2026, 10, 29), "week", 30, 90, 0.05, 0.05, 101)[
        "is_alert"
    ].any()
    # A month grain: September (ends 10-01, +30 = 10-31) is not settled on 10-29.
    assert module.alerts(FUNNEL, date(2026, 10, 29), "month", 30, 90, 0.05, 0.05, 30).empty
