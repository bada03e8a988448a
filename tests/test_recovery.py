"""What the next night does with what a fault left: a damaged build state file or build
database, a lake partition removed or changed after it was built, a damaged lake file,
an empty lake, a night killed between publishing and recording its build, a rollback
killed before restoring the build; a build of the marts alone after a night. Real files
throughout: the session's build, published into a private warehouse, over a private copy
of the sample lake; the plans are computed without starting dbt, except where a test
builds."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cjm_pipeline.build import (
    BuildPlan,
    DamagedLake,
    NothingToBuild,
    build,
    dbt_vars,
    dbt_work_dir,
    fingerprint,
    lake_inventory,
    plan_build,
    record_build,
    state_path,
)
from cjm_pipeline.ingest import ingest
from cjm_pipeline.lock import Night, begin_night, read_night
from cjm_pipeline.nightly import publish_planned
from cjm_pipeline.publish import database_problem, publish, snapshot_build_ids
from cjm_pipeline.settings import IDENTITY_PLACEHOLDERS, PROJECT_ROOT, Settings
from tests.conftest import RUN_DATE, SAMPLE_START, damage, env_of, query, quiet

# Three nights of lookback: the plan re-reads landing dates from RUN_DATE - 3.
OUTSIDE = SAMPLE_START + timedelta(days=2)
INSIDE = RUN_DATE - timedelta(days=1)


@pytest.fixture
def night(built: Settings, tmp_path: Path) -> Settings:
    """The session's build published as build 1 of a private warehouse, recorded with
    the inventory of a private copy of the sample's lake (and its landing files)."""
    settings = built.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "build_path": tmp_path / "warehouse" / "build" / "cjm.duckdb",
            "warehouse_path": tmp_path / "warehouse" / "cjm.duckdb",
        }
    )
    shutil.copytree(built.lake_dir, settings.lake_dir)
    shutil.copytree(built.landing_dir, settings.landing_dir)
    settings.build_path.parent.mkdir(parents=True)
    shutil.copyfile(built.build_path, settings.build_path)
    lake = lake_inventory(settings, RUN_DATE)
    plan = BuildPlan(RUN_DATE, True, 3, "first build", 1, 0, fingerprint(settings), lake)
    publish(settings, RUN_DATE, 1, progress=quiet, fingerprint=plan.fingerprint, lake=lake)
    record_build(settings, plan)
    return settings


def planned(settings: Settings) -> tuple[BuildPlan, list[str]]:
    lines: list[str] = []
    return plan_build(settings, RUN_DATE, progress=lines.append), lines


def test_an_undamaged_night_plans_an_incremental_build(night: Settings) -> None:
    plan, lines = planned(night)
    assert (plan.full_refresh, plan.build_id, plan.last_success_build_id) == (False, 2, 1)
    assert lines == []


def test_a_build_of_the_marts_alone_keeps_every_event_of_the_marts(night: Settings) -> None:
    """`cjm build --select tag:marts` after a night: the event-grain marts delete the
    customers the last build changed (here every one with activity) and must write them
    back from the intermediate tables as they stand, though nothing upstream was rebuilt."""
    sql = "select * from {} order by all"
    before = {
        name: query(night, sql.format(name)) for name in ("fct_journey_events", "fct_sessions")
    }
    assert before["fct_journey_events"].height > 1000

    result = build(night, RUN_DATE, select="tag:marts", progress=quiet)

    plan = result.plan
    assert (plan.full_refresh, plan.build_id, plan.last_success_build_id) == (False, 2, 1)
    assert "model.cjm.fct_journey_events" in result.statuses
    assert set(result.statuses.values()) <= {"success", "pass"}, result.statuses
    for name, rows in before.items():
        assert_frame_equal(query(night, sql.format(name)), rows)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"build_id": 1, "run_date": "2026-10-1', "is damaged (Unterminated string"),
        ('{"run_date": "2026-10-12", "fingerprint": "x"}', "has no key 'build_id'"),
        ('{"build_id": "one", "run_date": "2026-10-12", "fingerprint": "x"}', "is not a build"),
        ('{"build_id": 1, "run_date": 20261012, "fingerprint": "x"}', "is not a string"),
        ("", "is damaged (Expecting value"),
    ],
)
def test_a_damaged_state_file_is_named_and_rebuilt_from_the_served_stamp(
    night: Settings, content: str, problem: str
) -> None:
    state = state_path(night)
    recorded = state.read_text()
    state.write_text(content)

    plan, lines = planned(night)

    [warning] = lines
    assert warning.startswith(f"warning: the build state file {state} ")
    assert problem in warning
    assert "rebuilt from the served snapshot" in warning and "(build 1 as of" in warning
    # The same night as if nothing had happened, and the state file is whole again.
    assert (plan.full_refresh, plan.build_id, plan.last_success_build_id) == (False, 2, 1)
    assert json.loads(state.read_text()) == json.loads(recorded)


