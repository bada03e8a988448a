"""`make airflow`: Airflow's standalone mode sized to the machine, and stopped whole by
Ctrl-C (SIGINT to the supervisor) or by `make airflow-stop`, leaving no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(home: Path) -> tuple[subprocess.Popen, dict[str, str], int]:
    port = free_port()
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__PORT": str(port),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "cjm_pipeline.airflow_local", "start"],
        env=env,
        stdout=(home / "out.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 240
    while True:
        assert supervisor.poll() is None, (home / "out.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5
            ) as answer:
                # The scheduler heartbeats once its executor (and its workers) started.
                health = json.load(answer)
                if (health.get("scheduler") or {}).get("status") == "healthy":
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, (home / "out.log").read_text()[-3000:]
        time.sleep(2)
    return supervisor, env, port


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def alive(processes: list[psutil.Process]) -> list[str]:
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(p.cmdline()[:3]))
        except psutil.NoSuchProcess:
            pass
    return left


def test_standalone_is_sized_to_the_machine_and_stops_whole(tmp_path: Path) -> None:
    # Ctrl-C: SIGINT to the supervisor.
    supervisor, env, port = start(tmp_path / "first")
    processes = tree(supervisor.pid)
    try:
        names = alive(processes)  # a child just ended (a zombie) has no command line
        # Four LocalExecutor workers per core, not 32.
        workers = [n for n in names if n.startswith("airflow worker")]
        assert len(workers) == 4 * (os.cpu_count() or 1), names
        assert any("scheduler" in n for n in names) and any("api" in n for n in names), names
    finally:
        supervisor.send_signal(signal.SIGINT)
    assert supervisor.wait(timeout=90) == 0
    assert alive(processes) == []
    assert not (tmp_path / "first" / "cjm-standalone.pid").exists()

    # `make airflow-stop`: the stop command, from another process.
    supervisor, env, port = start(tmp_path / "second")
    processes = tree(supervisor.pid)
    pid_file = tmp_path / "second" / "cjm-standalone.pid"
    assert pid_file.exists()
    stopped = subprocess.run(
        [sys.executable, "-m", "cjm_pipeline.airflow_local", "stop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert stopped.returncode == 0, stopped.stderr
    assert supervisor.wait(timeout=30) == 0
    assert alive(processes) == []
    assert not pid_file.exists()
    # Nothing listens on its port any more.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
