# One entry point for people and CI alike: `make demo`, `make test`, `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-oldest lint typecheck pytest bench bench-instructions clean robust fuzz

setup: $(STAMP)

TEST_PACKAGES := $(wildcard tests/packages/*/pyproject.toml tests/packages/*/*/*.py)

$(STAMP): pyproject.toml setup.py src/loopscope/probe/_speedups.c $(TEST_PACKAGES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# Test fixtures that must be real installed libraries (in site-packages, not editable).
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps ./tests/packages/hashroute
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

# Faults and bad input, harder than `make test` runs them (both run by .ci/run): the CLI ended
# mid-run by SIGKILL, SIGINT and SIGTERM beside a CPU hog, ten times each; the demo API fuzzed
# with schemathesis, 1,000+ generated cases (`make test` leaves the fuzz out).
robust: setup
	LOOPSCOPE_ROBUST_REPEAT=10 $(BIN)/pytest -p no:cacheprovider tests/robust/test_no_orphans.py

# In a venv of its own: schemathesis brings `requests`, which the audit's tests need absent.
FUZZ := .venv-fuzz
fuzz: setup
	test -x $(FUZZ)/bin/python || $(PYTHON) -m venv $(FUZZ)
	$(FUZZ)/bin/python -m pip install --quiet -e '.[fuzz]'
	LOOPSCOPE_FUZZ_EXAMPLES=40 $(FUZZ)/bin/pytest -p no:cacheprovider tests/robust/test_fuzz_demo.py

# The real-app tests against the oldest FastAPI, Starlette, anyio and uvicorn that pyproject.toml
# allows (the newest are what `setup` installs). Old Starlette imports a deprecated module name,
# so deprecation warnings are not errors here.
OLDEST := .venv-oldest
test-oldest: setup
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet -c ci/oldest-constraints.txt -e '.[dev]'
	$(OLDEST)/bin/python -m pip install --quiet --no-deps --force-reinstall ./tests/packages/hashroute
	$(OLDEST)/bin/python -c "import fastapi, starlette; print('oldest: fastapi', fastapi.__version__, 'starlette', starlette.__version__)"
	$(OLDEST)/bin/pytest -p no:cacheprovider -W ignore::DeprecationWarning -W ignore::PendingDeprecationWarning \
		tests/test_routes.py tests/test_real_apps.py tests/test_libraries.py tests/test_trace_command.py

bench: setup
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/probe_overhead.py
	$(BIN)/python benchmarks/probe_memory.py
	$(BIN)/python benchmarks/probe_checkpoint.py
	$(BIN)/python benchmarks/wsgi_probe_cost.py
	$(BIN)/python benchmarks/sim_bench.py
	$(BIN)/python benchmarks/audit_bench.py
	$(BIN)/python benchmarks/accept_queue_cost.py
	$(BIN)/python benchmarks/bench_driver.py
	$(BIN)/python benchmarks/pytest_plugin_bench.py

bench-instructions: setup
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	benchmarks/probe_instructions.sh

clean:
	rm -rf $(VENV) $(OLDEST) $(FUZZ) .pytest_cache .mypy_cache .ruff_cache loopscope-report.html
