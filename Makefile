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

.PHONY: install demo test lint format bench bench-ingest clean

install: $(STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

$(STAMP): $(UV) pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --python $(PYTHON)
	touch $(STAMP)

demo: $(STAMP)
	rm -rf data/landing data/truth data/lake warehouse/build
	$(RUN)/cjm generate --customers $(DEMO_CUSTOMERS) --start $(DEMO_START) --days $(DEMO_DAYS) --seed 42
	$(RUN)/cjm run --start $(DEMO_START) --end $(DEMO_END)

test: $(STAMP)
	$(RUN)/pytest

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

clean:
	rm -rf data warehouse bench-data .pytest_cache .ruff_cache
