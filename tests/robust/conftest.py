"""The fuzz tests need schemathesis, which only `make fuzz`'s own venv has (it brings `requests`,
whose absence the audit's tests rely on): elsewhere the module is left out, and `make fuzz`, run
by .ci/run, runs it."""

from __future__ import annotations

import importlib.util

collect_ignore = [] if importlib.util.find_spec("schemathesis") else ["test_fuzz_demo.py"]
