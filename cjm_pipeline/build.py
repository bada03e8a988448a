"""The dbt build of the journey models, and the summary printed after it.

dbt runs as a child process (see ``run_dbt``). Paths, resources and
the journey settings reach the project (dbt_project.yml, profiles.yml) through
environment variables and ``--vars``, so the command line and the scheduler build
exactly the same way.

Before planning a night, what the build stands on is checked, and repaired where it can
be (see ``plan_build``): a build state file that cannot be read is rebuilt from the
served snapshot's stamp; a build database that cannot be opened is restored from the
served snapshot; a build published but not recorded (a night killed in between) is
recorded from the served stamp; a build rolled back from that is still the build
database (a rollback killed before restoring it) is replaced by the served snapshot; a
lake partition removed or changed since the last build (a deletion such as an erasure
request) makes the night a full refresh, so it reaches the marts; a lake file that
cannot be read stops the night, naming it and the command that writes it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cjm_pipeline.files import atomic_write_text
from cjm_pipeline.lock import night_lock
from cjm_pipeline.settings import ALL_SOURCES, PROJECT_ROOT, SOURCES, Settings


class BuildError(RuntimeError):
    """The dbt build failed; the message names the failing nodes."""


class BuildStateError(BuildError):
    """The build state file cannot be read; the message names it and what is wrong."""


class NothingToBuild(BuildError):
    """The lake holds no event up to the run date."""


class DamagedLake(BuildError):
    """Lake files the build would read cannot be read; the message names each one and
    the command that writes it again."""


# What a plan saw of one lake partition: bytes, rows, and a digest of its Parquet
# footers. The footers, not the modification times: re-ingesting a date rewrites its
# file with the same bytes, and that must not force a full refresh.
Partition = list[object]


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
    # The lake partitions up to the run date ("source/date" -> Partition), recorded with
    # the build so the next night can tell what changed under it.
    lake: dict[str, Partition] | None = None


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
    lake: dict[str, Partition] | None = None

    @classmethod
    def load(cls, path: Path) -> BuildState | None:
        """The state in ``path``, None if there is none; ``BuildStateError`` naming the
        file when it is not a state file (truncated, a key missing, a wrong type)."""
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("it is not a JSON object")
            build_id = data["build_id"]
            if not isinstance(build_id, int) or isinstance(build_id, bool) or build_id < 1:
                raise ValueError(f"build_id {build_id!r} is not a build number")
            run_date = date.fromisoformat(_text(data, "run_date"))
            made_with = _text(data, "fingerprint")
            lake = data.get("lake")
            if lake is not None and not isinstance(lake, dict):
                raise ValueError("lake is not a JSON object")
        except KeyError as exc:
            raise BuildStateError(f"the build state file {path} has no key {exc}") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise BuildStateError(f"the build state file {path} is damaged ({exc})") from exc
        return cls(build_id, run_date, made_with, lake)

    def save(self, path: Path) -> None:
        data = {
            "build_id": self.build_id,
            "run_date": self.run_date.isoformat(),
            "fingerprint": self.fingerprint,
            "lake": self.lake,
        }
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def _text(data: dict, key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} {value!r} is not a string")
    return value


def state_path(settings: Settings) -> Path:
    return settings.build_path.with_name(settings.build_path.name + ".state.json")


def load_state_quietly(settings: Settings) -> BuildState | None:
    """The build state, or None when there is none or it is damaged (``plan_build``
    reports and repairs the damage)."""
    try:
        return BuildState.load(state_path(settings))
    except BuildStateError:
        return None


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
    digest.update(json.dumps(sorted(settings.identity_deny_values)).encode())
    digest.update((PROJECT_ROOT / "dbt_project.yml").read_bytes())
    models = PROJECT_ROOT / "models"
    for path in sorted(models.rglob("*")):
        if path.suffix in {".sql", ".csv", ".py"}:
            digest.update(path.relative_to(models).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# The lake under the build -----------------------------------------------------------------

PARTITION_DATE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def _partition_dirs(settings: Settings) -> list[tuple[str, date, Path]]:
    roots = {source: settings.lake_dir / "events" / f"source={source}" for source in SOURCES}
    roots["crm"] = settings.lake_dir / "crm_customers"
    found = []
    for source in ALL_SOURCES:
        if not roots[source].is_dir():
            continue
        for folder in roots[source].iterdir():
            match = PARTITION_DATE.match(folder.name)
            if match and folder.is_dir():
                found.append((source, date.fromisoformat(match[1]), folder))
    return found


PARQUET_MAGIC = b"PAR1"


def _footer(path: Path) -> tuple[int, bytes]:
    """The rows and the Parquet footer (schema, row groups and statistics) of a file,
    read once from its end. Raises ``ValueError`` saying why it is no Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = path.stat().st_size
    if size < 2 * len(PARQUET_MAGIC) + 4:
        raise ValueError(f"{size} bytes: too short for a Parquet file")
    with path.open("rb") as handle:
        handle.seek(-8, os.SEEK_END)
        tail = handle.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != PARQUET_MAGIC or length > size - 12:
            raise ValueError("no Parquet footer at its end (cut short, or not Parquet)")
        handle.seek(-8 - length, os.SEEK_END)
        footer = handle.read(length)
    try:
        rows = pq.read_metadata(pa.BufferReader(footer + tail)).num_rows
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"its footer cannot be read ({exc})") from exc
    return rows, footer


