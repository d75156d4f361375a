"""loopscope's pytest plugin: fail a test whose requests block the event loop.

Shipped with the package as a `pytest11` entry point and off unless asked for, with
`pytest --loopscope` or `loopscope = true` in `[tool.pytest.ini_options]`:

```
pytest --loopscope                       # fail a test whose requests block the loop > 20 ms
pytest --loopscope --loopscope-block-ms 50 --loopscope-mode warn --loopscope-json blocks.json
```

While a test runs (its fixtures' set-up included), the probe (`loopscope.probe`) is installed in
the test process and every Starlette or FastAPI app called in it passes through the probe's
middleware: `fastapi.testclient.TestClient` (the app's loop in a portal thread),
`httpx.AsyncClient(transport=ASGITransport(app))` under pytest-asyncio or anyio's plugin, and a
uvicorn that a fixture runs in a thread of the test process. No tagging client is needed. When
the test is done, the probe is removed, and each loop block over the threshold made by one of the
test's requests fails it with the route, the `path:line` in the project's code, CPU versus
waiting, how long, and the fix in the words of `loopscope trace`. `@pytest.mark.loopscope(
allow_block_ms=200)` or `allow=["app/legacy.py:42"]` allows a known block. The terminal summary
adds the blocks per route and place across the suite and the routes that waited longest for
the loop (their `ready` time); `--loopscope-json PATH` writes one Trace per test for
`loopscope report PATH`.

This module is all that pytest imports when the plugin is off: it declares the options and the
marker and imports nothing else of loopscope's, so an unused plugin costs nothing and patches
nothing. The guard itself (`loopscope.pytest_plugin.guard`) is imported only when it is on.
"""

from __future__ import annotations

import pytest

MARKER = (
    "loopscope(allow_block_ms=None, allow=()): allow loop blocks up to allow_block_ms long, or "
    "at the given 'path:line' (or 'path') places, in this test's requests"
)

MODES = ("fail", "warn")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare `--loopscope` and its settings, and their `[tool.pytest.ini_options]` twins."""
    group = parser.getgroup("loopscope", "loopscope: fail tests whose requests block the loop")
    group.addoption(
        "--loopscope",
        action="store_true",
        default=None,
        help="Fail a test whose requests block the event loop (ini: loopscope = true).",
    )
    group.addoption(
        "--loopscope-block-ms",
        type=float,
        default=None,
        metavar="MS",
        help="A loop step longer than this is a loop block (default: the threshold of "
        "`loopscope trace`, 20 ms; ini: loopscope_block_ms).",
    )
    group.addoption(
        "--loopscope-mode",
        choices=MODES,
        default=None,
        help="fail (default): a block fails the test; warn: the test passes and the block is "
        "reported (ini: loopscope_mode).",
    )
    group.addoption(
        "--loopscope-json",
        default=None,
        metavar="PATH",
        help="Write one Trace per test that made requests to PATH (`loopscope report PATH`).",
    )
    parser.addini("loopscope", "Turn the loopscope guard on.", type="bool", default=False)
    parser.addini("loopscope_block_ms", "The loop-block threshold in ms.", default="")
    parser.addini("loopscope_mode", "fail or warn.", default="")


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker; register the guard only when the plugin is on."""
    config.addinivalue_line("markers", MARKER)
    if not (config.getoption("loopscope") or config.getini("loopscope")):
        return
    from loopscope.pytest_plugin.guard import LoopGuard
    from loopscope.pytest_plugin.settings import GuardSettings

    config.pluginmanager.register(LoopGuard(GuardSettings.from_config(config)), "loopscope-guard")
