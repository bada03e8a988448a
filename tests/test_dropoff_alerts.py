"""Drop-off alerts (agg_dropoff_alerts): the latest settled period against the one
before it, on funnel rows whose periods, rates and Fisher p-values are worked out by
hand here."""

from __future__ import annotations

import importlib.util
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cjm_pipeline.publish import publish
from cjm_pipeline.report import alert_rows, report_data, summary_text, write_report
from cjm_pipeline.validate import validate_marts
from tests.conftest import RUN_DATE, quiet
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


def test_an_alert_is_a_gate_warning_a_summary_line_and_a_banner_in_the_map(
    built, tmp_path: Path, open_page
) -> None:
    """An alert row in the built database (the model's own output is checked above) goes
    through the marts gate as a warning that does not stop the night, is served, and
    reaches `cjm summary`, the query the DAG's asset event carries, and the map."""
    root = tmp_path / "night"
    build = root / "build" / "cjm.duckdb"
    build.parent.mkdir(parents=True)
    build.write_bytes(built.build_path.read_bytes())
    settings = built.model_copy(
        update={"build_path": build, "warehouse_path": root / "warehouse" / "cjm.duckdb"}
    )
    p = fisher_two_sided(40, 60, 20, 80)
    with duckdb.connect(str(build)) as con:
        assert con.execute("select count(*) from agg_dropoff_alerts where is_alert").fetchall()[
            0
        ] == (0,)
        con.execute(
            "insert into agg_dropoff_alerts values ('consideration', 2, 'week', "
            "date '2026-10-05', date '2026-09-28', 100, 40, 0.4, 100, 20, 0.2, 0.2, ?, true)",
            [p],
        )

    report = validate_marts(settings, build, None, docs=False)
    assert report.success, "\n".join(map(str, report.critical_failures))
    [warning] = [r for r in report.warnings if r.suite == "marts_agg_dropoff_alerts"]
    assert warning.observed == 1  # the one alert row
    assert "rose significantly" in warning.note

    publish(settings, RUN_DATE, 1, progress=quiet)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        [served] = alert_rows(con)
    assert (served["stage"], served["journeys_known"], served["p_value"]) == (
        "consideration",
        100,
        pytest.approx(p),
    )
    text = summary_text(report_data(settings))
    assert "alerts:\n  consideration drop-off rose from 20.0% to 40.0%" in text, text

    opened = open_page(write_report(settings))
    banner = opened.page.locator('#alerts li[data-stage="consideration"]')
    assert banner.count() == 1
    assert "Consideration drop-off rose from 20.0% to 40.0%" in banner.inner_text()
    assert opened.errors == []