def lake_inventory(settings: Settings, up_to: date) -> dict[str, Partition]:
    """Every event and crm partition of the lake up to ``up_to`` (what a build reads):
    ``"source/date" -> [bytes, rows, footer digest]``. Raises ``DamagedLake`` naming
    every file that is no whole Parquet file (truncated, empty, overwritten)."""
    inventory: dict[str, Partition] = {}
    damaged: list[str] = []
    for source, day, folder in _partition_dirs(settings):
        if day > up_to:
            continue
        size = rows = 0
        digest = hashlib.sha256()
        for file in sorted(folder.glob("*.parquet")):
            try:
                count, footer = _footer(file)
            except (OSError, ValueError) as exc:
                damaged.append(
                    f"{file} cannot be read ({exc}): write it again with "
                    f"`cjm ingest --date {day} --source {source}`"
                )
                continue
            size += file.stat().st_size
            rows += count
            digest.update(file.name.encode() + b"\0" + footer)
        inventory[f"{source}/{day.isoformat()}"] = [size, rows, digest.hexdigest()[:16]]
    if damaged:
        raise DamagedLake(
            "the lake holds damaged files, and no build can read them:\n  "
            + "\n  ".join(damaged)
            + "\nIngesting a date again rewrites its partition from its landing files; if "
            "they are gone, delete the partition's folder and the next night rebuilds "
            "without it"
        )
    return inventory


def event_rows(inventory: dict[str, Partition]) -> int:
    return sum(int(p[1]) for key, p in inventory.items() if not key.startswith("crm/"))


def lake_changes(state: BuildState, now: dict[str, Partition], window_start: date) -> list[str]:
    """What changed in the partitions the last build read, that a night re-reading the
    landing dates from ``window_start`` would not take in.

    A re-read adds the events it does not hold yet, but never takes one back nor
    corrects one it holds; and a footer cannot tell a partition that only gained events
    from one that lost some and gained as many (or had values rewritten). So a partition
    the last build read that changed at all, inside the window or before it, needs a
    full refresh. Ingestion never rewrites a partition of another date except to remove
    events (a backfill moving them to the earlier date), so a night that lands new dates
    does not meet this; a partition added inside the window is what a re-read is for."""
    if state.lake is None:
        return []
    changes = []
    for key in sorted(set(state.lake) | set(now)):
        source, day = key.split("/")
        if date.fromisoformat(day) > state.run_date:
            continue
        then, current = state.lake.get(key), now.get(key)
        where = f"lake partition {source} {day}"
        if current is None:
            changes.append(f"{where} was removed since build {state.build_id}")
        elif then is None:
            if date.fromisoformat(day) < window_start:
                changes.append(f"{where} was added since build {state.build_id}")
        elif then[2] != current[2]:
            changes.append(
                f"{where} changed since build {state.build_id} "
                f"({int(then[1]):,} rows then, {int(current[1]):,} now)"
            )
    return changes


# Repairs before a plan --------------------------------------------------------------------


