"""The plugin's switches: off by default, the marker, warn mode, the ini file, the JSON traces,
a test that fails on its own, and the session summary."""

from __future__ import annotations

import json
import sys
from asyncio import events
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from loopscope.trace.io import load_traces

SUITE = (Path(__file__).parent / "guarded" / "suite.py").read_text()

MARKED = """\
import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient

from guarded.app import app


@pytest.mark.loopscope(allow_block_ms=2000)
def test_allowed_by_length():
    assert TestClient(app).get("/sleep").status_code == 200


@pytest.mark.loopscope(allow=["{sleep}"])
def test_allowed_at_its_line():
    assert TestClient(app).get("/sleep").status_code == 200


@pytest.mark.loopscope(allow=["guarded/app.py"])
def test_allowed_anywhere_in_its_file():
    assert TestClient(app).get("/cpu").status_code == 200


@pytest.mark.loopscope(allow=["{cpu}"])
def test_allowed_elsewhere_still_fails():
    assert TestClient(app).get("/sleep").status_code == 200


@pytest.mark.loopscope(allow_block_ms=5)
def test_allowed_shorter_still_fails():
    assert TestClient(app).get("/sleep").status_code == 200


def test_failing_on_its_own_keeps_its_failure():
    assert TestClient(app).get("/sleep").status_code == 404


@pytest.mark.loopscope(allow=["{sleep}"])
@pytest.mark.asyncio
async def test_concurrent_requests_wait_for_the_blocked_loop():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        # Woken 10 ms in, it waits for the loop until /sleep lets go of it.
        waiting = asyncio.ensure_future(client.get("/async-sleep?seconds=0.01"))
        await asyncio.sleep(0.005)
        blocking = await client.get("/sleep")
        assert blocking.status_code == (await waiting).status_code == 200
"""

NOT_PATCHED = """\
from asyncio import events

from fastapi.testclient import TestClient
from starlette.applications import Starlette

from guarded.app import app


def test_nothing_is_patched_and_blocks_pass():
    assert Starlette.__dict__["__call__"].__module__ == "starlette.applications"
    assert events.Handle.__dict__["_run"].__module__ == "asyncio.events"
    assert TestClient(app).get("/sleep").status_code == 200
"""


def test_off_unless_asked_nothing_is_patched_and_blocking_tests_pass(
    project: Callable[..., Any],
) -> None:
    run = project({"test_guarded.py": SUITE, "test_unpatched.py": NOT_PATCHED})
    assert {case.outcome for case in run.outcomes.values()} == {"passed"}
    assert len(run.outcomes) == 25
    assert "= loopscope =" not in run.output


def test_the_marker_allows_a_known_block_by_length_or_place(
    project: Callable[..., Any], implementation: str, marked_line: Callable[[str], str]
) -> None:
    source = MARKED.format(sleep=marked_line("sleep"), cpu=marked_line("cpu"))
    run = project({"test_marked.py": source}, "--loopscope")
    found = run.outcomes
    assert found["test_allowed_by_length"].outcome == "passed"
    assert found["test_allowed_at_its_line"].outcome == "passed"
    assert found["test_allowed_anywhere_in_its_file"].outcome == "passed"
    assert found["test_allowed_elsewhere_still_fails"].outcome == "failed"
    assert found["test_allowed_shorter_still_fails"].outcome == "failed"
    assert found["test_concurrent_requests_wait_for_the_blocked_loop"].outcome == "passed"
    own = found["test_failing_on_its_own_keeps_its_failure"]
    assert own.outcome == "failed"
    assert "assert 200 == 404" in own.text
    assert f"at {marked_line('sleep')}" in own.sections["loopscope"]
    summary = run.output.split("= loopscope =", 1)[1]
    assert "7 tests watched, 7 made requests (8 requests); 3 tests blocked the loop" in summary
    # Allowed blocks are counted in the summary, by route and place.
    assert f"GET /sleep at {marked_line('sleep')}: I/O wait, 6 blocks in 6 tests" in summary
    assert "3 allowed" in summary
    assert f"GET /cpu at {marked_line('cpu')}: CPU, 1 block in 1 test" in summary
    # The request that was ready while /sleep held the loop waited about as long.
    ready = summary.split("routes that waited longest for the loop", 1)[1].splitlines()[1]
    assert ready.strip().startswith("GET /async-sleep: up to "), ready
    waited_ms = float(ready.split("up to ", 1)[1].split(" ms", 1)[0])
    assert waited_ms >= 50, ready


