"""The command line: clear errors for bad input, a summary for every run."""

from __future__ import annotations

from datetime import date

import pytest
from typer.testing import CliRunner

from cjm_pipeline.cli import app
from tests.conftest import land

runner = CliRunner()


@pytest.fixture(autouse=True)
def own_warehouse(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands take the night lock of their warehouse: a private one per test, so no
    night running in the project's own warehouse can refuse them."""
    monkeypatch.setenv("CJM_WAREHOUSE_PATH", str(tmp_path / "warehouse" / "cjm.duckdb"))
    monkeypatch.setenv("CJM_BUILD_PATH", str(tmp_path / "warehouse" / "build" / "cjm.duckdb"))


def test_bad_date_is_a_clear_error_not_a_traceback(tmp_path) -> None:
    result = runner.invoke(app, ["ingest", "--date", "2026-13-40", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a date in YYYY-MM-DD form" in result.output
    assert "Traceback" not in result.output


def test_unknown_source_is_named(tmp_path) -> None:
    result = runner.invoke(
        app, ["ingest", "--date", "2026-10-05", "--source", "tiktok", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "tiktok" in result.output


def test_ingest_prints_progress_and_a_summary(workspace) -> None:
    land(
        workspace,
        "reviews",
        "2026-10-05",
        "r.csv",
        "review_id,platform,reviewer_email,rating,created_at\n"
        "r-1,google,a@b.example,5,2026-10-05T06:00:00Z\n"
        "r-2,google,a@b.example,9,2026-10-05T06:00:00Z\n",
    )
    result = runner.invoke(
        app,
        ["ingest", "--date", "2026-10-05", "--data-dir", str(workspace.data_dir), "--workers", "1"],
    )
    assert result.exit_code == 0, result.output
    # Sources with no landing folder at all are said once each, not once per date.
    assert "2026-10-05 web      no landing folder" not in result.output
    assert "web      no landing folder " in result.output
    assert "at all: not delivered, nothing ingested on 1 date(s)" in result.output
    assert "quarantined by reason: rating_out_of_range 1" in result.output
    summary = [line for line in result.output.splitlines() if line.startswith("reviews ")]
    assert summary[-1].split() == ["reviews", "2", "1", "1", "0"]


def test_a_delivered_source_missing_a_date_is_said_per_date(workspace) -> None:
    land(
        workspace,
        "reviews",
        "2026-10-05",
        "r.csv",
        "review_id,platform,reviewer_email,rating,created_at\n"
        "r-1,google,a@b.example,5,2026-10-05T06:00:00Z\n",
    )
    result = runner.invoke(
        app,
        [
            "ingest",
            "--start",
            "2026-10-05",
            "--end",
            "2026-10-07",
            "--source",
            "reviews",
            "--source",
            "orders",
            "--data-dir",
            str(workspace.data_dir),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    said = [line for line in lines if "no landing folder" in line and not line.startswith(" ")]
    # One line per source and date, its advice included, not repeated below it.
    assert not [line for line in lines if line.startswith(" ") and "no landing folder" in line]
    assert all("(check the date" in line for line in said if line.startswith("2026-10-0"))
    assert [line.split()[0] for line in said if "source-date" not in line] == [
        "2026-10-06",
        "2026-10-07",
        "orders",
    ]
    assert "nothing ingested on 3 date(s)" in result.output


def test_a_historical_load_accepts_old_events_and_the_gate_names_the_setting(workspace) -> None:
    from cjm_pipeline.validate import validate_events

    rows = "".join(
        f"r-{i},google,a{i}@b.example,5,2025-0{1 + i % 9}-15T06:00:00Z\n" for i in range(30)
    )
    land(
        workspace,
        "reviews",
        "2026-10-05",
        "r.csv",
        "review_id,platform,reviewer_email,rating,created_at\n" + rows,
    )
    args = ["ingest", "--date", "2026-10-05", "--source", "reviews"]
    args += ["--data-dir", str(workspace.data_dir), "--workers", "1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "quarantined by reason: stale_timestamp 30" in first.output
    report = validate_events(workspace, date(2026, 10, 5), ["reviews"], docs=False)
    advice = " ".join(r.note for r in report.results if r.status == "failed")
    assert "mostly stale_timestamp" in advice and "cjm ingest --historical" in advice
    again = runner.invoke(app, [*args, "--historical"])
    assert again.exit_code == 0, again.output
    summary = [line for line in again.output.splitlines() if line.startswith("reviews ")]
    assert summary[-1].split() == ["reviews", "30", "30", "0", "0"]