def read_state(
    settings: Settings, progress: Callable[[str], None] = print
) -> tuple[BuildState | None, str]:
    """The build state, repaired when the file is damaged: rebuilt from the served
    snapshot's ``cjm_publish`` stamp when it can be read (returns it), else the file is
    moved aside and the reason returned (the night is then a full refresh)."""
    from cjm_pipeline.publish import PublishError, read_published_build

    path = state_path(settings)
    try:
        return BuildState.load(path), ""
    except BuildStateError as exc:
        damage = str(exc)
    try:
        stamp, lake = read_published_build(settings.warehouse_path)
    except PublishError as exc:
        aside = _move_aside(path)
        reason = (
            f"{damage}, and the served snapshot cannot replace it ({exc}); it was moved "
            f"aside to {aside.name}"
        )
        progress(f"warning: {reason}: this night is a full refresh")
        return None, reason
    state = BuildState(stamp.build_id, stamp.run_date, stamp.fingerprint or "unknown", lake)
    state.save(path)
    progress(
        f"warning: {damage}: rebuilt from the served snapshot {stamp.name} "
        f"(build {stamp.build_id} as of {stamp.run_date})"
    )
    return state, ""


def _move_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    os.replace(path, aside)
    return aside


def check_build_database(settings: Settings, progress: Callable[[str], None] = print) -> str:
    """Make sure the build database opens: a damaged one is restored from the served
    snapshot (returns ""), or moved aside (returns the reason for a full refresh)."""
    from cjm_pipeline.publish import database_problem, wal_path

    path = settings.build_path
    if not path.exists():
        return ""
    problem = database_problem(path, published=False)
    if problem is None:
        return ""
    if "could not set lock" in problem.lower():
        raise BuildError(
            f"the build database {path} is in use by another process ({problem}): stop it "
            "(`lsof` names it), then run again"
        )
    damage = f"the build database {path} cannot be opened ({problem})"
    served = settings.warehouse_path
    if served.exists() and database_problem(served) is None:
        try:
            state = restore_build(settings, served)
        except BuildError as exc:
            progress(f"warning: {damage}; restoring it failed: {exc}")
        else:
            progress(
                f"warning: {damage}: restored from the served snapshot "
                f"(build {state.build_id} as of {state.run_date})"
            )
            return ""
    aside = _move_aside(path)
    wal_path(path).unlink(missing_ok=True)
    reason = f"{damage}; no served snapshot could replace it, so it was moved aside to {aside.name}"
    progress(f"warning: {reason}")
    return reason


def next_build_id(settings: Settings, state: BuildState | None) -> int:
    """One more than the last build recorded and than every snapshot kept: a build
    published but not recorded, or rolled back from, is never numbered twice, and
    numbers never go back when the state is lost."""
    from cjm_pipeline.publish import snapshot_build_ids

    recorded = 0 if state is None else state.build_id
    return max([recorded, *snapshot_build_ids(settings)]) + 1


def follow_served(
    settings: Settings, state: BuildState | None, progress: Callable[[str], None] = print
) -> tuple[BuildState | None, str]:
    """The build state, brought in line with the night served, and the reason for a
    full refresh when it cannot be.

    Served and recorded are the same build, except after a kill: between a publish and
    its record (the served build is newer: it is recorded now, so the night builds on
    it), or between a rollback's switch and its restore (the recorded build is a
    snapshot rolled back from: the build database is restored from the served one, or
    else the night is a full refresh, so the night rolled back from is never built on
    and published again). A recorded build newer than the served one and never
    published (`cjm build`) is kept."""
    from cjm_pipeline.publish import PublishError, read_published_build, snapshots

    if state is None:
        return None, ""
    try:
        stamp, lake = read_published_build(settings.warehouse_path)
    except PublishError:
        return state, ""  # nothing served, or damaged: the other repairs say so
    if stamp.build_id == state.build_id:
        return state, ""
    if stamp.build_id > state.build_id:
        served = BuildState(stamp.build_id, stamp.run_date, stamp.fingerprint or "unknown", lake)
        served.save(state_path(settings))
        progress(
            f"warning: build {stamp.build_id} (as of {stamp.run_date}) was published but not "
            f"recorded (the night stopped in between): the build state now records it"
        )
        return served, ""
    ours = (state.build_id, state.run_date)
    if not any(s.rolled_back and (s.build_id, s.run_date) == ours for s in snapshots(settings)):
        return state, ""
    left = (
        f"the build database is build {state.build_id} (as of {state.run_date}), which was "
        "rolled back from: `cjm rollback` stopped before restoring it"
    )
    try:
        restored = restore_build(settings, settings.warehouse_path)
    except BuildError as exc:
        reason = f"{left}, and restoring it failed ({exc})"
        progress(f"warning: {reason}: this night is a full refresh")
        return None, reason
    progress(
        f"warning: {left}; restored from the served snapshot (build {restored.build_id} "
        f"as of {restored.run_date})"
    )
    return restored, ""


