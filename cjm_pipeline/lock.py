"""One night at a time: the night lock, and the marker of a scheduled night in progress.

Every command and task that writes the lake, the build database or the served database
(`cjm run`, `cjm build`, `cjm ingest`, `cjm rollback`, publish, and the DAG's ingest,
plan, dbt, gate and publish tasks) holds the night lock while it works: an
``fcntl.flock`` on ``<warehouse dir>/.cjm.lock``. The kernel drops it when the process
ends, however it ends (a SIGKILL, an out-of-memory kill, a lost worker), so a killed
night never leaves a lock behind to clean up. The lock file records its holder
(command, pid, host, since when) for the message of the one that waits or refuses.
The lock is re-entrant within a process: publish inside `cjm run` takes the run's own
lock again instead of waiting for itself.

A night of the Airflow DAG spans many task processes, each taking and dropping the
lock, so between two tasks the lock alone cannot keep a command out. The marker
``<warehouse dir>/.cjm.night.json`` says that a scheduled night is in progress: the
DAG's ``plan_build`` writes it under the lock, its ``publish`` removes it. While it is
there `cjm run`, `cjm build` and `cjm rollback` refuse and name the DAG run, unless
given ``--force`` (for a night that was abandoned); the DAG's later tasks check that it
still names their own run, so a night overridden that way can no longer write.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cjm_pipeline.files import atomic_write_text
from cjm_pipeline.settings import Settings

LOCK_FILE = ".cjm.lock"
NIGHT_FILE = ".cjm.night.json"
POLL_SECONDS = 0.2
COMMAND_LINE_HINT = "wait for it to finish, or pass --wait"


class LockError(RuntimeError):
    """Another process holds the night lock, or a scheduled night is in progress."""


@dataclass(frozen=True)
class Holder:
    """Who holds the night lock."""

    command: str
    pid: int
    host: str
    since: datetime

    def describe(self) -> str:
        where = f"pid {self.pid}"
        if self.host != socket.gethostname():
            where += f" on {self.host}"
        when = self.since.astimezone(UTC)
        shown = f"{when:%H:%M:%S}" if when.date() == datetime.now(UTC).date() else f"{when:%F %T}"
        return f"{self.command} ({where}) has held the night lock since {shown} UTC"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "since": self.since.isoformat()})

    @classmethod
    def from_json(cls, text: str) -> Holder:
        data = json.loads(text)
        return cls(
            str(data["command"]),
            int(data["pid"]),
            str(data["host"]),
            datetime.fromisoformat(data["since"]),
        )


@dataclass
class _Held:
    fd: int
    depth: int
    holder: Holder


# The locks this process holds, by lock file: re-entrance is counted, not re-locked
# (a second flock on a new descriptor of the same file would wait for the first).
_HELD: dict[str, _Held] = {}
_GUARD = threading.Lock()


def lock_path(settings: Settings) -> Path:
    return settings.warehouse_dir / LOCK_FILE


def _key(path: Path) -> str:
    return os.path.join(os.path.realpath(path.parent), path.name)


def holder_of(settings: Settings) -> Holder | None:
    """The recorded holder of the night lock, or None when none is recorded."""
    try:
        return Holder.from_json(lock_path(settings).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _describe_other(settings: Settings) -> str:
    holder = holder_of(settings)
    if holder is None:
        return f"another process holds the night lock {lock_path(settings)}"
    return holder.describe()


def acquire(
    settings: Settings,
    command: str,
    wait: float | None = 0,
    progress: Callable[[str], None] = print,
    hint: str = COMMAND_LINE_HINT,
) -> Holder:
    """Take the night lock for ``command`` (or once more, if this process holds it).

    ``wait`` is how long to wait for another holder, in seconds (None: as long as it
    takes); past it, raises ``LockError`` naming the holder, followed by ``hint``.
    Waiting is announced once through ``progress``. Pair every call with ``release``.
    """
    path = lock_path(settings)
    key = _key(path)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            held.depth += 1
            return held.holder
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_CLOEXEC: a child that outlives its parent (a dbt process) must not keep the lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _wait_for_lock(fd, settings, wait, progress, hint)
        holder = Holder(command, os.getpid(), socket.gethostname(), datetime.now(UTC))
        os.ftruncate(fd, 0)
        os.pwrite(fd, (holder.to_json() + "\n").encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    with _GUARD:
        _HELD[key] = _Held(fd, 1, holder)
    return holder


def _wait_for_lock(
    fd: int,
    settings: Settings,
    wait: float | None,
    progress: Callable[[str], None],
    hint: str,
) -> None:
    began = time.monotonic()
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if announced:
                progress(f"took the night lock after {time.monotonic() - began:.0f} s")
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - began
        if wait is not None and waited >= wait:
            after = f" (waited {waited:.0f} s)" if wait else ""
            raise LockError(f"{_describe_other(settings)}{after}: {hint}")
        if not announced:
            progress(f"waiting for the night lock: {_describe_other(settings)}")
            announced = True
        time.sleep(POLL_SECONDS)


def release(settings: Settings) -> None:
    """Give back one ``acquire``; the lock is dropped with the last one."""
    key = _key(lock_path(settings))
    with _GUARD:
        held = _HELD.get(key)
        if held is None:
            return
        held.depth -= 1
        if held.depth > 0:
            return
        del _HELD[key]
    try:
        os.ftruncate(held.fd, 0)
    finally:
        os.close(held.fd)  # closing the only descriptor drops the flock


@contextmanager
def night_lock(
    settings: Settings,
    command: str,
    wait: float | None = 0,
    progress: Callable[[str], None] = print,
    hint: str = COMMAND_LINE_HINT,
) -> Iterator[Holder]:
    """Hold the night lock for the block (see ``acquire``)."""
    holder = acquire(settings, command, wait, progress, hint)
    try:
        yield holder
    finally:
        release(settings)


# The scheduler's night in progress --------------------------------------------------------


@dataclass
class Night:
    """A night of the DAG between its plan and its publish."""

    dag_id: str
    run_id: str
    landing_date: str
    build_id: int
    planned_at: str
    host: str = field(default_factory=socket.gethostname)
    # What the plan saw of the lake (see build.lake_inventory): recorded at publish.
    lake: dict[str, list[object]] = field(default_factory=dict)

    def describe(self) -> str:
        planned = self.planned_at[:19].replace("T", " ")
        # Tasks of one night may run on several workers: say where it was planned.
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return (
            f"DAG run {self.dag_id} {self.run_id} (landing date {self.landing_date}) planned "
            f"build {self.build_id} at {planned} UTC{where} and has not published yet"
        )


def night_path(settings: Settings) -> Path:
    return settings.warehouse_dir / NIGHT_FILE


def read_night(settings: Settings) -> Night | None:
    """The scheduled night in progress, or None. A marker that cannot be read still
    means a night is in progress (of an unknown run)."""
    path = night_path(settings)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return Night(**json.loads(text))
    except (ValueError, TypeError) as exc:
        return Night("?", f"(unreadable marker {path}: {exc})", "?", 0, "?")


def begin_night(settings: Settings, night: Night) -> None:
    """Record the scheduled night (the caller holds the night lock)."""
    atomic_write_text(night_path(settings), json.dumps(asdict(night), indent=1) + "\n")


def end_night(settings: Settings) -> None:
    night_path(settings).unlink(missing_ok=True)


def refuse_during_night(
    settings: Settings, command: str, force: bool, progress: Callable[[str], None] = print
) -> None:
    """Refuse ``command`` while a scheduled night is in progress, unless forced (then the
    night's marker is removed: that DAG run can no longer write)."""
    night = read_night(settings)
    if night is None:
        return
    if not force:
        raise LockError(
            f"a scheduled night is in progress: {night.describe()}. Let it finish (or clear "
            f"its failed task in Airflow); if that DAG run was abandoned, run {command} "
            "--force to go ahead without it"
        )
    end_night(settings)
    progress(
        f"warning: --force: going ahead of the scheduled night ({night.describe()}); that DAG "
        "run can no longer write: clear its plan_build task to plan it again"
    )


def require_night(settings: Settings, run_id: str, task: str) -> Night:
    """The night of DAG run ``run_id``, or ``LockError`` when it is not the one in
    progress (overridden with --force, or replaced by another run)."""
    night = read_night(settings)
    if night is not None and night.run_id == run_id:
        return night
    now = "no scheduled night is in progress" if night is None else night.describe()
    raise LockError(
        f"{task} of DAG run {run_id} cannot write: its night is no longer the one in progress "
        f"({now}); it was overridden (`--force`) or replaced. Clear plan_build of this run "
        "to plan the night again"
    )
