# Loopline — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.loopline-installed
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
GIT_COMMIT = $(shell git rev-parse HEAD 2>/dev/null)
REGISTRY ?= $(or $(LOOPLINE_IMAGE_REGISTRY),ghcr.io/loopline)
ROLES := base trainer deployer

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast compile check-compiled docs lint bench images lock clean

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

test: install ## run the test suite
	$(BIN)/python -m pytest

test-fast: install ## run the tests without the end-to-end kfp.local runs
	$(BIN)/python -m pytest -m "not slow"

compile: install ## compile pipelines and components to compiled/
	$(BIN)/loopline compile --out compiled --registry ghcr.io/loopline

check-compiled: install ## fail when compiled/ differs from a fresh compile
	$(BIN)/python -m loopline.compile --check compiled

docs: install ## regenerate the components' README input/output tables from the components
	$(BIN)/python -m loopline.docs

lint: install ## ruff
	$(BIN)/python -m ruff check setup.py src components pipelines tests

bench: install ## run the benchmarks (or BENCH="drift_1m validate_1m"); print a table and write .loopline/bench.json
	$(BIN)/python -m loopline.bench $(BENCH)

images: ## build the images where a Docker engine runs
	@if ! docker info >/dev/null 2>&1; then \
		echo "images: no Docker engine is available here; build the images where one runs:"; \
		for r in $(ROLES); do echo "  docker build -f containers/$$r/Dockerfile --build-arg LOOPLINE_VERSION=$(VERSION) --build-arg LOOPLINE_GIT_COMMIT=$(GIT_COMMIT) -t $(REGISTRY)/loopline-$$r:$(VERSION) ."; done; \
		exit 1; \
	fi
	@for r in $(ROLES); do \
		docker build -f containers/$$r/Dockerfile --build-arg LOOPLINE_VERSION=$(VERSION) --build-arg LOOPLINE_GIT_COMMIT=$(GIT_COMMIT) -t $(REGISTRY)/loopline-$$r:$(VERSION) . || exit 1; \
	done

lock: ## re-resolve requirements.in into requirements.lock
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install --quiet -r requirements.in
	{ sed -n '1,/^$$/p' requirements.lock | grep '^#'; .lock-venv/bin/pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

clean: ## remove local state (.loopline/) and caches
	rm -rf .loopline .pytest_cache .ruff_cache
