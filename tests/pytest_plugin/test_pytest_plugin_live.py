"""A live uvicorn that a fixture runs in a thread of the test process, on asyncio's loop
(every step timed) and on uvloop (the watchdog's heartbeat)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LIVE = """\
import threading
import time

import httpx
import pytest
import uvicorn

from guarded.app import app


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def live(request):
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, loop=request.param, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)


@pytest.mark.parametrize("route", ["sleep", "cpu", "async-sleep", "def-route"])
def test_live(live, route):
    assert httpx.get(f"{live}/{route}", timeout=20).status_code == 200
"""


def test_a_live_uvicorn_in_a_thread_is_guarded_on_asyncio_and_uvloop(
    project: Callable[..., Any], implementation: str, marked_line: Callable[[str], str]
) -> None:
    run = project({"test_live.py": LIVE}, "--loopscope")
    found = run.outcomes
    assert len(found) == 8
    for loop in ("asyncio", "uvloop"):
        for route in ("async-sleep", "def-route"):
            assert found[f"test_live[{loop}-{route}]"].outcome == "passed", (loop, route)
        for route in ("sleep", "cpu"):
            case = found[f"test_live[{loop}-{route}]"]
            assert case.outcome == "failed", (loop, route)
            assert f"GET /{route}: " in case.text
            # The heartbeat may see one block as two where a sample fell between them.
            assert f" at {marked_line(route)} (" in case.text, case.text
    # Every task step is timed under uvloop too: ready times are measured on both loops.
    assert "ready times were not measured" not in run.output
