"""A PostgreSQL server of its own for Airflow's metadata: Debian's package, a cluster in a
folder, started and stopped by the production setup and its test.

Airflow's documentation says SQLite is for trying it out; the documented production
setup runs the metadata on PostgreSQL with the LocalExecutor. This module makes that
setup reproducible on one machine: ``initdb`` a cluster in ``<root>/pgdata`` (once),
``pg_ctl start`` it on 127.0.0.1 and a port, create the ``airflow`` database, and give
back its SQLAlchemy URL; ``stop`` ends it (``pg_ctl stop -m fast``). PostgreSQL refuses
to run as root: as root, every command runs as Debian's ``postgres`` user, which owns
the folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEBIAN_BIN = Path("/usr/lib/postgresql")
DATABASE = "airflow"
USER = "airflow"


class PostgresError(RuntimeError):
    """PostgreSQL is not installed, or its server would not start."""


def bin_dir() -> Path:
    """The newest server binaries of Debian's postgresql package."""
    versions = sorted(
        (p for p in DEBIAN_BIN.glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise PostgresError(
            "PostgreSQL is not installed: `apt-get install -y postgresql` (Debian's package)"
        )
    return versions[-1]


@dataclass(frozen=True)
class Server:
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{DATABASE}"


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresError("running as root needs runuser to start PostgreSQL as 'postgres'")
    return [runuser, "-u", "postgres", "--", *command]


def _run(command: list[str]) -> str:
    done = subprocess.run(
        _as_owner(command), capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        raise PostgresError(f"{' '.join(command[:2])} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def start(root: Path, port: int) -> Server:
    """Start (creating it the first time) the cluster in ``root``; return the server."""
    server = Server(root, port)
    pg = bin_dir()
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    if not (server.data / "PG_VERSION").exists():
        _run(
            [
                str(pg / "initdb"),
                "-D",
                str(server.data),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ]
        )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    _run(
        [
            str(pg / "pg_ctl"),
            "-D",
            str(server.data),
            "-o",
            options,
            "-l",
            str(root / "postgres.log"),
            "-w",
            "start",
        ]
    )
    exists = _run(
        [
            str(pg / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            USER,
            "-d",
            "postgres",
            "-tAc",
            f"select 1 from pg_database where datname = '{DATABASE}'",
        ]
    )
    if not exists.strip():
        _run(
            [
                str(pg / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                USER,
                DATABASE,
            ]
        )
    return server


def stop(server: Server) -> None:
    """Stop the server (fast shutdown: open sessions are ended)."""
    if (server.data / "postmaster.pid").exists():
        _run([str(bin_dir() / "pg_ctl"), "-D", str(server.data), "-m", "fast", "-w", "stop"])


@contextmanager
def running(root: Path, port: int) -> Iterator[Server]:
    server = start(root, port)
    try:
        yield server
    finally:
        stop(server)
