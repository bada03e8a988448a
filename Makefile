# Set-up is part of every target: the first run creates .venv from uv.lock.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
RUN := $(VENV)/bin

DEMO_CUSTOMERS ?= 3000
DEMO_START ?= 2026-08-01
DEMO_DAYS ?= 90
DEMO_END ?= $(shell $(PYTHON) -c "import datetime as d; print(d.date.fromisoformat('$(DEMO_START)') + d.timedelta(days=$(DEMO_DAYS) - 1))")

# Airflow runs from a project-local home with a SQLite metadata database.
AIRFLOW_HOME ?= $(CURDIR)/.airflow
# Cosmos' usage reporting is off (AIRFLOW_COSMOS_TELEMETRY=True turns it on).
AIRFLOW_COSMOS_TELEMETRY ?= False
AIRFLOW_ENV := AIRFLOW_HOME=$(AIRFLOW_HOME) AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=120 \
	AIRFLOW__COSMOS__ENABLE_TELEMETRY=$(AIRFLOW_COSMOS_TELEMETRY)

.PHONY: install demo test lint format bench bench-ingest bench-identity bench-airflow airflow airflow-init airflow-stop clean chromium

install: $(STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

# Packages are installed with their bytecode compiled: every cjm, dbt, GX and Airflow
# process imports thousands of modules, and where Python may not write bytecode
# (PYTHONDONTWRITEBYTECODE, a read-only image) each one would compile them all again:
# 3 s more to start dbt, 5 s more to load GX. The Data Docs' scripts, styles and fonts,
# pinned and checked (cjm_pipeline/docs_assets.py), come from the npm registry once, so
# the GX site opens offline. (A change to this file installs again, as it may change
# how: uv then only checks what is there.)
$(STAMP): $(UV) pyproject.toml uv.lock cjm_pipeline/docs_assets.py Makefile
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	$(RUN)/python -m cjm_pipeline.docs_assets
	touch $(STAMP)

demo: $(STAMP)
	rm -rf data/landing data/truth data/lake warehouse
	$(RUN)/cjm generate --customers $(DEMO_CUSTOMERS) --start $(DEMO_START) --days $(DEMO_DAYS) --seed 42
	$(RUN)/cjm run --start $(DEMO_START) --end $(DEMO_END)

# The report's browser tests drive Debian's Chromium through Playwright (Playwright's own
# browser download is not used). Installs it when missing; apt-get needs root, as in CI.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if command -v apt-get >/dev/null 2>&1; then \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y --no-install-recommends chromium \
			|| { apt-get update && apt-get install -y --no-install-recommends chromium; }; \
		else \
			echo "error: the browser tests need Debian's chromium package (/usr/bin/chromium)," \
				"and apt-get is not available to install it" >&2; \
			exit 1; \
		fi; \
	fi

# A pytest-xdist worker per core, fed whole groups of tests, longest first (see
# tests/conftest.py); TEST_WORKERS=0 runs the suite in this one process. (A worker more
# than the cores, to use the time tests wait on their child processes, made the suite
# slower on a two-core machine: 17 min 6 s against 15 min 44 s.)
TEST_WORKERS ?= auto
test: $(STAMP) chromium
	$(RUN)/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=15

lint: $(STAMP)
	$(RUN)/ruff check .
	$(RUN)/ruff format --check .

format: $(STAMP)
	$(RUN)/ruff format .
	$(RUN)/ruff check --fix .

bench: $(STAMP)
	$(RUN)/python -m benchmarks.bench_pipeline

bench-ingest: $(STAMP)
	$(RUN)/python -m benchmarks.bench_ingest

# The identity model on synthetic graphs of 10M and 100M identifiers.
bench-identity: $(STAMP)
	$(RUN)/python -m benchmarks.bench_identity

# The same night through `cjm run` and through the DAG under a real scheduler.
bench-airflow: $(STAMP)
	$(RUN)/python -m benchmarks.bench_airflow

# The metadata database, the one-slot pool the dbt tasks share, and the dbt manifest
# the DAG renders its dbt tasks from.
airflow-init: $(STAMP)
	$(AIRFLOW_ENV) $(RUN)/airflow db migrate
	$(AIRFLOW_ENV) $(RUN)/airflow pools set cjm_duckdb 1 "DuckDB allows one writer per file"
	$(RUN)/cjm manifest

# Airflow's standalone mode sized to this machine, in a process group of its own: Ctrl-C
# or `make airflow-stop` ends all of it (cjm_pipeline/airflow_local.py).
airflow: airflow-init
	$(AIRFLOW_ENV) PATH=$(CURDIR)/$(RUN):$$PATH $(RUN)/python -m cjm_pipeline.airflow_local start

airflow-stop: $(STAMP)
	$(AIRFLOW_ENV) $(RUN)/python -m cjm_pipeline.airflow_local stop

clean:
	rm -rf data warehouse bench-data .airflow .pytest_cache .ruff_cache
