"""The ``cjm`` command: one entry point for every job.

Commands that write (`run`, `build`, `ingest`, `rollback`, `manifest`) take the night
lock first and refuse at once, naming the holder, if another command or task holds it
(exit status 75: try again later); ``--wait`` waits for it instead. `run`, `build` and
`rollback` also refuse while a scheduled (Airflow) night is in progress, unless given
``--force`` (see ``cjm_pipeline.lock``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cjm_pipeline.lock import LockError, night_lock, refuse_during_night
from cjm_pipeline.settings import Settings, SettingsError, get_settings, unknown_variables

app = typer.Typer(
    help="cjm-pipeline: customer journeys from web, email, social, review and order events.",
    no_args_is_help=True,
    add_completion=False,
)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Root of landing/ and lake/ (env CJM_DATA_DIR).")
]
OneDate = Annotated[str | None, typer.Option("--date", help="One landing date.")]
Start = Annotated[str | None, typer.Option(help="First landing date of a range.")]
End = Annotated[str | None, typer.Option(help="Last landing date of a range.")]
Wait = Annotated[
    bool,
    typer.Option(
        "--wait", help="If another command holds the night lock, wait for it instead of refusing."
    ),
]
Force = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Go ahead although a scheduled (Airflow) night is in progress: for a DAG run "
        "that was abandoned (it can then no longer write).",
    ),
]
Historical = Annotated[
    bool,
    typer.Option(
        "--historical",
        help="Load old events: no age limit (CJM_MAX_EVENT_AGE_DAYS=0) for this run, for a "
        "first load of a source's history.",
    ),
]

LOCKED = 75  # exit status when the night lock is held elsewhere (EX_TEMPFAIL: try later)


def _status(line: str) -> None:
    typer.echo(line, err=True)


@contextmanager
def _night(
    settings: Settings, command: str, wait: bool, force: bool | None = None
) -> Iterator[None]:
    """Hold the night lock for a command (and, unless ``force`` is None, refuse during a
    scheduled night); a refusal is one line and exit status 75."""
    try:
        with night_lock(settings, command, None if wait else 0, _status):
            if force is not None:
                refuse_during_night(settings, command, force, _status)
            yield
    except LockError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(LOCKED) from exc


def _date_range(day: date | None, start: date | None, end: date | None) -> list[date]:
    if day and (start or end):
        raise typer.BadParameter("give either --date or --start/--end, not both")
    if day:
        return [day]
    if not (start and end):
        raise typer.BadParameter("give --date D, or --start D1 --end D2")
    if end < start:
        raise typer.BadParameter(f"--end {end} is before --start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from exc


@app.command()
def generate(
    customers: Annotated[int, typer.Option(help="How many customers to simulate.")] = 3000,
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = "2026-10-01",
    days: Annotated[int, typer.Option(help="How many days.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 42,
    out: Annotated[Path | None, typer.Option(help="Output root (default: the data dir).")] = None,
    profile: Annotated[
        str,
        typer.Option(
            help="multichannel: web, email, social, reviews and crm feeds of an online shop; "
            "marketplace: a marketplace's orders and reviews export."
        ),
    ] = "multichannel",
) -> None:
    """Write sample landing files in native formats, plus ground truth."""
    from cjm_pipeline.generate import PROFILES
    from cjm_pipeline.generate import generate as run

    if customers < 1 or days < 1:
        raise typer.BadParameter("--customers and --days must be at least 1")
    if profile not in PROFILES:
        raise typer.BadParameter(
            f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}",
            param_hint="--profile",
        )
    root = out or get_settings().data_dir
    began = time.perf_counter()
    stats = run(root, customers, _parse_date(start), days, seed, profile=profile)
    typer.echo(
        f"wrote {stats['records']:,} records for {customers:,} customers over {days} days "
        f"to {root / 'landing'} (truth in {root / 'truth'}) in {time.perf_counter() - began:.1f} s"
    )


@app.command()
def ingest(
    date_: OneDate = None,
    start: Start = None,
    end: End = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these sources (repeatable): web, email, social, reviews, orders, crm."
        ),
    ] = None,
    data_dir: DataDir = None,
    workers: Annotated[
        int, typer.Option(help="Sources ingested in parallel processes (env CJM_INGEST_WORKERS).")
    ] = 0,
    wait: Wait = False,
    historical: Historical = False,
) -> None:
    """Parse landing files into the canonical lake, quarantine and manifests."""
    from cjm_pipeline.ingest import ALL_SOURCES

    settings = _historical(get_settings(data_dir=data_dir), historical)
    sources = source or list(ALL_SOURCES)
    unknown = [s for s in sources if s not in ALL_SOURCES]
    if unknown:
        raise typer.BadParameter(f"unknown source(s) {unknown}; choose from {list(ALL_SOURCES)}")
    dates = _date_range(_parse_date(date_), _parse_date(start), _parse_date(end))
    with _night(settings, "cjm ingest", wait):
        _ingest_and_report(settings, dates, sources, workers or settings.ingest_workers)


def _historical(settings: Settings, historical: bool) -> Settings:
    """The settings of a historical load: events of any age are accepted."""
    return settings.model_copy(update={"max_event_age_days": 0}) if historical else settings


def _ingest_and_report(settings, dates: list[date], sources: list[str], workers: int) -> None:
    from cjm_pipeline.ingest import LakeWriteError, summary
    from cjm_pipeline.ingest import ingest as run_ingest

    began = time.perf_counter()
    try:
        manifests = run_ingest(settings, dates, sources, progress=typer.echo, workers=workers)
    except LakeWriteError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("")
    typer.echo(summary(manifests))
    typer.echo(f"lake: {settings.lake_dir}  ({time.perf_counter() - began:.1f} s)")


def _build_and_report(
    settings,
    run_date: date,
    full_refresh: bool,
    select: str | None,
    since: date | None = None,
    unit_tests: bool = False,
) -> None:
    from cjm_pipeline.build import (
        BuildError,
        DamagedLake,
        NothingToBuild,
        build,
        dbt_work_dir,
        summary,
    )

    began = time.perf_counter()
    try:
        result = build(
            settings,
            run_date,
            full_refresh,
            select,
            progress=typer.echo,
            since=since,
            unit_tests=unit_tests,
        )
    except (NothingToBuild, DamagedLake) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (BuildError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo(f"dbt logs: {dbt_work_dir(settings) / 'logs'}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"built {len(result.statuses)} nodes in {time.perf_counter() - began:.1f} s")
    typer.echo("")
    typer.echo(summary(result.build_path))
    typer.echo(f"database: {result.build_path}")


GATE_FAILED = 3  # exit status of a night stopped by a critical expectation


FullRefresh = Annotated[
    bool, typer.Option("--full-refresh", help="Rebuild every model from the whole lake.")
]


@app.command(name="build")
def build_command(
    date_: Annotated[str, typer.Option("--date", help="Run date: last landing date to include.")],
    full_refresh: FullRefresh = False,
    select: Annotated[str | None, typer.Option(help="dbt selector, e.g. tag:marts.")] = None,
    unit_tests: Annotated[
        bool,
        typer.Option(
            "--unit-tests",
            help="Run the dbt unit tests too (the models' logic on fixed inputs; "
            "nights leave them to make test and CI).",
        ),
    ] = False,
    data_dir: DataDir = None,
    wait: Wait = False,
    force: Force = False,
) -> None:
    """dbt build of the journey models as of a date (incremental unless told otherwise)."""
    settings = get_settings(data_dir=data_dir)
    run_date = _parse_date(date_)
    with _night(settings, "cjm build", wait, force):
        _build_and_report(settings, run_date, full_refresh, select, unit_tests=unit_tests)


@app.command()
def run(
    date_: OneDate = None,
    start: Start = None,
    end: End = None,
    full_refresh: FullRefresh = False,
    data_dir: DataDir = None,
    wait: Wait = False,
    force: Force = False,
    historical: Historical = False,
) -> None:
    """The main job: ingest the dates, gate their events, build as of the last one, gate
    the marts, then publish the served database (and its Parquet copy)."""
    settings = _historical(get_settings(data_dir=data_dir), historical)
    dates = _date_range(_parse_date(date_), _parse_date(start), _parse_date(end))
    with _night(settings, "cjm run", wait, force):
        _run_and_report(settings, dates, full_refresh)


def _run_and_report(settings: Settings, dates: list[date], full_refresh: bool) -> None:
    import duckdb

    from cjm_pipeline.build import BuildError, DamagedLake, NothingToBuild, dbt_work_dir, summary
    from cjm_pipeline.nightly import GateError, run_night
    from cjm_pipeline.publish import PublishError

    try:
        night = run_night(settings, dates, full_refresh, progress=typer.echo)
    except GateError as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo(f"served database unchanged: {settings.warehouse_path}", err=True)
        typer.echo(f"validation results: {settings.validations_dir}", err=True)
        raise typer.Exit(GATE_FAILED) from exc
    except (NothingToBuild, DamagedLake) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except BuildError as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo(f"dbt logs: {dbt_work_dir(settings) / 'logs'}", err=True)
        raise typer.Exit(1) from exc
    except (PublishError, OSError, ValueError, duckdb.Error) as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo(_served_now(settings), err=True)
        raise typer.Exit(1) from exc
    typer.echo("")
    typer.echo(summary(settings.warehouse_path))
    for warning in night.warnings:
        typer.echo(f"warning: {warning}")
    steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in night.seconds.items())
    typer.echo(f"steps: {steps}")
    typer.echo(f"served: {settings.warehouse_path} (build {night.build_id}, {night.snapshot})")
    typer.echo(f"parquet: {settings.parquet_dir / 'current'}")
    typer.echo(f"data docs: {settings.data_docs_dir / 'index.html'}")
    if night.report is not None:
        typer.echo(f"journey map: {night.report}")


RunDate = Annotated[
    str | None,
    typer.Option("--date", help="Run date of a published night (default: the one served)."),
]
Persona = Annotated[
    str | None,
    typer.Option("--persona", help="Open on one persona (an id of the persona_rules seed)."),
]


@app.command()
def report(
    date_: RunDate = None,
    persona: Persona = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the HTML file.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Write the customer journey map (one self-contained HTML file) of the night served,
    or of a kept snapshot with --date; prints its path."""
    from cjm_pipeline.report import write_report

    settings = get_settings(data_dir=data_dir)
    run_date = _parse_date(date_)
    with _reading(settings, run_date):
        path = write_report(settings, run_date, persona, out)
    typer.echo(f"journey map: {path}")


