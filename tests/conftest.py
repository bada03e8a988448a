"""Shared fixtures: a generated workspace (landing, truth, lake) per test session,
and an empty workspace per test for hand-written landing files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from hypothesis import settings as hypothesis_settings

from cjm_pipeline.build import build
from cjm_pipeline.generate import generate
from cjm_pipeline.ingest import ingest
from cjm_pipeline.settings import MARTS as CONTRACT
from cjm_pipeline.settings import Settings

# Property-based tests run the same examples in every CI run ("ci"); pass
# --hypothesis-profile=explore to search much further with fresh random examples.
hypothesis_settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None)
hypothesis_settings.register_profile("explore", max_examples=2000, deadline=None)
hypothesis_settings.load_profile("ci")

SAMPLE_START = date(2026, 10, 1)
SAMPLE_DAYS = 12


def sample_dates() -> list[date]:
    return [SAMPLE_START + timedelta(days=i) for i in range(SAMPLE_DAYS)]


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """400 customers over 12 days, generated and ingested once for the session."""
    root = tmp_path_factory.mktemp("sample")
    generate(
        root, customers=400, start=SAMPLE_START, days=SAMPLE_DAYS, seed=3, progress=lambda _: None
    )
    settings = Settings(data_dir=root, salt="test-salt")
    ingest(settings, sample_dates(), progress=lambda _: None)
    return settings


@pytest.fixture(scope="session")
def truth(sample: Settings) -> pl.DataFrame:
    return pl.read_parquet(sample.truth_dir / "records" / "*.parquet")


@pytest.fixture
def workspace(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", salt="test-salt")


def land(settings: Settings, source: str, day: str, name: str, content: bytes | str) -> Path:
    """Write one landing file for a test."""
    path = settings.landing_dir / source / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def segment_call(**fields: object) -> str:
    """One Segment track call as a JSON line; a field given as None is left out."""
    base = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "m-1",
        "anonymousId": "anon-1",
        "timestamp": "2026-10-05T08:00:00.000Z",
        "context": {
            "page": {
                "url": "https://shop.example/p/9?utm_source=google&utm_medium=cpc&utm_campaign=fall",
                "path": "/p/9",
                "referrer": "https://www.google.com/",
            }
        },
        "properties": {"product_id": "sku-9", "price": 19.5},
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def lake_events(settings: Settings, source: str | None = None) -> pl.DataFrame:
    pattern = (
        settings.lake_dir / "events" / (f"source={source}" if source else "*") / "*" / "*.parquet"
    )
    return pl.read_parquet(pattern, hive_partitioning=False)


def lake_quarantine(settings: Settings, source: str) -> pl.DataFrame:
    files = list((settings.lake_dir / "quarantine" / f"source={source}").glob("*/*.parquet"))
    return pl.read_parquet(files, hive_partitioning=False) if files else pl.DataFrame()


RUN_DATE = SAMPLE_START + timedelta(days=SAMPLE_DAYS - 1)
MARTS = list(CONTRACT)  # the BI contract: one list for the code and the tests


def quiet(_: str) -> None:
    pass


JOURNEY_GAP_DAYS = 3  # short enough that journeys end and drop within the 12-day sample


@pytest.fixture(scope="session")
def built_nodes(
    sample: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, dict[str, str]]:
    """The sample lake built into its own database, full refresh, as of its last day,
    with the dbt unit tests (the suite's one run of them); dbt's status per node."""
    settings = sample.model_copy(
        update={
            "build_path": tmp_path_factory.mktemp("build") / "cjm.duckdb",
            "warehouse_path": tmp_path_factory.mktemp("warehouse") / "cjm.duckdb",
            "journey_gap_days": JOURNEY_GAP_DAYS,
        }
    )
    result = build(settings, RUN_DATE, progress=quiet, unit_tests=True)
    return settings, result.statuses


@pytest.fixture(scope="session")
def built(built_nodes: tuple[Settings, dict[str, str]]) -> Settings:
    return built_nodes[0]


def env_of(settings: Settings) -> dict[str, str]:
    """The environment of a `cjm` process (or any child) working on ``settings``'s
    data, warehouse and build database."""
    return {
        **os.environ,
        "CJM_DATA_DIR": str(settings.data_dir),
        "CJM_SALT": settings.salt,
        "CJM_WAREHOUSE_PATH": str(settings.warehouse_path),
        "CJM_BUILD_PATH": str(settings.build_path),
        "CJM_LOCK_WAIT_SECONDS": str(settings.lock_wait_seconds),
        "CJM_KEEP_SNAPSHOTS": str(settings.keep_snapshots),
    }


def damage(path: Path) -> None:
    """Overwrite a database's headers, as a failing disk or a stray write would."""
    with path.open("r+b") as handle:
        handle.write(b"\0" * 12288)


def query(settings: Settings, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(settings.build_path), read_only=True) as con:
        return con.sql(sql).pl()


# The report's browser tests drive Debian's Chromium (installed by `make chromium`, which
# `make test` runs first) through Playwright; Playwright's own browser download is not
# used. Without the background-networking flags Chromium keeps calling out at start.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests need Debian's chromium package at {CHROMIUM}: "
            "run `make chromium` (or `apt-get install -y chromium`)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Opened:
    page: Any
    url: str
    data: dict | None = None
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def open_page(browser) -> Iterator[Callable[..., Opened]]:
    """Open an HTML file in a fresh page once its script has drawn it, recording console
    errors, page errors and every request other than the file itself (refused). A page
    made of several local files (the GX Data Docs) names the folder they may come from
    (``files_under``) and the selector that says it is ready."""
    pages = []

    def opener(
        path: Path,
        files_under: Path | None = None,
        ready: str = "html[data-rendered='true']",
    ) -> Opened:
        url = path.resolve().as_uri()
        local = files_under.resolve().as_uri() + "/" if files_under else None
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        pages.append(page)
        opened = Opened(page=page, url=url)
        page.on(
            "console",
            lambda msg: (
                opened.errors.append(f"console: {msg.text}") if msg.type == "error" else None
            ),
        )
        page.on("pageerror", lambda err: opened.errors.append(f"page error: {err}"))

        def guard(route) -> None:
            asked = route.request.url
            if asked == url or (local and asked.startswith(local)):
                route.continue_()
            else:
                opened.requests.append(asked)
                route.abort()

        page.route("**/*", guard)
        page.goto(url)
        page.wait_for_selector(ready)
        return opened

    yield opener
    for page in pages:
        page.close()


# Under pytest-xdist (`make test` runs a worker per core) tests go to the workers in
# groups, each run whole by one worker: a module is a group, so its module fixtures are
# made once. Exceptions: the two tests that start a real scheduler share a group, since
# a scheduler's worker and triggerer log servers take fixed ports; and the reliability
# module, the longest, is cut in two (each half makes its own first night). Groups are
# handed out longest first, so that no long group starts last (`make test` passes
# --no-loadscope-reorder: pytest-xdist would otherwise hand out the groups with the
# most tests first, and the two scheduler tests last); the seconds are measured times
# with the suite's workers, used only for that order.
TOGETHER = {
    "test_airflow_local.py": "airflow-servers",
    "test_airflow_production.py": "airflow-servers",
}
SECOND_HALF = {
    "test_reliability.py": {
        "test_readers_see_only_complete_snapshots_while_a_night_publishes",
        "test_a_corrupted_batch_stops_the_night_before_publishing",
        "test_a_damaged_served_file_and_state_file_are_named_and_the_night_replaces_them",
        "test_an_erased_lake_partition_reaches_the_served_marts",
    }
}
GROUP_SECONDS = {
    "airflow-servers": 265,
    "test_dag.py": 210,
    "test_journeys.py": 200,
    "test_reliability.py/2": 190,
    "test_reliability.py": 170,
    "test_marketplace_journeys.py": 115,
    "test_identity.py": 55,
    "test_gate_demo.py": 50,
    "test_validate.py": 50,
    "test_sentiment.py": 50,
    "test_publish.py": 45,
    "test_pii_scan.py": 40,
    "test_recovery.py": 40,
    "test_served_contract.py": 30,
}


def xdist_group_of(item: pytest.Item) -> str:
    module = item.path.name
    if item.originalname in SECOND_HALF.get(module, ()):
        return f"{module}/2"
    return TOGETHER.get(module, module)


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist declares the mark; declared here too for a run with `-p no:xdist`.
    config.addinivalue_line("markers", "xdist_group(name): tests run on one worker")


def pytest_itemcollected(item: pytest.Item) -> None:
    # At collection, before pytest-xdist names each test after its group.
    item.add_marker(pytest.mark.xdist_group(xdist_group_of(item)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Stable: within a group, tests keep the order they are written in.
    items.sort(key=lambda item: -GROUP_SECONDS.get(xdist_group_of(item), 0))
