"""`make airflow` and `make airflow-stop`: Airflow's standalone mode for trying the DAG
on one machine, sized to it and stopped whole.

`airflow standalone` starts a scheduler, a DAG processor, an API server and a triggerer,
and its LocalExecutor starts one worker per slot of ``core.parallelism`` (32 by
default: about 6 GB on a two-core machine, for nights whose DuckDB tasks run one at a
time anyway). Here parallelism is four slots per core, the API server has one worker
and the DAG processor one parsing process, unless the environment sets them; the
project's Airflow local settings (airflow_settings/) are put on PYTHONPATH.

Stopped with SIGTERM, standalone leaves its scheduler and workers running. So it runs
in a process group of its own under this supervisor: Ctrl-C, SIGTERM or SIGHUP to the
supervisor, or `make airflow-stop` (``stop``, through the pid file in AIRFLOW_HOME),
ends every process of the group and every descendant that left it, with a grace period
before SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import psutil

PID_FILE = "cjm-standalone.pid"
# Executor slots per core. Most of a night's task instances wait rather than compute
# (the dbt node tasks wait for the producer's results, the producer for its dbt child),
# and the work that computes is bounded by the DAG itself (six ingest tasks, one DuckDB
# writer through the pool): one slot per core left the node tasks queued behind the
# producer until its build ended.
SLOTS_PER_CORE = 4
LOCAL_SETTINGS = Path(__file__).resolve().parent.parent / "airflow_settings"
GRACE_SECONDS = 30


def sized_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with Airflow's process counts sized to this machine, where the
    environment does not set them already."""
    env = dict(os.environ if environ is None else environ)
    cores = os.cpu_count() or 1
    env.setdefault("AIRFLOW__CORE__PARALLELISM", str(cores * SLOTS_PER_CORE))
    env.setdefault("AIRFLOW__API__WORKERS", "1")
    env.setdefault("AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES", "1")
    # The project's Airflow local settings (airflow_settings/airflow_local_settings.py).
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(LOCAL_SETTINGS) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(LOCAL_SETTINGS), *paths])
    return env


def _home(env: dict[str, str]) -> Path:
    return Path(env.get("AIRFLOW_HOME", Path.home() / "airflow"))


def _tree(pid: int) -> list[psutil.Process]:
    """A process and its descendants (those alive now)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_tree(pid: int, grace: float = GRACE_SECONDS) -> int:
    """End the process group led by ``pid`` and every descendant of ``pid``: SIGTERM,
    then SIGKILL to whatever is left after ``grace`` seconds. Returns how many processes
    had to be killed."""
    processes = _tree(pid)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            process.terminate()
    # Workers started while stopping are found again before the deadline.
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        processes = [p for p in {*processes, *_tree(pid)} if _alive(p)]
        if not processes:
            return 0
        time.sleep(0.2)
    left = [p for p in processes if _alive(p)]
    for process in left:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    psutil.wait_procs(left, timeout=5)
    return len(left)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start(argv: list[str] | None = None) -> int:
    """Run ``airflow standalone`` until it exits or this process is told to stop."""
    env = sized_environment()
    pid_file = _home(env) / PID_FILE
    if pid_file.exists():
        old = int(pid_file.read_text().split()[0])
        if psutil.pid_exists(old) and _alive(psutil.Process(old)):
            print(
                f"error: Airflow standalone is already running (process {old}); "
                "stop it with `make airflow-stop`",
                file=sys.stderr,
            )
            return 1
    airflow = Path(sys.executable).with_name("airflow")
    print(
        f"airflow standalone: parallelism {env['AIRFLOW__CORE__PARALLELISM']}, "
        f"API workers {env['AIRFLOW__API__WORKERS']}; Ctrl-C or `make airflow-stop` stops it"
    )
    child = subprocess.Popen(
        [str(airflow), "standalone", *(argv or [])], env=env, start_new_session=True
    )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{child.pid} {os.getpid()}\n")
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print(f"\nstopping Airflow ({signal.Signals(signum).name})", file=sys.stderr)
        killed = stop_tree(child.pid)
        if killed:
            print(f"killed {killed} process(es) that did not stop in time", file=sys.stderr)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        code = child.wait()
    finally:
        # Standalone may exit leaving workers behind: none outlives the supervisor.
        stop_tree(child.pid, grace=5)
        pid_file.unlink(missing_ok=True)
    return 0 if stopping else code


def stop() -> int:
    """Stop the standalone Airflow started by ``start`` for this AIRFLOW_HOME."""
    pid_file = _home(dict(os.environ)) / PID_FILE
    if not pid_file.exists():
        print("Airflow standalone is not running (no pid file)")
        return 0
    child, supervisor = (int(x) for x in pid_file.read_text().split()[:2])
    if psutil.pid_exists(supervisor):
        # The supervisor stops the tree and removes its pid file.
        os.kill(supervisor, signal.SIGTERM)
        with suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
            psutil.Process(supervisor).wait(timeout=GRACE_SECONDS + 15)
    stop_tree(child, grace=5)
    pid_file.unlink(missing_ok=True)
    print("Airflow standalone stopped")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "start":
        sys.exit(start(sys.argv[2:]))
    if command == "stop":
        sys.exit(stop())
    print("usage: python -m cjm_pipeline.airflow_local [start|stop]", file=sys.stderr)
    sys.exit(2)
