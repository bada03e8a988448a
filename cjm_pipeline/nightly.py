"""The night, step by step: ingest, gate the events, build, gate the marts, publish,
then write the journey map.

`cjm run` calls ``run_night`` (one process, one `dbt build`). The Airflow DAG
(dags/cjm_nightly.py) calls the step functions below one task at a time, with the dbt
models as their own tasks in between; the steps take and return plain values (dates
as ISO strings, dicts) so they travel through XCom. Either way the same code decides
what is built, what is checked and what is served.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

from cjm_pipeline.build import (
    BuildPlan,
    BuildState,
    build,
    dbt_environment,
    dbt_vars,
    plan_build,
    record_build,
    state_path,
)
from cjm_pipeline.settings import SOURCES, Settings, get_settings


class GateError(RuntimeError):
    """A critical expectation failed: nothing was published."""


@dataclass
class NightResult:
    run_date: date
    build_id: int
    full_refresh: bool
    snapshot: str
    seconds: dict[str, float]
    warnings: list[str]
    report: Path | None = None


def run_night(
    settings: Settings,
    dates: list[date],
    full_refresh: bool = False,
    progress: Callable[[str], None] = print,
    workers: int | None = None,
) -> NightResult:
    """Ingest the landing dates, gate their events, build as of the last one, gate the
    marts, publish, then write the journey map. A critical expectation raises
    ``GateError`` before anything is published; the served database is then the
    previous night's. A report that fails is a warning: the night is served by then."""
    from cjm_pipeline.ingest import ALL_SOURCES, ingest
    from cjm_pipeline.ingest import summary as ingest_summary
    from cjm_pipeline.report import write_report

    seconds: dict[str, float] = {}
    began = time.perf_counter()
    manifests = ingest(settings, dates, ALL_SOURCES, progress, workers or settings.ingest_workers)
    progress("")
    progress(ingest_summary(manifests))
    seconds["ingest"] = time.perf_counter() - began

    began = time.perf_counter()
    warnings = check_events(settings, gate_dates(settings, dates), progress)
    seconds["validate events"] = time.perf_counter() - began

    began = time.perf_counter()
    result = build(
        settings, dates[-1], full_refresh, progress=progress, since=dates[0], record=False
    )
    seconds["build"] = time.perf_counter() - began

    began = time.perf_counter()
    warnings += check_marts(settings, result.plan, progress)
    seconds["validate marts"] = time.perf_counter() - began

    began = time.perf_counter()
    published = publish_build(settings, result.plan, progress)
    record_build(settings, result.plan)
    seconds["publish"] = time.perf_counter() - began

    began = time.perf_counter()
    report = None
    try:
        report = write_report(settings)
    except Exception as exc:  # the night is served by now: a failed map is reported, not fatal
        warnings.append(f"the journey map was not written: {type(exc).__name__}: {exc}")
    seconds["report"] = time.perf_counter() - began
    return NightResult(
        dates[-1],
        result.plan.build_id,
        result.plan.full_refresh,
        published,
        seconds,
        warnings,
        report,
    )


def gate_dates(settings: Settings, dates: list[date]) -> list[date]:
    """The landing dates the events gate checks: the run's, and every one since the last
    recorded build, so a date whose events failed the gate keeps failing until fixed
    (the next night's build would read it again)."""
    state = BuildState.load(state_path(settings))
    days = set(dates)
    if state is not None:
        gap = (max(dates) - state.run_date).days
        days |= {state.run_date + timedelta(days=n) for n in range(1, gap + 1)}
    return sorted(days)


def check_events(
    settings: Settings, days: list[date], progress: Callable[[str], None] = print
) -> list[str]:
    """The events gate for landing dates: every source's canonical events.

    Returns the warnings; raises ``GateError`` naming each failed critical expectation.
    """
    from cjm_pipeline.validate import validate_events

    return _gate(lambda: validate_events(settings, days, SOURCES, progress=progress), progress)


def check_marts(
    settings: Settings, plan: BuildPlan, progress: Callable[[str], None] = print
) -> list[str]:
    """The marts gate on the build database, against the served night's row counts."""
    from cjm_pipeline.validate import validate_marts

    return _gate(
        lambda: validate_marts(
            settings,
            settings.build_path,
            settings.warehouse_path,
            run_date=plan.run_date,
            progress=progress,
        ),
        progress,
    )


def _gate(validate: Callable, progress: Callable[[str], None]) -> list[str]:
    from cjm_pipeline.validate import ValidationError

    try:
        report = validate()
        progress(report.summary())
        report.raise_for_critical()
    except ValidationError as exc:
        raise GateError(f"{exc}\nNothing was published.") from exc
    return [str(warning) for warning in report.warnings]


def publish_build(
    settings: Settings, plan: BuildPlan, progress: Callable[[str], None] = print
) -> str:
    """Serve the build: returns the snapshot's path."""
    from cjm_pipeline.publish import publish

    result = publish(
        settings, plan.run_date, plan.build_id, progress=progress, fingerprint=plan.fingerprint
    )
    return str(result.snapshot)


# The steps as the DAG runs them: settings from the environment, plain values in and out.


def ingest_source(source: str, day: str) -> dict[str, object]:
    from cjm_pipeline.ingest import ingest_one

    manifest = ingest_one(get_settings(), source, date.fromisoformat(day))
    return {k: v for k, v in asdict(manifest).items() if k != "files"}


def gate_events(day: str) -> list[str]:
    settings = get_settings()
    return check_events(settings, gate_dates(settings, [date.fromisoformat(day)]))


def plan(day: str, full_refresh: bool = False) -> dict[str, object]:
    """What tonight's dbt build is: its number, window and vars (for the dbt tasks)."""
    settings = get_settings()
    build_plan = plan_build(settings, date.fromisoformat(day), full_refresh)
    return {
        **asdict(build_plan),
        "run_date": build_plan.run_date.isoformat(),
        "vars": json.dumps(dbt_vars(settings, build_plan)),
    }


def _plan(values: dict[str, object]) -> BuildPlan:
    fields = {k: v for k, v in values.items() if k != "vars"}
    fields["run_date"] = date.fromisoformat(str(fields["run_date"]))
    return BuildPlan(**fields)


def gate_marts(values: dict[str, object]) -> list[str]:
    return check_marts(get_settings(), _plan(values))


def publish_planned(values: dict[str, object]) -> str:
    settings = get_settings()
    build_plan = _plan(values)
    snapshot = publish_build(settings, build_plan)
    record_build(settings, build_plan)
    return snapshot


def report_served() -> str:
    """The journey map of the night just published (read-only on the served file)."""
    from cjm_pipeline.report import write_report

    return str(write_report(get_settings()))


def dbt_task_environment() -> dict[str, str]:
    """Environment of the dbt tasks: the project's, minus the paths Cosmos manages
    itself (it runs each task in a copy of the project with its own target/)."""
    managed = {"DBT_PROJECT_DIR", "DBT_TARGET_PATH", "DBT_LOG_PATH"}
    return {k: v for k, v in dbt_environment(get_settings()).items() if k not in managed}
