"""The night, step by step: ingest, gate the events, build, gate the marts, publish,
then write the journey map.

`cjm run` calls ``run_night`` (one process, one `dbt build`, holding the night lock
throughout). The Airflow DAG (dags/cjm_nightly.py) calls the step functions below one
task at a time, with the dbt models as their own tasks in between; the steps take and
return plain values (dates as ISO strings, dicts) so they travel through XCom. Each
writing task holds the night lock while it runs (waiting up to
``CJM_LOCK_WAIT_SECONDS`` for it), and the plan marks the night as in progress until
publish (see ``cjm_pipeline.lock``). Either way the same code decides what is built,
what is checked and what is served.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cjm_pipeline.build import (
    BuildPlan,
    build,
    dbt_environment,
    dbt_vars,
    load_state_quietly,
    night_values,
    plan_build,
    record_build,
)
from cjm_pipeline.lock import (
    Night,
    acquire,
    begin_night,
    end_night,
    night_lock,
    read_night,
    release,
    require_night,
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
    """Ingest the landing dates, plan the build, gate their events, build as of the last
    one, gate the marts, publish, then write the journey map. A critical expectation
    raises ``GateError`` before anything is published; the served database is then the
    previous night's. A report that fails is a warning: the night is served by then.
    Holds the night lock throughout (see ``cjm_pipeline.lock``); the plan raises
    ``NothingToBuild`` when the lake has no event up to the last date, and
    ``DamagedLake`` when a lake file cannot be read, before any gate or dbt start."""
    with night_lock(settings, "cjm run", progress=progress):
        return _run_night(settings, dates, full_refresh, progress, workers)


def _run_night(
    settings: Settings,
    dates: list[date],
    full_refresh: bool,
    progress: Callable[[str], None],
    workers: int | None,
) -> NightResult:
    from cjm_pipeline.ingest import ALL_SOURCES, ingest
    from cjm_pipeline.ingest import summary as ingest_summary
    from cjm_pipeline.report import write_report

    seconds: dict[str, float] = {}
    began = time.perf_counter()
    manifests = ingest(settings, dates, ALL_SOURCES, progress, workers or settings.ingest_workers)
    progress("")
    progress(ingest_summary(manifests))
    seconds["ingest"] = time.perf_counter() - began
    # Planned first: it repairs the state the events gate's dates come from.
    planned = plan_build(settings, dates[-1], full_refresh, dates[0], progress)

    began = time.perf_counter()
    warnings = check_events(settings, gate_dates(settings, dates), progress)
    seconds["validate events"] = time.perf_counter() - began

    began = time.perf_counter()
    result = build(settings, dates[-1], progress=progress, record=False, plan=planned)
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
    (the next night's build would read it again). A damaged state file counts as none
    here: the plan reports and repairs it."""
    state = load_state_quietly(settings)
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
    """The marts gate on the build database, against the served night's row counts (or
    the newest readable snapshot's, with a warning, when the served one is damaged)."""
    from cjm_pipeline.validate import validate_marts

    reference, warnings = band_reference(settings)
    return warnings + _gate(
        lambda: validate_marts(
            settings,
            settings.build_path,
            reference,
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


def band_reference(settings: Settings) -> tuple[Path, list[str]]:
    """The published database the marts gate's row-count band compares with, and the
    warnings: the served one; when it cannot be read, a warning and the newest readable
    snapshot (without one, a path that does not exist: the band is then skipped, as on a
    first night). The night goes on: its publish replaces the damaged file."""
    from cjm_pipeline.publish import database_problem, snapshots

    served = settings.warehouse_path
    problem = database_problem(served) if served.exists() else None
    if problem is None:
        return served, []
    warning = (
        f"the served database {served} is damaged ({problem}): the row-count band is taken "
        "from the newest readable snapshot, and this night's publish replaces it"
    )
    for snapshot in reversed(snapshots(settings)):
        if not snapshot.is_served and database_problem(snapshot.path) is None:
            return snapshot.path, [warning]
    return settings.snapshots_dir / "no-readable-snapshot", [warning]


def publish_build(
    settings: Settings, plan: BuildPlan, progress: Callable[[str], None] = print
) -> str:
    """Serve the build: returns the snapshot's folder."""
    from cjm_pipeline.publish import publish

    result = publish(
        settings,
        plan.run_date,
        plan.build_id,
        progress=progress,
        fingerprint=plan.fingerprint,
        lake=plan.lake,
    )
    return str(result.snapshot)


# The steps as the DAG runs them: settings from the environment, plain values in and out.
# Each writing step holds the night lock, waiting for it up to CJM_LOCK_WAIT_SECONDS.

DAG_ID = "cjm_nightly"
TASK_HINT = (
    "the task fails after waiting CJM_LOCK_WAIT_SECONDS; it retries if it has retries "
    "left, or clear it once that command has finished"
)


@contextmanager
def task_lock(settings: Settings, task: str, run_id: str | None) -> Iterator[None]:
    command = f"airflow task {DAG_ID}.{task} (run {run_id or '?'})"
    with night_lock(settings, command, settings.lock_wait_seconds, print, TASK_HINT):
        yield


def ingest_source(source: str, day: str, run_id: str | None = None) -> dict[str, object]:
    from cjm_pipeline.ingest import ingest_one

    settings = get_settings()
    with task_lock(settings, f"ingest[{source}]", run_id):
        manifest = ingest_one(settings, source, date.fromisoformat(day))
    return {k: v for k, v in asdict(manifest).items() if k != "files"}


def gate_events(day: str) -> list[str]:
    settings = get_settings()
    return check_events(settings, gate_dates(settings, [date.fromisoformat(day)]))


def plan(day: str, full_refresh: bool = False, run_id: str | None = None) -> dict[str, object]:
    """What tonight's dbt build is: its number, window, vars and night values (for the
    dbt tasks: ``CJM_NIGHT``, see ``night_values``).

    Planned under the night lock, which also records the night as in progress (until
    publish) for the tasks after it and for the command line."""
    settings = get_settings()
    run = run_id or f"manual__{datetime.now(UTC).isoformat()}"
    with task_lock(settings, "plan_build", run):
        build_plan = plan_build(settings, date.fromisoformat(day), full_refresh)
        earlier = read_night(settings)
        if earlier is not None and earlier.run_id != run:
            # The scheduler only plans after the previous night published, so that night
            # was marked done or failed by hand: this one takes over.
            print(
                f"warning: replacing the marker of a night that never published: "
                f"{earlier.describe()}"
            )
        now = datetime.now(UTC).isoformat()
        night = Night(DAG_ID, run, day, build_plan.build_id, now, lake=build_plan.lake or {})
        begin_night(settings, night)
    # The lake inventory stays in the marker: XCom carries what the dbt tasks read.
    values = {k: v for k, v in asdict(build_plan).items() if k != "lake"}
    return {
        **values,
        "run_date": build_plan.run_date.isoformat(),
        "vars": json.dumps(dbt_vars(settings)),
        "night": json.dumps(night_values(build_plan)),
    }


def _plan(values: dict[str, object]) -> BuildPlan:
    fields = {k: v for k, v in values.items() if k not in {"vars", "night", "lake"}}
    fields["run_date"] = date.fromisoformat(str(fields["run_date"]))
    return BuildPlan(**fields)


SHOWN_FAILURES = 5  # failed expectations a gate task's error names before "and N more"


def fail_now(gate: Callable[..., list[str]], *args: object) -> list[str]:
    """Run a gate for a DAG task. Data that failed it fails the task at once, without
    the retries the task keeps for a busy disk or an API timeout (a retry would fail the
    same way), and with a short message: the verdict, the first failures and where the
    full results are."""
    try:
        return gate(*args)
    except GateError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(short_gate_message(str(exc))) from None


def short_gate_message(message: str, shown: int = SHOWN_FAILURES) -> str:
    """A gate's error cut to its first ``shown`` failures (each with what to do), the
    count of the rest, and its closing lines (where the results are)."""
    lines = message.splitlines()
    head, failures, tail = [], [], []
    for line in lines:
        if line.startswith("  - "):
            failures.append([line])
        elif line.startswith("    ") and failures:
            failures[-1].append(line)
        elif failures:
            tail.append(line)
        else:
            head.append(line)
    kept = [line for failure in failures[:shown] for line in failure]
    more = len(failures) - shown
    rest = (
        [f"  ... and {more} more failed expectation{'s' if more > 1 else ''}"] if more > 0 else []
    )
    return "\n".join([*head, *kept, *rest, *tail])


def gate_marts(values: dict[str, object], run_id: str | None = None) -> list[str]:
    settings = get_settings()
    with task_lock(settings, "validate_marts", run_id):
        require_night(settings, str(run_id), "validate_marts")
        return check_marts(settings, _plan(values))


def publish_planned(values: dict[str, object], run_id: str | None = None) -> str:
    """Publish the night's build, record it, and end the night in progress. A retry
    after a publish that was not recorded or not ended does not publish it twice (build
    numbers are never reused, so a served build of this number is this night's)."""
    from cjm_pipeline.publish import PublishError, served_info

    settings = get_settings()
    with task_lock(settings, "publish", run_id):
        night = require_night(settings, str(run_id), "publish")
        build_plan = replace(_plan(values), lake=night.lake or None)
        try:
            served = served_info(settings.warehouse_path)
        except PublishError:
            served = {}
        if served.get("build_id") == build_plan.build_id:
            snapshot = str(served["snapshot"])
            print(f"build {build_plan.build_id} is already published ({snapshot})")
        else:
            snapshot = publish_build(settings, build_plan)
        record_build(settings, build_plan)
        end_night(settings)
    return snapshot


def served_alerts() -> list[dict[str, object]]:
    """The stages of the served night whose drop-off rose significantly between the two
    latest settled periods (agg_dropoff_alerts), as JSON-ready dicts."""
    import duckdb

    from cjm_pipeline.report import alert_rows

    with duckdb.connect(str(get_settings().warehouse_path), read_only=True) as con:
        return alert_rows(con)


# The Cosmos dbt tasks take the lock in their own process: Airflow runs an operator's
# ``pre_execute`` hook right before ``execute`` (an exception there fails the task), and
# ``post_execute``, ``on_failure_callback`` or ``on_retry_callback`` once it is over.
# A task killed in between loses the lock with its process.
_TASKS_HOLDING: set[str] = set()


def _task_key(context: Any) -> str:
    ti = context["ti"]
    return f"{ti.dag_id}/{context['run_id']}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"


def dbt_task_starts(context: Any) -> None:
    """Take the night lock for a dbt task, and check its night is still in progress."""
    settings = get_settings()
    run_id = str(context["run_id"])
    task_id = context["ti"].task_id
    command = f"airflow task {DAG_ID}.{task_id} (run {run_id})"
    acquire(settings, command, settings.lock_wait_seconds, print, TASK_HINT)
    try:
        require_night(settings, run_id, task_id)
    except BaseException:
        release(settings)
        raise
    _TASKS_HOLDING.add(_task_key(context))


def fallback_task_starts(context: Any) -> None:
    """A watcher node task's hook: on a retry or a clear it runs its node with dbt
    itself (Cosmos' fallback), so then it takes the night lock as a dbt task does."""
    if context["ti"].try_number > 1:
        dbt_task_starts(context)


def dbt_task_ends(context: Any, result: object = None) -> None:
    """Give the night lock back (once, however the task ended)."""
    key = _task_key(context)
    if key in _TASKS_HOLDING:
        _TASKS_HOLDING.discard(key)
        release(get_settings())


def report_served() -> str:
    """The journey map of the night just published (read-only on the served file)."""
    from cjm_pipeline.report import write_report

    return str(write_report(get_settings()))


def dbt_task_environment() -> dict[str, str]:
    """Environment of the dbt tasks: the project's, minus the paths Cosmos manages
    itself (it runs each task in a copy of the project with its own target/)."""
    managed = {"DBT_PROJECT_DIR", "DBT_TARGET_PATH", "DBT_LOG_PATH"}
    return {k: v for k, v in dbt_environment(get_settings()).items() if k not in managed}