@contextmanager
def _reading(settings: Settings, run_date: date | None) -> Iterator[None]:
    """Errors of reading a published night, as one line (exit status 1)."""
    import duckdb

    from cjm_pipeline.publish import damaged
    from cjm_pipeline.report import ReportError

    try:
        yield
    except ReportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except duckdb.CatalogException as exc:
        # A night published by an earlier version, before a mart it lacks was added.
        detail = str(exc).splitlines()[0]
        night = "the served night" if run_date is None else f"the kept night of {run_date}"
        typer.echo(
            f"error: {night} was published without a table this version reads ({detail}): "
            "the next `cjm run` publishes one with it",
            err=True,
        )
        raise typer.Exit(1) from exc
    except duckdb.Error as exc:
        # A file that opens but has a damaged block fails only at the query reading it.
        if run_date is None:
            message = str(damaged(settings.warehouse_path, exc))
        else:
            detail = str(exc).splitlines()[0]
            message = f"the kept night of {run_date} cannot be read ({detail}): `cjm snapshots`"
            message += " lists the others"
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from exc


@app.command(name="summary")
def summary_command(
    date_: RunDate = None, persona: Persona = None, data_dir: DataDir = None
) -> None:
    """A short text summary of the journey map for terminals."""
    from cjm_pipeline.report import report_data, summary_text

    settings = get_settings(data_dir=data_dir)
    run_date = _parse_date(date_)
    with _reading(settings, run_date):
        data = report_data(settings, run_date, persona)
    typer.echo(summary_text(data))


