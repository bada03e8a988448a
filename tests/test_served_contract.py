"""The served database is a contract with BI users: the schema a BI tool opens by
default (main) holds exactly the tables the README lists, with exactly the columns the
marts' YAML documents, in that order; staging, intermediate and the rule seeds sit in
schemas of their own; the Parquet marts are the same tables. The expected lists are
read from the documentation and the project's files, never from the code under test."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
import sqlalchemy
import yaml
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from cjm_pipeline.build import lake_inventory, restore_build
from cjm_pipeline.cli import app
from cjm_pipeline.publish import publish, read_inventory
from cjm_pipeline.settings import MARTS, PROJECT_ROOT, Settings
from tests.conftest import RUN_DATE, quiet

README = PROJECT_ROOT / "README.md"
MODELS = PROJECT_ROOT / "models"


def documented_tables() -> dict[str, str]:
    """The README's list of served tables: name -> the row's description."""
    text = README.read_text()
    section = text[
        text.index("<!-- served-tables:start -->") : text.index("<!-- served-tables:end -->")
    ]
    rows = re.findall(r"^\| `([a-z_]+)` \| (.+) \|$", section, flags=re.MULTILINE)
    assert rows, "the README lists no served table"
    return dict(rows)


def documented_columns() -> dict[str, list[str]]:
    """Every mart's columns, in order, as models/marts/**/*.yml documents them; and
    cjm_publish's, as the README's row names them."""
    columns: dict[str, list[str]] = {}
    for path in sorted((MODELS / "marts").rglob("*.yml")):
        for model in yaml.safe_load(path.read_text()).get("models") or []:
            columns[model["name"]] = [column["name"] for column in model.get("columns") or []]
    columns["cjm_publish"] = re.findall(r"`([a-z_]+)`", documented_tables()["cjm_publish"])
    return columns


def project_relations(folder: str, suffixes: tuple[str, ...]) -> set[str]:
    return {path.stem for path in (MODELS / folder).rglob("*") if path.suffix in suffixes}


def relations(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """schema -> the tables and views in it."""
    found: dict[str, set[str]] = {}
    for schema, name in con.execute(
        "select schema_name, table_name from duckdb_tables() "
        "where database_name = current_database() union all "
        "select schema_name, view_name from duckdb_views() "
        "where database_name = current_database() and not internal"
    ).fetchall():
        found.setdefault(schema, set()).add(name)
    return found


def own_copy(built: Settings, root: Path) -> Settings:
    """Settings with a copy of the built sample as their build database."""
    build = root / "build" / "cjm.duckdb"
    build.parent.mkdir()
    shutil.copyfile(built.build_path, build)
    return built.model_copy(
        update={"build_path": build, "warehouse_path": root / "warehouse" / "cjm.duckdb"}
    )


@pytest.fixture(scope="module")
def served(built: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The built sample published as a night publishes it, with its lake inventory."""
    settings = own_copy(built, tmp_path_factory.mktemp("served"))
    lake = {key: list(value) for key, value in lake_inventory(settings, RUN_DATE).items()}
    publish(settings, RUN_DATE, 1, progress=quiet, lake=lake)
    return settings


def test_the_documented_tables_are_the_marts_publish_requires() -> None:
    tables = documented_tables()
    assert set(tables) == {*MARTS, "cjm_publish"}
    assert set(documented_columns()) == set(tables)
    assert all(documented_columns().values())


def test_main_holds_exactly_the_documented_tables_and_columns(served: Settings) -> None:
    with duckdb.connect(str(served.warehouse_path), read_only=True) as con:
        assert con.execute("select current_schema()").fetchall() == [("main",)]
        found: dict[str, list[str]] = {}
        for table, column in con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_catalog = current_database() and table_schema = 'main' "
            "order by table_name, ordinal_position"
        ).fetchall():
            found.setdefault(table, []).append(column)
        views = con.execute(
            "select count(*) from duckdb_views() where database_name = current_database() "
            "and schema_name = 'main' and not internal"
        ).fetchall()
    assert views == [(0,)]
    assert found == documented_columns()


def test_staging_intermediate_and_rules_have_schemas_of_their_own(served: Settings) -> None:
    with duckdb.connect(str(served.warehouse_path), read_only=True) as con:
        found = relations(con)
        # The lake inventory moved out of main with the staging views.
        assert read_inventory(con) == {
            key: list(value) for key, value in lake_inventory(served, RUN_DATE).items()
        }
    assert found == {
        "main": set(documented_tables()),
        "staging": project_relations("staging", (".sql",)) | {"cjm_lake_inventory"},
        "intermediate": project_relations("intermediate", (".sql", ".py")),
        "rules": project_relations("seeds", (".csv",)),
    }


def test_the_parquet_marts_are_the_served_tables(served: Settings) -> None:
    current = Path(os.path.realpath(served.parquet_dir / "current"))
    files = {path.stem: path for path in current.glob("*.parquet")}
    assert set(files) == set(documented_tables())
    columns = documented_columns()
    with duckdb.connect(str(served.warehouse_path), read_only=True) as con:
        for table, path in files.items():
            frame = pl.read_parquet(path)
            assert frame.columns == columns[table], table
            rows = con.execute(f"select count(*) from {table}").fetchall()[0][0]
            assert frame.height == rows, table


