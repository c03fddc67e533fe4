# Developer entry points. `make app` and `make test` set up whatever is missing first
# (scripts/setup.sh: idempotent; a second run with nothing changed does no install work).

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest
RUFF := $(PY) -m ruff
LINT_IMPORTS := $(VENV)/bin/lint-imports --no-cache
PORT ?= 5151
DATASET ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help app worker test setup setup-browser lint format clean distclean \
        test-unit test-integration test-e2e bench

help:
	@echo "make app               set up, then launch the FiftyOne App with the plugin on the demo"
	@echo "                       dataset (DATASET=<name> for another dataset, PORT=<n> to pick a port)"
	@echo "make worker            a worker for the App's scheduled runs (same plugins folder and"
	@echo "                       settings as make app; run it in a second terminal)"
	@echo "make test              set up (browser included), then ruff and every test tier"
	@echo "make test-unit         unit tests only (no database, no browser)"
	@echo "make test-integration  integration tests (real FiftyOne + MongoDB)"
	@echo "make test-e2e          browser tests (the App in headless Chromium)"
	@echo "make bench             per-stage timing, Large models with random weights (docs/benchmarks.md)"
	@echo "make lint | format     ruff check + format --check + lint-imports | ruff format + fixes"
	@echo "make setup             create/update .venv and check MongoDB (scripts/setup.sh)"
	@echo "make clean | distclean remove caches and artifacts | also remove .venv"

setup:
	@scripts/setup.sh

setup-browser:
	@scripts/setup.sh --browser

app: setup
	@$(PY) scripts/launch_app.py --port $(PORT) $(if $(DATASET),--dataset "$(DATASET)")

# `fiftyone delegated launch` with make app's environment (plugins folder, scheduling on).
worker: setup
	@$(PY) scripts/launch_app.py --worker

# Lint and all tiers run even if one of them fails; the exit status reports any failure.
# The browser tier runs beside unit + integration (two pytest sessions, each with its own
# database server and folders: tests/conftest.py): most of an e2e test is waiting for the App,
# so the two share the CPU well (docs/benchmarks.md, "The test suite"). Its output is printed
# when both are done (and kept in test-artifacts/pytest-e2e.log). PYTEST_ARGS go to both; a
# session whose tests it all deselects (pytest's exit status 5) is no failure unless both are.
# A browser test that fails gets one more attempt (scripts/e2e_tier.sh says why; both attempts
# are printed, and test-artifacts/e2e-reruns.txt names every test that needed it).
E2E_LOG := test-artifacts/pytest-e2e.log
test: setup-browser
	@status=0; \
	echo "==> ruff check"; $(RUFF) check . || status=1; \
	echo "==> ruff format --check"; $(RUFF) format --check . || status=1; \
	echo "==> lint-imports (layers, no circles: pyproject.toml)"; $(LINT_IMPORTS) || status=1; \
	mkdir -p test-artifacts; \
	echo "==> pytest e2e (in the background, output below when done: $(E2E_LOG))"; \
	start=$$(date +%s); \
	( scripts/e2e_tier.sh $(PY) $(E2E_LOG) $(PYTEST_ARGS) ) & e2e=$$!; \
	trap 'kill $$e2e 2>/dev/null' INT TERM; \
	echo "==> pytest unit, then integration"; \
	$(PYTEST) tests/unit tests/integration --durations=15 $(PYTEST_ARGS); main=$$?; \
	wait $$e2e; browser=$$?; \
	for rc in $$main $$browser; do [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || status=1; done; \
	[ $$main -eq 5 ] && [ $$browser -eq 5 ] && status=1; \
	echo "==> pytest e2e"; cat $(E2E_LOG); \
	echo "==> all tiers took $$(( $$(date +%s) - start )) s"; \
	exit $$status

test-unit: setup
	$(PYTEST) tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(PYTEST) tests/integration $(PYTEST_ARGS)

test-e2e: setup-browser
	$(PYTEST) tests/e2e $(PYTEST_ARGS)

lint: setup
	@status=0; \
	$(RUFF) check . || status=1; \
	$(RUFF) format --check . || status=1; \
	$(LINT_IMPORTS) || status=1; \
	exit $$status

format: setup
	$(RUFF) format .
	$(RUFF) check --fix .

clean:
	rm -rf .pytest_cache .pytest_cache_e2e .ruff_cache test-artifacts .app-data build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# Per-stage timing and peak memory, Large architectures with random weights, paper preset, a
# 640x480 image; also re-enacts the reference's computation for comparison (docs/benchmarks.md).
bench: setup
	$(PY) scripts/bench.py --arch large --preset paper --image 640x480 --reference-style $(BENCH_ARGS)