def _served_now(settings: Settings) -> str:
    """What readers are served now, after a night that failed."""
    from cjm_pipeline.publish import PublishError, served_info

    try:
        info = served_info(settings.warehouse_path)
    except PublishError as exc:
        return f"served database: {exc}"
    return (
        f"served database: build {info['build_id']} as of {info['run_date']} "
        f"({settings.warehouse_path})"
    )


@app.command()
def rollback(data_dir: DataDir = None, wait: Wait = False, force: Force = False) -> None:
    """Serve the newest good snapshot published before the one served now, and build the
    next night on it (the build database is restored from the same snapshot)."""
    settings = get_settings(data_dir=data_dir)
    with _night(settings, "cjm rollback", wait, force):
        _rollback_and_restore(settings)


def _rollback_and_restore(settings: Settings) -> None:
    from cjm_pipeline.build import BuildError, restore_build
    from cjm_pipeline.publish import PublishError
    from cjm_pipeline.publish import rollback as run

    try:
        snapshot = run(settings, progress=typer.echo)
    except PublishError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"served: {settings.warehouse_path} -> {snapshot.name}")
    try:
        state = restore_build(settings, snapshot.path)
    except BuildError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"build database restored: the next night builds on build {state.build_id}")


@app.command()
def snapshots(data_dir: DataDir = None) -> None:
    """List the published snapshots, oldest first; * marks the served one, and a note
    those rolled back from and those that cannot be read."""
    from cjm_pipeline.publish import database_problem
    from cjm_pipeline.publish import snapshots as listing

    settings = get_settings(data_dir=data_dir)
    found = listing(settings)
    if not found:
        typer.echo(f"no snapshots in {settings.snapshots_dir}")
    for snapshot in found:
        mark = "*" if snapshot.is_served else " "
        note = "  (rolled back from)" if snapshot.rolled_back else ""
        problem = database_problem(snapshot.path)
        note += f"  (cannot be read: {problem})" if problem else ""
        typer.echo(
            f"{mark} {snapshot.name}  run date {snapshot.run_date}  build {snapshot.build_id}"
            + note
        )


@app.command()
def manifest(data_dir: DataDir = None, wait: Wait = False) -> None:
    """Write dbt's manifest, from which the Airflow DAG renders one task per model."""
    from cjm_pipeline.build import BuildError, write_manifest

    settings = get_settings(data_dir=data_dir)
    try:
        with _night(settings, "cjm manifest", wait):
            path = write_manifest(settings, progress=lambda _: None)
    except BuildError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"manifest: {path}")


def check_settings() -> int:
    """Every command starts by checking the settings: one line per bad value, naming the
    variable and what it accepts (exit status 2), and a warning per unknown variable."""
    for warning in unknown_variables():
        typer.echo(f"warning: {warning}", err=True)
    try:
        get_settings()
    except SettingsError as exc:
        for line in str(exc).splitlines():
            typer.echo(f"error: {line}", err=True)
        return 2
    return 0


def main() -> None:
    code = check_settings()
    if code:
        sys.exit(code)
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        code = 2
    if "duckdb_engine" in sys.modules:
        # Great Expectations with duckdb-engine leaves duckdb objects that the bindings
        # list as "leaked" at interpreter exit: a page of harmless noise after every
        # gate. Nothing here needs exit handlers once the output is flushed.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