def test_warn_mode_passes_and_prints_the_report(
    project: Callable[..., Any], marked_line: Callable[[str], str]
) -> None:
    run = project({"test_guarded.py": SUITE}, "--loopscope", "--loopscope-mode", "warn")
    assert {case.outcome for case in run.outcomes.values()} == {"passed"}
    summary = run.output.split("= loopscope =", 1)[1]
    assert "test_guarded.py::test_testclient[sleep] blocked the event loop (warn mode):" in summary
    assert f"GET /sleep: blocks the event loop at {marked_line('sleep')} (1 time, " in summary
    assert "12 tests blocked the loop" in summary


def test_the_ini_file_turns_it_on_with_its_settings(
    project: Callable[..., Any], pytester: Any
) -> None:
    ini = pytester.path / "pytest.ini"
    ini.write_text(ini.read_text().rstrip("\n") + "\nloopscope = true\nloopscope_block_ms = 2000\n")
    run = project({"test_guarded.py": SUITE}, "-k", "test_testclient and not lifespan")
    # No route blocks for two seconds, on a busy host too: every test passes.
    assert {case.outcome for case in run.outcomes.values()} == {"passed"}
    assert "loop-block threshold 2000 ms; 6 tests watched" in run.output
    ini.write_text(ini.read_text().replace("loopscope_block_ms = 2000", "loopscope_mode = warn"))
    run = project({}, "-k", "test_testclient and not lifespan")
    assert {case.outcome for case in run.outcomes.values()} == {"passed"}
    assert "blocked the event loop (warn mode)" in run.output


def test_a_wrong_marker_stops_the_run_with_a_clear_error(project: Callable[..., Any]) -> None:
    source = "import pytest\n\n@pytest.mark.loopscope(allow_ms=3)\ndef test_x():\n    pass\n"
    run = project({"test_wrong.py": source}, "--loopscope")
    assert run.result.ret == 4
    assert "@pytest.mark.loopscope takes allow_block_ms=<number>" in run.result.stderr.str()


def test_the_json_file_holds_a_trace_per_test_that_loopscope_report_renders(
    project: Callable[..., Any], pytester: Any, marked_line: Callable[[str], str]
) -> None:
    path = pytester.path / "out" / "blocks.json"
    run = project(
        {"test_guarded.py": SUITE}, "--loopscope", f"--loopscope-json={path}", "-k", "testclient["
    )
    assert len(run.outcomes) == 6
    traces = load_traces(path)
    assert [t.run.app for t in traces] == [f"test_guarded.py::{n}" for n in run.outcomes]
    sleep = traces[0]
    assert sleep.run.mode == "pytest" and sleep.run.block_ms == 20
    assert [r.route for r in sleep.requests] == ["/sleep"]
    assert [b.where for b in sleep.loop_blocks] == [marked_line("sleep")]
    assert json.loads(path.read_text())["runs"][0]["run"]["app"].endswith("[sleep]")
    assert f"Wrote 6 test traces to {path}" in run.output
    report = pytester.run(sys.executable, "-m", "loopscope", "report", str(path), timeout=60)
    assert report.ret == 0, report.stderr.str()
    assert "test_guarded.py::test_testclient[sleep]" in report.stdout.str()
    assert marked_line("sleep") in report.stdout.str()


def test_after_a_watched_run_nothing_is_left_patched(project: Callable[..., Any]) -> None:
    before = (Starlette.__dict__["__call__"], events.Handle.__dict__["_run"])
    project({"test_guarded.py": SUITE}, "--loopscope", "-k", "sleep")
    assert (Starlette.__dict__["__call__"], events.Handle.__dict__["_run"]) == before