def plan_build(
    settings: Settings,
    run_date: date,
    full_refresh: bool = False,
    since: date | None = None,
    progress: Callable[[str], None] = print,
) -> BuildPlan:
    """Decide between an incremental night and a full refresh.

    A night after the last successful build re-reads the lookback window, widened to
    cover every night since that build and every landing date ingested for this run
    (``since``). Going back in time (a run date before the last build's), a change of
    settings, seeds or models, a missing or damaged build database, a damaged state file
    that the served snapshot cannot replace, or a lake partition removed or changed
    since the last build needs a full refresh. Raises ``NothingToBuild`` when the lake
    has no event up to ``run_date``, and ``DamagedLake`` naming the lake files that
    cannot be read. Call it under the night lock: it may repair files (see
    ``check_build_database``, ``read_state`` and ``follow_served``).
    """
    lookback = settings.build_lookback_days
    damaged = check_build_database(settings, progress)
    state, state_damage = read_state(settings, progress)
    state, rolled_back = follow_served(settings, state, progress)
    state_damage = state_damage or rolled_back
    lake = lake_inventory(settings, run_date)
    if event_rows(lake) == 0:
        raise NothingToBuild(
            f"no events in the lake up to {run_date}: nothing to build; check CJM_DATA_DIR "
            f"(now {settings.data_dir}) and the landing folders"
        )
    current = fingerprint(settings)
    build_id = next_build_id(settings, state)
    if full_refresh:
        reason = "full refresh requested"
    elif damaged or state_damage:
        reason = damaged or state_damage
    elif state is None or not settings.build_path.exists():
        reason = "first build"
    elif run_date < state.run_date:
        reason = f"run date {run_date} is before the last build's ({state.run_date})"
    elif state.fingerprint != current:
        reason = "settings, seeds or models changed since the last build"
    else:
        reason = ""
    if reason:
        return BuildPlan(run_date, True, lookback, reason, build_id, 0, current, lake)
    oldest = min(state.run_date, since) if since else state.run_date
    widened = max(lookback, (run_date - oldest).days)
    changes = lake_changes(state, lake, run_date - timedelta(days=widened))
    if changes:
        more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
        return BuildPlan(run_date, True, lookback, changes[0] + more, build_id, 0, current, lake)
    why = "incremental night" if widened == lookback else f"window widened back to {oldest}"
    return BuildPlan(run_date, False, widened, why, build_id, state.build_id, current, lake)


def dbt_vars(settings: Settings) -> dict[str, object]:
    """dbt's --vars: the settings, which change only when the settings do, so dbt's
    parse of the project (which a change in --vars voids) holds from night to night.
    The night's own values travel in ``CJM_NIGHT`` (``night_values``)."""
    return {
        "session_gap_minutes": settings.session_gap_minutes,
        "session_cap_hours": settings.session_cap_hours,
        "journey_gap_days": settings.journey_gap_days,
        "return_window_days": settings.return_window_days,
        "funnel_period": settings.funnel_period,
        "attribution_half_life_days": settings.attribution_half_life_days,
        "driver_min_journeys": settings.driver_min_journeys,
        "driver_alpha": settings.driver_alpha,
        "alert_rise": settings.alert_rise,
        "alert_alpha": settings.alert_alpha,
        "max_customers_per_identifier": settings.max_customers_per_identifier,
        # The built-in placeholders and CJM_IDENTITY_DENY_LIST: a value listed later
        # stops merging customers in history too (it is in the fingerprint).
        "identity_placeholders": sorted(settings.identity_deny_values),
    }