def test_a_damaged_state_file_and_served_database_make_a_full_refresh(night: Settings) -> None:
    state_path(night).write_text('{"build_id": 1, "run_da')
    damage(night.warehouse_path)

    plan, lines = planned(night)

    assert plan.full_refresh
    assert plan.reason.startswith(f"the build state file {state_path(night)} is damaged")
    assert "the served snapshot cannot replace it" in plan.reason
    assert "moved aside to cjm.duckdb.state.json.damaged-" in plan.reason
    # Numbers never go back: the next build is numbered after the snapshots kept.
    assert plan.build_id == 2
    assert any("this night is a full refresh" in line for line in lines)
    assert not state_path(night).exists()
    assert len(list(state_path(night).parent.glob("cjm.duckdb.state.json.damaged-*"))) == 1


def test_a_damaged_build_database_is_restored_from_the_served_snapshot(night: Settings) -> None:
    damage(night.build_path)
    assert database_problem(night.build_path, published=False)

    plan, lines = planned(night)

    [warning] = lines
    assert f"the build database {night.build_path} cannot be opened" in warning
    assert "restored from the served snapshot (build 1 as of" in warning
    assert (plan.full_refresh, plan.build_id, plan.last_success_build_id) == (False, 2, 1)
    assert database_problem(night.build_path, published=False) is None


def test_a_damaged_build_database_with_nothing_served_is_moved_aside(night: Settings) -> None:
    damage(night.build_path)
    damage(night.warehouse_path)

    plan, _ = planned(night)

    assert plan.full_refresh
    assert "no served snapshot could replace it, so it was moved aside to cjm.duckdb.damaged-" in (
        plan.reason
    )
    assert not night.build_path.exists()
    assert len(list(night.build_path.parent.glob("cjm.duckdb.damaged-*"))) == 1


def partition(settings: Settings, source: str, day) -> Path:
    return settings.events_partition(source, day.isoformat()) / "events.parquet"


@pytest.mark.parametrize("day", [OUTSIDE, INSIDE], ids=["outside the window", "inside"])
def test_a_lake_partition_removed_after_it_was_built_forces_a_full_refresh(
    night: Settings, day
) -> None:
    shutil.rmtree(partition(night, "web", day).parent)

    plan, _ = planned(night)

    assert plan.full_refresh
    assert plan.reason == f"lake partition web {day} was removed since build 1"


def test_a_lake_partition_that_lost_rows_forces_a_full_refresh(night: Settings) -> None:
    path = partition(night, "email", INSIDE)
    events = pl.read_parquet(path)
    events.slice(1).write_parquet(path)

    plan, _ = planned(night)

    assert plan.full_refresh
    assert plan.reason == (
        f"lake partition email {INSIDE} changed since build 1 "
        f"({events.height:,} rows then, {events.height - 1:,} now)"
    )


