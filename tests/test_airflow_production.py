"""One night under a real scheduler, not `airflow dags test`: the documented production
setup (PostgreSQL metadata, LocalExecutor, scheduler, DAG processor, API server and
triggerer as separate processes) started, a night triggered and run to success, and
everything stopped, leaving no process behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import psutil
import psycopg2

from cjm_pipeline.airflow_production import Deployment
from cjm_pipeline.build import write_manifest
from cjm_pipeline.generate import generate
from cjm_pipeline.settings import PROJECT_ROOT, Settings
from tests.conftest import quiet

BIN = Path(sys.executable).parent
DAYS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_night_under_the_scheduler_on_postgres(tmp_path: Path) -> None:
    """The night the scheduler creates when the DAG is first unpaused (catchup off: the
    latest complete interval) processes the sample's last day.

    The cron hour is put twelve hours from now, so the latest complete interval cannot
    change while the test runs (with the default 03:00, a run started after midnight
    UTC would be handed the interval of the day before yesterday).
    """
    now = datetime.now(UTC)
    hour = (now.hour + 12) % 24
    end = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if end > now:
        end -= timedelta(days=1)
    last = (end - timedelta(days=1)).date()
    start = last - timedelta(days=DAYS - 1)
    settings = Settings(
        data_dir=tmp_path / "data",
        salt="test-salt",
        warehouse_path=tmp_path / "warehouse" / "cjm.duckdb",
        build_path=tmp_path / "warehouse" / "build" / "cjm.duckdb",
    )
    generate(settings.data_dir, customers=120, start=start, days=DAYS, seed=7, progress=quiet)
    write_manifest(settings, progress=quiet)
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")},
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "CJM_DATA_DIR": str(settings.data_dir),
        "CJM_SALT": settings.salt,
        "CJM_WAREHOUSE_PATH": str(settings.warehouse_path),
        "CJM_BUILD_PATH": str(settings.build_path),
        "CJM_SCHEDULE": f"0 {hour} * * *",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    # PostgreSQL's own user must reach its folder: not under pytest's private one.
    pg_root = Path(tempfile.mkdtemp(prefix="cjm-pg-"))
    pg_root.chmod(0o755)
    deployment = Deployment(tmp_path / "airflow", free_port(), free_port(), pg_root / "cluster")
    seen: list[psutil.Process] = []
    before_log = tmp_path / "before.log"
    before = None
    try:
        # The nights before, through `cjm run`, while the deployment starts; the DAG
        # stays paused until they are done. (Their builds rewrite the manifest the DAG
        # processor reads: a parse that meets it half written fails and is made again
        # at the processor's next pass, which the wait for the DAG allows for.)
        with before_log.open("w") as log:
            before = subprocess.Popen(
                [str(BIN / "cjm"), "run", "--start", str(start), "--end", str(last - timedelta(1))],
                env=base,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deployment.start(base)
        for child in deployment.processes:
            root = psutil.Process(child.pid)
            seen += [root, *root.children(recursive=True)]
        # The DAG is parsed by the DAG processor, then unpaused: the scheduler makes the
        # run of the latest complete interval, whose logical date is the last landing date.
        deadline = time.monotonic() + 300
        while "cjm_nightly" not in deployment.run("dags", "list", "-o", "json"):
            assert time.monotonic() < deadline, "the DAG processor never listed cjm_nightly"
            time.sleep(3)
        assert before.wait(timeout=900) == 0, before_log.read_text()[-4000:]
        deployment.run("dags", "unpause", "cjm_nightly")
        deadline = time.monotonic() + 1800
        runs: list[tuple] = []
        with psycopg2.connect(deployment.server.url.replace("+psycopg2", "")) as meta:
            meta.autocommit = True
            while not runs or runs[0][1] not in ("success", "failed"):
                assert time.monotonic() < deadline, "the night did not finish in 30 minutes"
                time.sleep(3)
                with meta.cursor() as cursor:
                    cursor.execute(
                        "select run_type, state, logical_date from dag_run "
                        "where dag_id = 'cjm_nightly' order by id"
                    )
                    runs = cursor.fetchall()
            with meta.cursor() as cursor:
                cursor.execute(
                    "select task_id, state from task_instance where dag_id = 'cjm_nightly'"
                )
                states = dict(cursor.fetchall())
        run_type, state, logical = runs[0]
        assert (run_type, state) == ("scheduled", "success"), (runs, states)
        assert logical.date() == last
        # Every task of the night succeeded, a task per seed and model among them.
        assert set(states.values()) == {"success"}, states
        nodes = [t for t in states if t.endswith(("_run", "_seed"))]
        assert len(nodes) == len(list((PROJECT_ROOT / "models").rglob("*.csv"))) + len(
            [
                m
                for ext in ("sql", "py")
                for m in (PROJECT_ROOT / "models").rglob(f"*.{ext}")
                if "macros" not in m.parts
            ]
        )
    finally:
        if before is not None and before.poll() is None:
            before.kill()
            before.wait()
        deployment.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        build_id, run_date = con.execute("select build_id, run_date from cjm_publish").fetchall()[0]
    assert (build_id, run_date) == (2, last)
    # Every process the deployment started has ended, PostgreSQL too.
    assert [p.pid for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(pg_root) in " ".join(p.info["cmdline"] or [])
    ]
