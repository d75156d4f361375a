"""The plugin on the guarded app: what fails, with which line, under every way of testing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

SUITE = (Path(__file__).parent / "guarded" / "suite.py").read_text()

BLOCKING = {"sleep": "I/O wait", "cpu": "CPU-bound", "db": None}
PASSING = ("async-sleep", "def-route", "offload")
CLIENTS = (
    "test_testclient",
    "test_testclient_without_lifespan",
    "test_asyncclient_anyio",
    "test_asyncclient_pytest_asyncio",
)


def test_blocking_routes_fail_with_their_line_and_the_others_pass_under_every_client(
    project: Callable[..., Any], implementation: str, marked_line: Callable[[str], str]
) -> None:
    run = project({"test_guarded.py": SUITE}, "--loopscope")
    found = run.outcomes
    assert len(found) == len(CLIENTS) * (len(BLOCKING) + len(PASSING))
    for client in CLIENTS:
        for route in PASSING:
            assert found[f"{client}[{route}]"].outcome == "passed", found[f"{client}[{route}]"]
        for route, kind in BLOCKING.items():
            case = found[f"{client}[{route}]"]
            assert case.outcome == "failed", (client, route)
            where = marked_line(route)
            assert f"GET /{route}: " in case.text
            assert f" at {where} (1 time, " in case.text, case.text
            assert "CPU " in case.text and "waiting " in case.text, case.text
            assert f'@pytest.mark.loopscope(allow=["{where}"])' in case.text
            if kind == "CPU-bound":
                assert "CPU-bound at" in case.text and "offload to a process pool" in case.text
            elif kind == "I/O wait":
                assert "I/O wait: await an async driver or offload it" in case.text, case.text
            # The stack starts in the app, not in pytest or the test.
            stack = case.text.split("innermost last:\n", 1)[1].split("\n\n", 1)[0]
            assert stack.splitlines()[-1].strip().startswith(f"{where} in "), stack
            assert "test_guarded.py" not in stack and "pytest" not in stack, stack
    assert "loop blocks by route and place, across the suite:" in run.output
