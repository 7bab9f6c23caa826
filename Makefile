# Loopline — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.loopline-installed
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
GIT_COMMIT = $(shell git rev-parse HEAD 2>/dev/null)

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast compile check-compiled docs lint bench images run-containers test-containers lock clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## create .venv with the pinned dependencies and the `loopline` command (idempotent)

run: install ## run the whole loop locally on the demo data (= loopline run)
	$(BIN)/loopline run

test: install ## run the test suite (no container engine needed; see test-containers)
	$(BIN)/python -m pytest -m "not containers"

test-fast: install ## run the tests without the end-to-end kfp.local runs
	$(BIN)/python -m pytest -m "not slow and not containers"

compile: install ## compile pipelines and components to compiled/
	$(BIN)/loopline compile --out compiled --registry ghcr.io/loopline

check-compiled: install ## fail when compiled/ differs from a fresh compile
	$(BIN)/python -m loopline.cli.compile --check compiled

docs: install ## regenerate the component READMEs' input/output tables and the README's component table
	$(BIN)/python -m tools.docs

lint: install ## ruff
	$(BIN)/python -m ruff check setup.py src components pipelines tests tools

bench: install ## run the benchmarks (or BENCH="drift_1m validate_1m"); print a table and write .loopline/bench.json
	$(BIN)/python -m tools.bench $(BENCH)

images: ## build the three images (Docker, else podman; on a stand-in base where the official one cannot be pulled)
	containers/engine.sh images

run-containers: install ## the whole loop, every step in its image; data and artifacts on S3 (stand-in) and an MLflow server
	$(BIN)/python -m tools.rehearsal --runner docker $(RUN_ARGS)

test-containers: install ## install podman where needed (root), build the images, run the container tests
	containers/engine.sh install
	containers/engine.sh images
	LOOPLINE_TEST_CONTAINERS=1 $(BIN)/python -m pytest -m containers tests/test_containers.py tests/test_serving_image.py

lock: ## re-resolve requirements.in into requirements.lock
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install --quiet -r requirements.in
	{ sed -n '1,/^$$/p' requirements.lock | grep '^#'; .lock-venv/bin/pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

clean: ## remove local state (.loopline/) and caches
	rm -rf .loopline .pytest_cache .ruff_cache
