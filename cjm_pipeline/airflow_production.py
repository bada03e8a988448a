"""The documented production setup, on one machine: Airflow's metadata on PostgreSQL
(Debian's package, a cluster of its own), the LocalExecutor, and the scheduler, the DAG
processor, the API server and the triggerer as separate processes, sized to the machine,
started and stopped as one.

``Deployment.start`` starts PostgreSQL, migrates the metadata, sets the one-slot pool
and starts the four Airflow processes in one process group; ``Deployment.stop`` ends
every process of that group and every descendant, then PostgreSQL. The API server serves
the task runners' execution API too, so every process shares one JWT secret (kept in
AIRFLOW_HOME, created once).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cjm_pipeline import postgres_local
from cjm_pipeline.airflow_local import sized_environment, stop_tree

SERVICES = ("scheduler", "dag-processor", "api-server", "triggerer")


@dataclass
class Deployment:
    home: Path
    api_port: int
    pg_port: int
    # Where the PostgreSQL cluster lives: its user ('postgres' when run as root) must be
    # able to reach it, so by default beside AIRFLOW_HOME, and a test names a folder of
    # its own outside its private temporary folder.
    pg_root: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    server: postgres_local.Server | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = sized_environment(dict(os.environ if base is None else base))
        secret_file = self.home / "jwt_secret"
        if not secret_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(secrets.token_urlsafe(64))
            secret_file.chmod(0o600)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.server.url if self.server else "",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                    f"http://127.0.0.1:{self.api_port}/execution/"
                ),
                "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text().strip(),
            }
        )
        env.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
        env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        return env

    def run(self, *args: str, timeout: int = 300) -> str:
        done = subprocess.run(
            [self.airflow, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {done.returncode}: {done.stderr[-3000:]}"
            )
        return done.stdout

    def start(self, base_env: dict[str, str] | None = None) -> None:
        self.server = postgres_local.start(self.pg_root or self.home / "postgres", self.pg_port)
        self.env = self.environment(base_env)
        self.run("db", "migrate", timeout=600)
        self.run("pools", "set", "cjm_duckdb", "1", "DuckDB allows one writer per file")
        logs = self.home / "service-logs"
        logs.mkdir(parents=True, exist_ok=True)
        group = None
        for service in SERVICES:
            child = subprocess.Popen(
                [self.airflow, service],
                env=self.env,
                stdout=(logs / f"{service}.log").open("w"),
                stderr=subprocess.STDOUT,
                process_group=0 if group is None else group,
            )
            group = group or child.pid
            self.processes.append(child)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        health: dict = {}
        while time.monotonic() < deadline:
            for child in self.processes:
                if child.poll() is not None:
                    raise RuntimeError(f"{child.args[1]} exited {child.returncode}")
            try:
                url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
                with urllib.request.urlopen(url, timeout=5) as answer:
                    health = json.load(answer)
                if all(
                    (health.get(part) or {}).get("status") == "healthy"
                    for part in ("metadatabase", "scheduler", "dag_processor")
                ):
                    return health
            except OSError:
                pass
            time.sleep(2)
        raise RuntimeError(f"Airflow did not become healthy in {timeout:.0f} s: {health}")

    def stop(self) -> None:
        for child in self.processes:
            stop_tree(child.pid, grace=30)
            child.wait(timeout=10)
        self.processes.clear()
        if self.server is not None:
            postgres_local.stop(self.server)
