# One entry point for people and CI alike: `make demo`, `make test`, `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck pytest bench bench-instructions clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py src/loopscope/probe/_speedups.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/loopscope demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

test: lint typecheck pytest

bench: setup
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/probe_overhead.py
	$(BIN)/python benchmarks/audit_bench.py

bench-instructions: setup
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	benchmarks/probe_instructions.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache loopscope-report.html