def night_values(plan: BuildPlan) -> dict[str, object]:
    """The night's values, which the models read while dbt runs (``night()`` in
    models/macros/run_window.sql), handed to dbt as the JSON of ``CJM_NIGHT``."""
    return {
        "run_date": plan.run_date.isoformat(),
        "lookback_days": plan.lookback_days,
        "build_id": plan.build_id,
        "last_success_build_id": plan.last_success_build_id,
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
    settings: Settings,
    args: list[str],
    progress: Callable[[str], None] = print,
    plan: BuildPlan | None = None,
) -> dict[str, str]:
    """Run one dbt command (for the night of ``plan``, if given); returns node ->
    status, raises BuildError on failure.

    dbt runs in a child process: the build database is then closed when it returns,
    so this process (or any other) can open it right after.
    """
    settings.build_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **dbt_environment(settings)}
    env.pop("CJM_NIGHT", None)
    if plan is not None:
        env["CJM_NIGHT"] = json.dumps(night_values(plan))
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
    plan: BuildPlan | None = None,
    unit_tests: bool = False,
) -> BuildResult:
    """dbt build of every model, seed and data test, as of ``run_date``.

    ``tests=False`` builds the models and seeds without running the data tests.
    ``unit_tests=True`` runs the dbt unit tests as well: they check the models' logic
    on fixed inputs, so they belong where the models change (``make test``, CI,
    ``cjm build --unit-tests`` after a model change), not in every night, which they
    would cost a tenth of its build.
    ``since`` is the earliest landing date ingested for this run (a backfill): the
    incremental window reaches back to it. ``plan`` is one the caller made with
    ``plan_build`` under the same lock (the night plans before its events gate). The
    build state is saved only when every node succeeded, so a failed night is redone by
    the next one; ``record=False`` leaves that to the caller (see ``record_build``).
    Holds the night lock (taken again if the caller holds it; refused at once otherwise).
    """
    with night_lock(settings, "cjm build", progress=progress):
        plan = plan or plan_build(settings, run_date, full_refresh, since, progress)
        return _build(settings, plan, select, progress, tests, record, unit_tests)


