"""Fixtures for the probe's tests: real probed servers, and no probe hook left behind.

`run_probed` runs a test app (`apps/<module>.py`) in its own uvicorn process with the probe
installed, as in production, drives it with a scenario over HTTP, stops it with SIGTERM and
returns the probe's record. Every run is bounded: start, request and shutdown timeouts; loopback
only. The autouse check that no probe hook is left behind lives in `tests/conftest.py`, for the
whole suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopscope.probe.loop import PURE_PYTHON_ENV
from loopscope.trace.io import load_record
from loopscope.trace.record import ServerRecord

APPS = Path(__file__).parent / "apps"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 10.0

Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]
RunProbed = Callable[..., ServerRecord]


def _marked_line(module: str, mark: str) -> str:
    lines = (APPS / f"{module}.py").read_text().splitlines()
    for number, text in enumerate(lines, start=1):
        if text.rstrip().endswith(f"# mark: {mark}"):
            return f"{module}.py:{number}"
    raise AssertionError(f"no line marked {mark!r} in {module}.py")


@pytest.fixture(scope="session")
def marked_line() -> Callable[[str, str], str]:
    """`file:line` of the line in `apps/<module>.py` ending with the comment `# mark: <mark>`."""
    return _marked_line


def _read_port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("PORT "):
                return int(line.split()[1])
    raise AssertionError("the probed server did not start")


def _drive(base_url: str, scenario: Scenario) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
            await scenario(client)

    asyncio.run(main())


def _run_probed(
    tmp_path: Path,
    scenario: Scenario,
    *,
    module: str = "blocking",
    loop: str = "asyncio",
    threads: int | None = None,
    pure_python: bool = False,
    **probe: Any,
) -> ServerRecord:
    out = tmp_path / f"probe-{module}-{loop}.json"
    log_path = tmp_path / f"server-{module}-{loop}.log"
    config = {
        "module": module,
        "loop": loop,
        "threads": threads,
        "out": str(out),
        "probe": {"app_root": str(APPS), **probe},
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APPS), *sys.path])}
    env[PURE_PYTHON_ENV] = "1" if pure_python else ""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(APPS / "serve_probed.py"), json.dumps(config)],
            cwd=APPS,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            _drive(f"http://127.0.0.1:{_read_port(process)}", scenario)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()
    assert process.returncode == 0, log_path.read_text()
    return load_record(out)


@pytest.fixture(scope="session")
def run_probed() -> RunProbed:
    """`run(tmp_path, scenario, *, module, loop, threads, pure_python, **install_kwargs)`:
    the record; `pure_python` runs the probe's Python hooks instead of its C ones."""
    return _run_probed
