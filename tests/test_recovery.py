"""What the next night does with what a fault left: a damaged build state file or build
database, a lake partition removed or changed after it was built, an empty lake. Real
files throughout: the session's build, published into a private warehouse, over a
private copy of the sample lake; the plans are computed without starting dbt."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from cjm_pipeline.build import (
    BuildPlan,
    NothingToBuild,
    fingerprint,
    lake_inventory,
    open_problem,
    plan_build,
    record_build,
    state_path,
)
from cjm_pipeline.ingest import ingest
from cjm_pipeline.publish import publish
from cjm_pipeline.settings import Settings
from tests.conftest import RUN_DATE, SAMPLE_START, quiet

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


def damage(path: Path) -> None:
    """Overwrite the file's headers, as a failing disk or a stray write would."""
    with path.open("r+b") as handle:
        handle.write(b"\0" * 12288)


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
    assert open_problem(night.build_path)

    plan, lines = planned(night)

    [warning] = lines
    assert f"the build database {night.build_path} cannot be opened" in warning
    assert "restored from the served snapshot (build 1 as of" in warning
    assert (plan.full_refresh, plan.build_id, plan.last_success_build_id) == (False, 2, 1)
    assert open_problem(night.build_path) is None


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