def _build(
    settings: Settings,
    plan: BuildPlan,
    select: str | None,
    progress: Callable[[str], None],
    tests: bool,
    record: bool,
    unit_tests: bool = False,
) -> BuildResult:
    progress(
        f"dbt build as of {plan.run_date} "
        f"({'full refresh' if plan.full_refresh else 'incremental'}: {plan.reason}; "
        f"lookback {plan.lookback_days} days)"
    )
    args = ["build", "--vars", json.dumps(dbt_vars(settings))]
    if plan.full_refresh:
        args.append("--full-refresh")
    if select:
        # The night's view goes with any selection: the Python models read it.
        args += ["--select", select, "int_night"]
    if not tests:
        args += ["--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
    elif not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    statuses = run_dbt(settings, args, progress, plan)
    if select is None and record:
        record_build(settings, plan)
    return BuildResult(plan, settings.build_path, statuses)


def manifest_path(settings: Settings) -> Path:
    """dbt's manifest of the project, which the Airflow DAG renders its dbt tasks from."""
    return dbt_work_dir(settings) / "target" / "manifest.json"


def write_manifest(settings: Settings, progress: Callable[[str], None] = print) -> Path:
    """``dbt parse``: refresh the manifest (every build refreshes it too), with the
    --vars of a build, so the parse it leaves serves the next build."""
    run_dbt(settings, ["parse", "--vars", json.dumps(dbt_vars(settings))], progress)
    return manifest_path(settings)


def record_build(settings: Settings, plan: BuildPlan) -> None:
    """Mark the build as the last successful one: the next night builds on it.

    The nightly job calls this only once the build passed the marts gate and was
    published, so a build that failed a critical expectation, or was not served, is
    redone by the next night with the same number, like a failed build. The lake
    partitions the plan saw are recorded with it (see ``lake_changes``).
    """
    made_with = plan.fingerprint or fingerprint(settings)
    BuildState(plan.build_id, plan.run_date, made_with, plan.lake).save(state_path(settings))


def restore_build(settings: Settings, snapshot: Path) -> BuildState:
    """Make a published snapshot the build database again (after a rollback).

    A snapshot is a whole build database, so the next night builds on the restored
    night instead of the one rolled back from. The copy replaces the build file in one
    rename, and the build state follows it, with the fingerprint the snapshot was built
    with: if the models changed since, the next night is a full refresh. The lake
    partitions that night read come back with it from the snapshot, so a partition
    removed since is still noticed.
    """
    import duckdb

    from cjm_pipeline.publish import PUBLISH_TABLE, inventory_name, read_inventory, wal_path

    target = settings.build_path
    staging = target.with_name(f".{target.name}.restoring")
    try:
        shutil.copyfile(snapshot, staging)
        with duckdb.connect(str(staging)) as con:
            build_id, run_date, made_with = con.execute(
                f"select build_id, run_date, fingerprint from {PUBLISH_TABLE}"
            ).fetchone()
            lake = read_inventory(con)
            con.execute(f"drop table {PUBLISH_TABLE}")
            if (inventory := inventory_name(con)) is not None:
                con.execute(f"drop table {inventory}")
            con.execute("checkpoint")
        wal_path(target).unlink(missing_ok=True)
        os.replace(staging, target)
    except (OSError, duckdb.Error) as exc:
        raise BuildError(
            f"the build database could not be restored from {snapshot}: {exc}. The served "
            "night is rolled back; the next night restores it again, or rebuilds in full if "
            "it still cannot"
        ) from exc
    state = BuildState(build_id, run_date, made_with or "unknown", lake)
    state.save(state_path(settings))
    return state


def summary(database: Path) -> str:
    """Customers, journeys by status and the stage funnel, as printed after a run."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        # An unattributed record is a customer of its own in the marts, but no person.
        customers, unattributed = con.execute(
            "select count(*) filter (where not is_unattributed), "
            "count(*) filter (where is_unattributed) from dim_customers"
        ).fetchone()
        events, unclassified = con.execute(
            "select count(*), count(*) filter (where touchpoint_id = 'unclassified') "
            "from fct_journey_events"
        ).fetchone()
        populations = con.execute(
            "select population, count(*) from fct_journeys group by population"
        ).fetchall()
        # The funnel's populations (dbt var funnel_populations): what the statuses count.
        counted = sorted(
            p
            for (p,) in con.execute(
                "select distinct population from agg_stage_funnel where stage <> 'unclassified'"
            ).fetchall()
        )
        statuses = con.execute(
            "select status, count(*) from fct_journeys where list_contains($counted, population) "
            "group by status order by status",
            {"counted": counted},
        ).fetchall()
        outcomes = dict(
            con.execute(
                "select post_purchase_outcome, count(*) from fct_journeys "
                "where list_contains($counted, population) and post_purchase_outcome is not null "
                "group by 1",
                {"counted": counted},
            ).fetchall()
        )
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
        unmerged = unmerged_identifiers(con)
    by_population = dict(populations)
    total = sum(n for _, n in statuses)
    population_names = ("known", "anonymous", "unlinked_voice", "unclassified")
    lines = [
        f"customers {customers:,}   events {events:,} "
        f"({unclassified:,} on the unclassified touchpoint)",
        *(
            [f"{unattributed:,} unattributed records (no identifier: unlinked voices of no one)"]
            if unattributed
            else []
        ),
        *unmerged,
        f"journeys {sum(by_population.values()):,}: "
        + ", ".join(
            f"{name.replace('_', ' ')} {by_population.get(name, 0):,}"
            for name in (*population_names, *sorted(set(by_population) - set(population_names)))
        ),
        f"funnel journeys ({', '.join(counted) or 'none'}) {total:,}: "
        + ", ".join(
            f"{status.replace('_', ' ')} {n:,} ({n / total:.0%})" for status, n in statuses
        ),
        "after the order: "
        + ", ".join(
            f"{label} {outcomes.get(name, 0):,}"
            for name, label in (
                ("retained", "retained"),
                ("lapsed", "lapsed"),
                ("in_window", "in return window"),
            )
        ),
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


def unmerged_identifiers(con) -> list[str]:
    """A line per reason identifiers were kept from merging customers, with their kinds:
    none when every identifier merged (or the database predates the identity cap)."""
    # In the intermediate schema; main in databases built before the layers had schemas.
    present = con.execute(
        "select table_schema from information_schema.tables where table_catalog = "
        "current_database() and table_schema in ('intermediate', 'main') "
        "and table_name = 'int_identity__overloaded' order by table_schema = 'main'"
    ).fetchall()
    if not present:
        return []
    rows = con.execute(
        "select reason, identifier_kind, any_value(max_customers_per_identifier), count(*) "
        f'from "{present[0][0]}".int_identity__overloaded group by reason, identifier_kind '
        "order by reason, identifier_kind"
    ).fetchall()
    lines = []
    for reason in ("over_cap", "placeholder"):
        kinds = [(kind, cap, n) for why, kind, cap, n in rows if why == reason]
        if not kinds:
            continue
        total = sum(n for _, _, n in kinds)
        noun = "identifier" if total == 1 else "identifiers"
        what = (
            f"{noun} linked to more than {kinds[0][1]} customers"
            if reason == "over_cap"
            else f"placeholder {noun}"
        )
        verb = "was" if total == 1 else "were"
        by_kind = ", ".join(f"{n:,} {kind}" for kind, _, n in kinds)
        lines.append(f"{total:,} {what} {verb} not used to merge: {by_kind}")
    return lines