def test_a_lake_partition_added_before_the_window_forces_a_full_refresh(
    night: Settings,
) -> None:
    # Build 1 as if it had read the lake without that partition, which lands later.
    shutil.rmtree(night.events_partition("social", OUTSIDE.isoformat()))
    lake = lake_inventory(night, RUN_DATE)
    record_build(night, BuildPlan(RUN_DATE, True, 3, "", 1, 0, fingerprint(night), lake))
    ingest(night, [OUTSIDE], ["social"], progress=quiet, workers=1)

    plan, _ = planned(night)

    assert plan.full_refresh
    assert plan.reason == f"lake partition social {OUTSIDE} was added since build 1"


def test_re_ingesting_built_dates_does_not_force_a_full_refresh(night: Settings) -> None:
    before = lake_inventory(night, RUN_DATE)
    ingest(night, [OUTSIDE, INSIDE], ["web", "crm"], progress=quiet, workers=1)
    assert lake_inventory(night, RUN_DATE) == before

    plan, _ = planned(night)
    assert not plan.full_refresh


def test_a_lake_without_events_is_said_before_any_dbt_start(night: Settings) -> None:
    shutil.rmtree(night.lake_dir / "events")

    with pytest.raises(NothingToBuild) as caught:
        planned(night)
    assert str(caught.value) == (
        f"no events in the lake up to {RUN_DATE}: nothing to build; check CJM_DATA_DIR "
        f"(now {night.data_dir}) and the landing folders"
    )


def test_a_partition_inside_the_window_that_lost_as_many_events_as_it_gained_forces_a_full_refresh(
    night: Settings,
) -> None:
    """The rows a re-read would add are there, but one the build holds is gone: only a
    full refresh takes it out of the marts."""
    path = partition(night, "web", INSIDE)
    events = pl.read_parquet(path)
    stranger = events.head(1).with_columns(pl.lit("f" * 32).alias("event_id"))
    events.slice(1).vstack(stranger).write_parquet(path)

    plan, _ = planned(night)

    assert plan.full_refresh
    assert plan.reason == (
        f"lake partition web {INSIDE} changed since build 1 "
        f"({events.height:,} rows then, {events.height:,} now)"
    )


@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["truncated", "empty"])
def test_a_damaged_lake_file_is_named_with_the_command_that_writes_it_again(
    night: Settings, keep: float
) -> None:
    path = partition(night, "email", OUTSIDE)
    with path.open("r+b") as handle:
        handle.truncate(int(path.stat().st_size * keep))

    with pytest.raises(DamagedLake) as caught:
        planned(night)

    assert f"  {path} cannot be read (" in str(caught.value)
    assert f"write it again with `cjm ingest --date {OUTSIDE} --source email`" in str(caught.value)
    # Doing so gives back the very file the last build read: the night is incremental.
    ingest(night, [OUTSIDE], ["email"], progress=quiet, workers=1)
    plan, _ = planned(night)
    assert (plan.full_refresh, plan.last_success_build_id) == (False, 1)


