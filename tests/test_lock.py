"""One night at a time: the night lock and the scheduler's night-in-progress marker,
held and contended by real processes (`cjm` commands, a holder killed with SIGKILL)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cjm_pipeline.lock import LockError, Night, acquire, begin_night, read_night, release
from cjm_pipeline.nightly import gate_marts, plan
from cjm_pipeline.settings import PROJECT_ROOT, Settings
from tests.conftest import env_of

BIN = Path(sys.executable).parent
LOCKED = 75

# Takes the night lock as the given command, says so, then holds it for the given seconds.
HOLDER = """
import sys, time
from cjm_pipeline.lock import acquire
from cjm_pipeline.settings import get_settings
acquire(get_settings(), sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def ws(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        salt="test-salt",
        warehouse_path=tmp_path / "warehouse" / "cjm.duckdb",
        build_path=tmp_path / "warehouse" / "build" / "cjm.duckdb",
        lock_wait_seconds=1,
    )


def cjm(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "cjm"), *args],
        env=env_of(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def holder(ws: Settings) -> Iterator[callable]:
    """Start a process holding the night lock as a command, for some seconds."""
    started: list[subprocess.Popen] = []

    def start(command: str, seconds: float = 120) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, command, str(seconds)],
            env=env_of(ws),
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_commands_refuse_at_once_and_name_the_holder(ws: Settings, holder) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    process = holder("cjm run")
    after = datetime.now(UTC)
    day = "2026-10-05"
    for args in (
        ["rollback"],
        ["run", "--date", day],
        ["build", "--date", day],
        ["ingest", "--date", day],
        ["manifest"],
    ):
        began = time.monotonic()
        done = cjm(ws, *args)
        assert time.monotonic() - began < 30
        assert done.returncode == LOCKED, (args, done.stdout, done.stderr)
        message = re.search(
            r"^error: cjm run \(pid (\d+)\) has held the night lock since (\d\d:\d\d:\d\d) UTC: "
            r"wait for it to finish, or pass --wait$",
            done.stderr,
            re.MULTILINE,
        )
        assert message, done.stderr
        assert int(message[1]) == process.pid
        since = datetime.combine(before.date(), datetime.strptime(message[2], "%H:%M:%S").time())
        assert before <= since.replace(tzinfo=UTC) <= after
        assert "Traceback" not in done.stderr
    assert not ws.snapshots_dir.exists()
    assert not (ws.data_dir / "lake").exists()


def test_wait_waits_for_the_holder_then_goes_on(ws: Settings, holder) -> None:
    process = holder("cjm build", seconds=3)
    began = time.monotonic()
    done = cjm(ws, "ingest", "--date", "2026-10-05", "--wait", "--workers", "1")
    waited = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert process.wait(timeout=30) == 0
    assert re.search(r"waiting for the night lock: cjm build \(pid \d+\) has held", done.stderr)
    assert "took the night lock after" in done.stderr
    assert waited >= 2, waited
    assert "no landing folder" in done.stdout


def test_a_holder_killed_with_sigkill_leaves_no_lock_behind(ws: Settings, holder) -> None:
    process = holder("cjm run")
    assert cjm(ws, "ingest", "--date", "2026-10-05").returncode == LOCKED
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    done = cjm(ws, "ingest", "--date", "2026-10-05", "--workers", "1")
    assert done.returncode == 0, done.stderr


TRY_LOCK = """
import sys
from cjm_pipeline.lock import LockError, acquire
from cjm_pipeline.settings import get_settings
try:
    acquire(get_settings(), "a second process")
except LockError as exc:
    print(exc)
    sys.exit(75)
"""


def try_lock(settings: Settings) -> int:
    return subprocess.run(
        [sys.executable, "-c", TRY_LOCK], env=env_of(settings), cwd=PROJECT_ROOT, check=False
    ).returncode


def test_the_lock_is_reentrant_within_a_process(ws: Settings) -> None:
    first = acquire(ws, "cjm run")
    try:
        # Publish inside a run takes the run's own lock again, without waiting for itself.
        assert acquire(ws, "publish") == first
        release(ws)
        assert try_lock(ws) == LOCKED  # still held: one acquire is not given back yet
    finally:
        release(ws)
    assert try_lock(ws) == 0


def test_a_dag_task_waits_for_the_lock_then_fails_naming_the_holder(
    ws: Settings, holder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env_of(ws).items():
        monkeypatch.setenv(name, value)
    holder("cjm run")

    began = time.monotonic()
    with pytest.raises(LockError, match=r"cjm run \(pid \d+\) has held the night lock") as caught:
        plan("2026-10-05", run_id="scheduled__2026-10-05T03:00:00+00:00")
    assert 1 <= time.monotonic() - began < 30
    assert "CJM_LOCK_WAIT_SECONDS" in str(caught.value)
    assert read_night(ws) is None


def night(run_id: str) -> Night:
    return Night("cjm_nightly", run_id, "2026-10-05", 7, "2026-10-06T03:00:12+00:00")


def test_a_scheduled_night_in_progress_keeps_commands_out_unless_forced(ws: Settings) -> None:
    run_id = "scheduled__2026-10-05T03:00:00+00:00"
    begin_night(ws, night(run_id))
    for args in (["run", "--date", "2026-10-05"], ["build", "--date", "2026-10-05"], ["rollback"]):
        done = cjm(ws, *args)
        assert done.returncode == LOCKED, (args, done.stderr)
        assert (
            "a scheduled night is in progress: DAG run cjm_nightly "
            f"{run_id} (landing date 2026-10-05) planned build 7 at 2026-10-06 03:00:12 UTC"
        ) in done.stderr
        assert f"run cjm {args[0]} --force to go ahead" in done.stderr
    assert read_night(ws) is not None
    # Ingesting is not building: the lock alone keeps it apart from the night's tasks.
    assert cjm(ws, "ingest", "--date", "2026-10-05", "--workers", "1").returncode == 0

    done = cjm(ws, "rollback", "--force")
    assert "warning: --force: going ahead of the scheduled night" in done.stderr
    assert read_night(ws) is None
    # Past the marker, the rollback itself runs (and finds nothing published here).
    assert done.returncode == 1
    assert "publish a build first" in done.stderr


def test_a_night_overridden_with_force_can_no_longer_write(
    ws: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env_of(ws).items():
        monkeypatch.setenv(name, value)
    begin_night(ws, night("scheduled__2026-10-06T03:00:00+00:00"))

    with pytest.raises(LockError, match="its night is no longer the one in progress"):
        gate_marts({}, run_id="scheduled__2026-10-05T03:00:00+00:00")
    assert try_lock(ws) == 0  # the refusal gave the lock back


def test_a_night_planned_on_another_worker_names_it(ws: Settings) -> None:
    begin_night(ws, replace(night("scheduled__2026-10-05T03:00:00+00:00"), host="worker-7"))

    assert (
        read_night(ws)
        .describe()
        .endswith(
            "planned build 7 at 2026-10-06 03:00:12 UTC on worker-7 and has not published yet"
        )
    )
    assert sorted(p.name for p in ws.warehouse_dir.iterdir()) == [".cjm.night.json"]
