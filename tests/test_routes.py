"""Routes by their full identity: method plus the whole template, prefixes and mounts included.

Traced through the real CLI on a real uvicorn, against whatever FastAPI and Starlette are
installed (`make test-oldest` runs this file against the oldest that `pyproject.toml` allows).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loopscope.trace import Trace, load_trace

APPS = Path(__file__).parent / "apps"
SOURCE = APPS / "prefixed" / "main.py"
BLOCK_LINE = next(
    n for n, line in enumerate(SOURCE.read_text().splitlines(), 1) if "# mark: a-block" in line
)


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trace, str]:
    out = tmp_path_factory.mktemp("prefixed") / "trace.json"
    hits = [
        "GET /a/items",
        "GET /b/items",
        "GET /b/in/deep/7",
        "GET /heroes/",
        "POST /heroes/",
        "GET /sub/status/204",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "loopscope", "trace", "prefixed.main:app",
         "--app-dir", str(APPS), "--users", "2", "--json", str(out), "--no-html",
         *(arg for hit in hits for arg in ("--hit", hit))],
        capture_output=True, text=True, timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return load_trace(out), result.stdout


def test_every_route_is_named_by_its_method_and_full_template(
    prefixed: tuple[Trace, str],
) -> None:
    trace, _ = prefixed
    assert {r.endpoint for r in trace.requests} == {
        "GET /a/items",
        "GET /b/items",
        "GET /b/in/deep/{n}",
        "GET /heroes/",
        "POST /heroes/",
        "GET /sub/status/{code}",
    }


def test_the_block_is_put_on_the_prefix_that_blocks_and_no_other(
    prefixed: tuple[Trace, str],
) -> None:
    trace, stdout = prefixed
    routes = {r.id: r.endpoint for r in trace.requests}
    blamed = {routes[b.request_id] for b in trace.loop_blocks if b.request_id in routes}
    assert blamed == {"GET /a/items"}
    assert all(b.where == f"prefixed/main.py:{BLOCK_LINE}" for b in trace.loop_blocks)
    assert f"blocks the event loop at prefixed/main.py:{BLOCK_LINE}" in stdout
    rows = [line for line in stdout.splitlines() if "│ GET /b/items" in line]
    assert rows and "runs on the event loop" in "".join(rows)


def test_each_part_of_a_route_is_said_to_run_where_it_ran(tmp_path: Path) -> None:
    out = tmp_path / "parts.json"
    result = subprocess.run(
        [sys.executable, "-m", "loopscope", "trace", "parts:app", "--app-dir", str(APPS),
         "--hit", "GET /authenticated-route", "--users", "2", "--json", str(out), "--no-html"],
        capture_output=True, text=True, timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    source = (APPS / "parts.py").read_text().splitlines()
    defined = next(n for n, line in enumerate(source, 1) if line.startswith("def get_strategy"))
    assert f"in the thread pool: get_strategy (parts.py:{defined}) ×2" in result.stdout
    assert "the rest on the event loop" in result.stdout
    assert "runs in the thread pool;" not in result.stdout
    trace = load_trace(out)
    assert {c.where for c in trace.pool} == {f"parts.py:{defined}"}