def test_a_damaged_lake_file_stops_cjm_build_in_one_message_before_dbt(night: Settings) -> None:
    path = partition(night, "web", INSIDE)
    path.write_bytes(path.read_bytes()[:100])

    done = subprocess.run(
        [str(Path(sys.executable).with_name("cjm")), "build", "--date", str(RUN_DATE)],
        env=env_of(night),
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 1
    assert "error: the lake holds damaged files, and no build can read them:\n" in done.stderr
    assert f"  {path} cannot be read (" in done.stderr
    assert f"`cjm ingest --date {INSIDE} --source web`" in done.stderr
    assert "Traceback" not in done.stderr
    assert "dbt logs" not in done.stderr
    assert not dbt_work_dir(night).exists()  # dbt never started


def test_listing_an_identifier_reclassifies_history_with_a_full_refresh(night: Settings) -> None:
    listed = night.model_copy(update={"identity_deny_list": "Kiosk-7, shared-tablet"})

    plan = plan_build(listed, RUN_DATE, progress=quiet)

    assert plan.full_refresh
    assert plan.reason == "settings, seeds or models changed since the last build"
    placeholders = dbt_vars(listed)["identity_placeholders"]
    assert set(placeholders) == set(IDENTITY_PLACEHOLDERS) | {"kiosk-7", "shared-tablet"}


def publish_second_night(settings: Settings) -> BuildPlan:
    """Build 2, as a night would leave it (its marts differ from build 1's), published."""
    with duckdb.connect(str(settings.build_path)) as con:
        con.execute("delete from fct_journeys where hash(journey_id) % 4 = 0")
    lake = lake_inventory(settings, RUN_DATE)
    plan = BuildPlan(RUN_DATE, False, 3, "incremental night", 2, 1, fingerprint(settings), lake)
    publish(settings, RUN_DATE, 2, progress=quiet, fingerprint=plan.fingerprint, lake=lake)
    return plan


def journeys(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select count(*) from fct_journeys").fetchone()[0]


def test_a_build_published_but_not_recorded_is_recorded_and_never_numbered_twice(
    night: Settings,
) -> None:
    publish_second_night(night)  # and killed before recording it

    plan, lines = planned(night)

    assert lines == [
        f"warning: build 2 (as of {RUN_DATE}) was published but not recorded (the night "
        "stopped in between): the build state now records it"
    ]
    assert (plan.full_refresh, plan.build_id, plan.last_success_build_id) == (False, 3, 2)
    assert json.loads(state_path(night).read_text())["build_id"] == 2


def test_a_retried_publish_task_does_not_publish_its_night_twice(
    night: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env_of(night).items():
        monkeypatch.setenv(name, value)
    run_id = "scheduled__2026-10-12T03:00:00+00:00"
    lake = lake_inventory(night, RUN_DATE)
    planned_at = datetime.now(UTC).isoformat()
    begin_night(night, Night("cjm_nightly", run_id, str(RUN_DATE), 2, planned_at, lake=lake))
    plan = publish_second_night(night)  # the first try published, and was killed there
    values = {**asdict(plan), "run_date": RUN_DATE.isoformat(), "lake": None}

    snapshot = publish_planned(values, run_id)

    assert snapshot.endswith("-b000002")
    assert sorted(snapshot_build_ids(night)) == [1, 2]
    assert json.loads(state_path(night).read_text())["build_id"] == 2
    assert read_night(night) is None


# `cjm rollback`, killed right where it restores the build database: after the switch.
ROLLBACK_KILLED_BEFORE_RESTORE = """
import os, signal, sys
import cjm_pipeline.build

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

cjm_pipeline.build.restore_build = killed
from cjm_pipeline.cli import main
sys.argv = ["cjm", "rollback"]
main()
"""


def test_a_rollback_killed_before_restoring_the_build_is_finished_by_the_next_plan(
    night: Settings,
) -> None:
    record_build(night, publish_second_night(night))
    served_journeys = journeys(night.warehouse_path)
    killed = subprocess.run(
        [sys.executable, "-c", ROLLBACK_KILLED_BEFORE_RESTORE],
        env=env_of(night),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "rolled back from build 2" in killed.stdout
    assert journeys(night.warehouse_path) > served_journeys  # build 1 is served again
    assert json.loads(state_path(night).read_text())["build_id"] == 2

    plan, lines = planned(night)

    [warning] = lines
    assert warning == (
        f"warning: the build database is build 2 (as of {RUN_DATE}), which was rolled back "
        "from: `cjm rollback` stopped before restoring it; restored from the served "
        f"snapshot (build 1 as of {RUN_DATE})"
    )
    # The next night builds on the night served, numbered after both snapshots.
    assert (plan.full_refresh, plan.build_id, plan.last_success_build_id) == (False, 3, 1)
    assert journeys(night.build_path) == journeys(night.warehouse_path)