def test_a_bi_tool_on_the_read_only_uri_opens_on_the_served_tables(served: Settings) -> None:
    """What Superset's dataset picker and SQL Lab do through duckdb-engine: list the
    schemas (each layer is one of its own), list the default schema's tables, then query
    one; the answer equals the Parquet mart's."""
    engine = sqlalchemy.create_engine(
        f"duckdb:///{served.warehouse_path}?access_mode=read_only", poolclass=NullPool
    )
    try:
        inspector = sqlalchemy.inspect(engine)
        assert inspector.default_schema_name == "main"
        database = served.warehouse_path.stem
        assert {name for name in inspector.get_schema_names() if name.startswith(database)} == {
            f"{database}.{schema}" for schema in ("main", "staging", "intermediate", "rules")
        }
        assert set(inspector.get_table_names(schema="main")) == set(documented_tables())
        assert inspector.get_view_names(schema="main") == []
        with engine.connect() as connection:
            entered = dict(
                connection.execute(
                    sqlalchemy.text(
                        "select stage, sum(journeys_entered) from agg_stage_funnel group by stage"
                    )
                ).all()
            )
    finally:
        engine.dispose()
    current = Path(os.path.realpath(served.parquet_dir / "current"))
    expected = (
        pl.read_parquet(current / "agg_stage_funnel.parquet")
        .group_by("stage")
        .agg(pl.col("journeys_entered").sum())
    )
    assert entered == dict(expected.iter_rows())
    assert sum(entered.values()) > 0


def test_a_build_of_the_earlier_layout_is_tidied_at_its_publish(
    built: Settings, tmp_path: Path
) -> None:
    """A build database from before the layers had schemas keeps its old relations in
    main; the first publish after the (full-refresh) build drops them, names them, and
    leaves the marts and the layers whole; a table that is no layer's stays."""
    settings = own_copy(built, tmp_path)
    build = settings.build_path
    with duckdb.connect(str(build)) as con:
        events = con.execute("select count(*) from intermediate.int_events").fetchall()
        con.execute("create table main.int_events as select * from intermediate.int_events")
        con.execute("create table main.stages as select * from rules.stages")
        con.execute("create view main.stg_web__events as select 1 as stale")
        con.execute("create table main.analyst_notes as select 'kept' as note")
    said: list[str] = []

    publish(settings, RUN_DATE, 1, progress=said.append)

    dropped = [line for line in said if "earlier layout" in line]
    assert len(dropped) == 1 and dropped[0].endswith("stg_web__events, int_events, stages")
    for database in (build, settings.warehouse_path):
        with duckdb.connect(str(database), read_only=True) as con:
            found = relations(con)
            assert found["main"] == {*MARTS, "analyst_notes"} | (
                {"cjm_publish"} if database != build else set()
            )
            assert con.execute("select count(*) from intermediate.int_events").fetchall() == events
            assert "stages" in found["rules"] and "stg_web__events" in found["staging"]


def test_a_snapshot_of_the_earlier_layout_still_gives_its_lake_back(
    built: Settings, tmp_path: Path
) -> None:
    """Snapshots published before the inventory moved to staging have it in main: a
    rollback to one still restores the lake it read, and leaves no inventory behind."""
    snapshot = tmp_path / "snapshot.duckdb"
    shutil.copyfile(built.build_path, snapshot)
    with duckdb.connect(str(snapshot)) as con:
        con.execute(
            "create table cjm_publish as select 4::bigint as build_id, "
            "date '2026-10-12' as run_date, 'f0' as fingerprint"
        )
        con.execute(
            "create table main.cjm_lake_inventory as select 'web/2026-10-01' as partition, "
            "10::bigint as bytes, 2::bigint as rows, 'abc' as digest"
        )
    settings = built.model_copy(update={"build_path": tmp_path / "build" / "cjm.duckdb"})
    settings.build_path.parent.mkdir()

    state = restore_build(settings, snapshot)

    assert (state.build_id, state.lake) == (4, {"web/2026-10-01": [10, 2, "abc"]})
    with duckdb.connect(str(settings.build_path), read_only=True) as con:
        assert "cjm_lake_inventory" not in relations(con)["main"]
        assert "cjm_publish" not in relations(con)["main"]


def test_a_night_published_before_a_mart_was_added_is_named_not_called_damaged(
    built: Settings, tmp_path: Path
) -> None:
    """Between an upgrade and its first night, the served night lacks the new marts:
    the report says so and what brings them, instead of calling the file damaged."""
    settings = own_copy(built, tmp_path)
    publish(settings, RUN_DATE, 1, progress=quiet)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("drop table dim_personas")
    env = {
        "CJM_DATA_DIR": str(settings.data_dir),
        "CJM_WAREHOUSE_PATH": str(settings.warehouse_path),
        "CJM_BUILD_PATH": str(settings.build_path),
    }

    done = CliRunner().invoke(app, ["report"], env=env)

    assert done.exit_code == 1
    assert "the served night was published without a table this version reads" in done.output
    assert "dim_personas" in done.output and "the next `cjm run`" in done.output
    assert "damaged" not in done.output and "Traceback" not in done.output
