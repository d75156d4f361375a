"""Shared fixtures: real servers on free loopback ports, and no probe hook left behind.

`check_probe_hooks_removed` runs after every test of the suite: asyncio, anyio and gc must be
exactly as they were before any probe (pyinstrument's `check_sampler_state`).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from asyncio import base_events, events
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiosqlite.core
import anyio.to_thread
import pytest
import uvloop

from loopscope.demo import DemoSettings
from loopscope.probe import active_probe
from loopscope.server import ServerProcess, ServerSettings

APPS_DIR = Path(__file__).parent / "apps"

# Taken when this file is imported, before any test could have installed a probe.
ORIGINALS = {
    "asyncio.events.Handle._run": (events.Handle, "_run", events.Handle.__dict__["_run"]),
    "BaseEventLoop._call_soon": (
        base_events.BaseEventLoop,
        "_call_soon",
        base_events.BaseEventLoop.__dict__["_call_soon"],
    ),
    "BaseEventLoop._add_callback": (
        base_events.BaseEventLoop,
        "_add_callback",
        base_events.BaseEventLoop.__dict__["_add_callback"],
    ),
}
ORIGINAL_RUN_SYNC = anyio.to_thread.__dict__["run_sync"]
ORIGINALS["ThreadPoolExecutor.submit"] = (
    ThreadPoolExecutor,
    "submit",
    ThreadPoolExecutor.__dict__["submit"],
)
ORIGINALS["aiosqlite Connection._execute"] = (
    aiosqlite.core.Connection,
    "_execute",
    aiosqlite.core.Connection.__dict__["_execute"],
)
UVLOOP_OWN = {"call_soon", "call_at", "call_later"} & set(vars(uvloop.Loop))


def probe_callbacks() -> list[object]:
    """The entries of `gc.callbacks` that belong to the probe."""
    return [
        callback
        for callback in gc.callbacks
        if str(getattr(callback, "__module__", "")).startswith("loopscope.probe")
    ]


@pytest.fixture(autouse=True)
def check_probe_hooks_removed() -> Iterator[None]:
    """After each test: asyncio, anyio, gc, the executors, aiosqlite and uvloop are exactly
    as they were before any probe."""
    yield
    leftover = active_probe()
    if leftover is not None:
        leftover.uninstall()
        pytest.fail("a test left the probe installed")
    for name, (owner, attribute, original) in ORIGINALS.items():
        assert owner.__dict__[attribute] is original, f"{name} is still patched"
    assert anyio.to_thread.__dict__["run_sync"] is ORIGINAL_RUN_SYNC, "run_sync is still patched"
    hooked = {"call_soon", "call_at", "call_later"} & set(vars(uvloop.Loop))
    assert hooked == UVLOOP_OWN, "uvloop.Loop is still patched"
    assert probe_callbacks() == [], "a probe callback is left in gc.callbacks"


# The skip message of the browser tests (tests/report/test_browser.py) when Chromium is missing.
BROWSER_MISSING = "Chromium is not installed"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """Say once, loudly, at the end of the run (after the list of skips), that the browser tests
    were skipped and how to get them: a line among the skips is easy to miss."""
    yield
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if BROWSER_MISSING in str(getattr(report, "longrepr", ""))
    ]
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} BROWSER TESTS SKIPPED", red=True)
        terminalreporter.write_line(
            "Chromium is missing, so the HTML report was not tested in a browser. Install it "
            "with `apt-get install chromium` (as .ci/run does), or run .ci/run, where a missing "
            "Chromium fails the run.",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="module")
def demo_server() -> Iterator[ServerProcess]:
    """The seed's app on a real uvicorn with no I/O delay: for behaviour, not timing."""
    settings = ServerSettings(
        app="loopscope.demo:create_app",
        factory=True,
        env=DemoSettings(io_ms=0, users=10).to_env(),
    )
    server = ServerProcess(settings)
    with server:
        yield server
    server.close()


_HOG = "import time\nend = time.time() + 5\nwhile time.time() < end: pass"


@pytest.fixture
def beside_a_hog() -> Callable[[Callable[[], Any]], Any]:
    """`run(work)`: `work()` in a thread pinned to one core that a spinning process shares, so
    the OS gives the thread the core about half the time (less on a loaded machine, never
    more); its result, or the assertion it raised."""

    def run(work: Callable[[], Any]) -> Any:
        outcome: dict[str, Any] = {}

        def pinned() -> None:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # this thread only
            hog = subprocess.Popen([sys.executable, "-c", _HOG])  # inherits the one-core mask
            try:
                time.sleep(0.1)  # the hog is running
                outcome["result"] = work()
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                hog.kill()
                hog.wait(timeout=10)

        thread = threading.Thread(target=pinned)
        thread.start()
        thread.join(timeout=30)
        if "error" in outcome:
            raise outcome["error"]
        assert "result" in outcome, "the pinned thread did not finish"
        return outcome["result"]

    return run
