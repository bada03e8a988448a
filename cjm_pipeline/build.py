"""The dbt build of the journey models, and the summary printed after it.

dbt runs as a child process (see ``run_dbt``). Paths, resources and
the journey settings reach the project (dbt_project.yml, profiles.yml) through
environment variables and ``--vars``, so the command line and the scheduler build
exactly the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from cjm_pipeline.settings import PROJECT_ROOT, Settings


class BuildError(RuntimeError):
    """The dbt build failed; the message names the failing nodes."""


@dataclass
class BuildPlan:
    run_date: date
    full_refresh: bool
    lookback_days: int
    reason: str
    build_id: int = 1
    last_success_build_id: int = 0
    # Of the settings, seeds and models at planning time: what the build is made with.
    fingerprint: str = ""


@dataclass
class BuildResult:
    plan: BuildPlan
    build_path: Path
    statuses: dict[str, str] = field(default_factory=dict)


@dataclass
class BuildState:
    """What the last successful build was: written only when every node passed."""

    build_id: int
    run_date: date
    fingerprint: str

    @classmethod
    def load(cls, path: Path) -> BuildState | None:
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(data["build_id"], date.fromisoformat(data["run_date"]), data["fingerprint"])

    def save(self, path: Path) -> None:
        data = {
            "build_id": self.build_id,
            "run_date": self.run_date.isoformat(),
            "fingerprint": self.fingerprint,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)


def state_path(settings: Settings) -> Path:
    return settings.build_path.with_name(settings.build_path.name + ".state.json")


def fingerprint(settings: Settings) -> str:
    """What the history in the build depends on besides the data: the journey
    settings, the project's vars, the seeds and the model SQL. When it changes, the next
    build is a full refresh, so history is never classified two ways."""
    digest = hashlib.sha256()
    for key in (
        "session_gap_minutes",
        "session_cap_hours",
        "journey_gap_days",
        "max_customers_per_identifier",
    ):
        digest.update(f"{key}={getattr(settings, key)};".encode())
    digest.update((PROJECT_ROOT / "dbt_project.yml").read_bytes())
    models = PROJECT_ROOT / "models"
    for path in sorted(models.rglob("*")):
        if path.suffix in {".sql", ".csv"}:
            digest.update(path.relative_to(models).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def plan_build(
    settings: Settings, run_date: date, full_refresh: bool = False, since: date | None = None
) -> BuildPlan:
    """Decide between an incremental night and a full refresh.

    A night after the last successful build re-reads the lookback window, widened to
    cover every night since that build and every landing date ingested for this run
    (``since``). Going back in time (a run date before the last build's), a change of
    settings, seeds or models, or a missing build database needs a full refresh.
    """
    lookback = settings.build_lookback_days
    state = BuildState.load(state_path(settings))
    current = fingerprint(settings)
    if full_refresh:
        reason = "full refresh requested"
    elif state is None or not settings.build_path.exists():
        reason = "first build"
    elif run_date < state.run_date:
        reason = f"run date {run_date} is before the last build's ({state.run_date})"
    elif state.fingerprint != current:
        reason = "settings, seeds or models changed since the last build"
    else:
        reason = ""
    if reason:
        build_id = (state.build_id + 1) if state else 1
        return BuildPlan(run_date, True, lookback, reason, build_id, 0, current)
    oldest = min(state.run_date, since) if since else state.run_date
    widened = max(lookback, (run_date - oldest).days)
    why = "incremental night" if widened == lookback else f"window widened back to {oldest}"
    return BuildPlan(run_date, False, widened, why, state.build_id + 1, state.build_id, current)


def dbt_vars(settings: Settings, plan: BuildPlan) -> dict[str, object]:
    return {
        "run_date": plan.run_date.isoformat(),
        "session_gap_minutes": settings.session_gap_minutes,
        "session_cap_hours": settings.session_cap_hours,
        "journey_gap_days": settings.journey_gap_days,
        "lookback_days": plan.lookback_days,
        "build_id": plan.build_id,
        "last_success_build_id": plan.last_success_build_id,
        "funnel_period": settings.funnel_period,
        "attribution_half_life_days": settings.attribution_half_life_days,
        "max_customers_per_identifier": settings.max_customers_per_identifier,
    }


def dbt_work_dir(settings: Settings) -> Path:
    """dbt's target/ and logs/ for builds of this database."""
    return settings.build_path.parent / "dbt"


def dbt_environment(settings: Settings) -> dict[str, str]:
    """Environment the dbt project reads (profiles.yml, the lake sources)."""
    work = dbt_work_dir(settings)
    return {
        "CJM_LAKE_DIR": str(settings.lake_dir),
        "CJM_BUILD_PATH": str(settings.build_path),
        "CJM_DUCKDB_MEMORY_LIMIT": settings.duckdb_memory_limit,
        "CJM_DUCKDB_THREADS": str(settings.duckdb_threads),
        "CJM_TIME_ZONE": settings.time_zone,
        "DBT_PROFILES_DIR": str(PROJECT_ROOT),
        "DBT_PROJECT_DIR": str(PROJECT_ROOT),
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def run_dbt(
    settings: Settings, args: list[str], progress: Callable[[str], None] = print
) -> dict[str, str]:
    """Run one dbt command; returns node -> status, raises BuildError on failure.

    dbt runs in a child process: the build database is then closed when it returns,
    so this process (or any other) can open it right after.
    """
    settings.build_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **dbt_environment(settings)}
    dbt = Path(sys.executable).with_name("dbt")
    command = [str(dbt), "--no-use-colors", *args, "--project-dir", str(PROJECT_ROOT)]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as child:
        for line in child.stdout:
            progress("  " + line.rstrip())
    results_file = Path(env["DBT_TARGET_PATH"]) / "run_results.json"
    statuses: dict[str, str] = {}
    if results_file.exists():
        for node in json.loads(results_file.read_text())["results"]:
            statuses[node["unique_id"]] = node["status"]
    if child.returncode != 0:
        failed = [node for node, status in statuses.items() if status in {"error", "fail"}]
        detail = f"failing nodes: {', '.join(failed)}" if failed else "see the dbt output above"
        raise BuildError(f"dbt {args[0]} failed (exit {child.returncode}); {detail}")
    return statuses


def build(
    settings: Settings,
    run_date: date,
    full_refresh: bool = False,
    select: str | None = None,
    progress: Callable[[str], None] = print,
    tests: bool = True,
    since: date | None = None,
    record: bool = True,
) -> BuildResult:
    """dbt build of every model, seed and test, as of ``run_date``.

    ``tests=False`` builds the models and seeds without running the data and unit tests.
    ``since`` is the earliest landing date ingested for this run (a backfill): the
    incremental window reaches back to it. The build state is saved only when every
    node succeeded, so a failed night is redone by the next one; ``record=False``
    leaves that to the caller (see ``record_build``).
    """
    plan = plan_build(settings, run_date, full_refresh, since)
    progress(
        f"dbt build as of {plan.run_date} "
        f"({'full refresh' if plan.full_refresh else 'incremental'}: {plan.reason}; "
        f"lookback {plan.lookback_days} days)"
    )
    args = ["build", "--vars", json.dumps(dbt_vars(settings, plan))]
    if plan.full_refresh:
        args.append("--full-refresh")
    if select:
        args += ["--select", select]
    if not tests:
        args += ["--exclude", "resource_type:test", "resource_type:unit_test"]
    statuses = run_dbt(settings, args, progress)
    if select is None and record:
        record_build(settings, plan)
    return BuildResult(plan, settings.build_path, statuses)


def manifest_path(settings: Settings) -> Path:
    """dbt's manifest of the project, which the Airflow DAG renders its dbt tasks from."""
    return dbt_work_dir(settings) / "target" / "manifest.json"


def write_manifest(settings: Settings, progress: Callable[[str], None] = print) -> Path:
    """``dbt parse``: refresh the manifest (every build refreshes it too)."""
    plan = BuildPlan(date(2099, 12, 31), False, settings.build_lookback_days, "parse")
    run_dbt(settings, ["parse", "--vars", json.dumps(dbt_vars(settings, plan))], progress)
    return manifest_path(settings)


def record_build(settings: Settings, plan: BuildPlan) -> None:
    """Mark the build as the last successful one: the next night builds on it.

    The nightly job calls this only once the build passed the marts gate and was
    published, so a build that failed a critical expectation, or was not served, is
    redone by the next night with the same number, like a failed build.
    """
    BuildState(plan.build_id, plan.run_date, plan.fingerprint or fingerprint(settings)).save(
        state_path(settings)
    )


def restore_build(settings: Settings, snapshot: Path) -> BuildState:
    """Make a published snapshot the build database again (after a rollback).

    A snapshot is a whole build database, so the next night builds on the restored
    night instead of the one rolled back from. The copy replaces the build file in one
    rename, and the build state follows it, with the fingerprint the snapshot was built
    with: if the models changed since, the next night is a full refresh.
    """
    import duckdb

    from cjm_pipeline.publish import wal_path

    target = settings.build_path
    staging = target.with_name(f".{target.name}.restoring")
    try:
        shutil.copyfile(snapshot, staging)
        with duckdb.connect(str(staging)) as con:
            build_id, run_date, made_with = con.execute(
                "select build_id, run_date, fingerprint from cjm_publish"
            ).fetchone()
            con.execute("drop table cjm_publish")
            con.execute("checkpoint")
        wal_path(target).unlink(missing_ok=True)
        os.replace(staging, target)
    except (OSError, duckdb.Error) as exc:
        raise BuildError(
            f"the build database could not be restored from {snapshot}: {exc}. The served "
            "night is rolled back; run the next night with --full-refresh"
        ) from exc
    state = BuildState(build_id, run_date, made_with or "unknown")
    state.save(state_path(settings))
    return state


def summary(database: Path) -> str:
    """Customers, journeys by status and the stage funnel, as printed after a run."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        customers = con.execute("select count(*) from dim_customers").fetchone()[0]
        events, unclassified = con.execute(
            "select count(*), count(*) filter (where touchpoint_id = 'unclassified') "
            "from fct_journey_events"
        ).fetchone()
        statuses = con.execute(
            "select status, count(*) from fct_journeys group by status order by status"
        ).fetchall()
        funnel = con.execute(
            """
            select stage, sum(journeys_entered), sum(journeys_advanced),
                sum(journeys_dropped), sum(journeys_in_progress),
                sum(journeys_dropped) / nullif(sum(journeys_advanced) + sum(journeys_dropped), 0)
            from agg_stage_funnel
            group by stage, stage_order
            order by stage_order
            """
        ).fetchall()
    total = sum(n for _, n in statuses)
    lines = [
        f"customers {customers:,}   events {events:,} "
        f"({unclassified:,} on the unclassified touchpoint)",
        f"journeys {total:,}: "
        + ", ".join(f"{status} {n:,} ({n / total:.0%})" for status, n in statuses),
        "",
        f"{'stage':<14}{'entered':>9}{'advanced':>10}{'dropped':>9}{'in progress':>13}"
        f"{'drop-off':>10}",
    ]
    for stage, entered, advanced, dropped, in_progress, rate in funnel:
        shown = "-" if rate is None else f"{rate:.1%}"
        lines.append(
            f"{stage:<14}{entered:>9,}{advanced:>10,}{dropped:>9,}{in_progress:>13,}{shown:>10}"
        )
    return "\n".join(lines)
