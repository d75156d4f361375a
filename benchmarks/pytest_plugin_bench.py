"""The pytest plugin beside blockbuster: what each catches, what each costs a test suite, and
what the plugin costs pytest's start-up when it is off.

1. Cases: the guarded app of `tests/pytest_plugin/guarded` (a `time.sleep` two calls below an
   async route, a CPU loop, a sync SQLite query; an awaited sleep, a `def` route, an offloaded
   call), each route under `TestClient` and under `httpx.AsyncClient` on pytest-asyncio, run
   once with `--loopscope` and once with blockbuster's context active around every test (its
   documented pytest use: an autouse fixture with `blockbuster_ctx()`).
2. Suite time: the demo app's own tests (`tests/demo/test_app.py`), against the demo app served
   by uvicorn in a thread of the test process (so that either tool can see it), plain, with
   `--loopscope` and with blockbuster, `ROUNDS` times each in turn; with the demo's lookups
   instant (`io_ms=0`, as the tests run it) and 50 ms long.
3. Start-up: `pytest --collect-only` on an empty project with the plugin installed but off,
   and with `-p no:loopscope`, `STARTS` times each in turn.

    python benchmarks/pytest_plugin_bench.py
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUARDED = ROOT / "tests" / "pytest_plugin" / "guarded"
ROUNDS = 3
STARTS = 15
IMPORT_PLUGIN = "import pytest; import loopscope.pytest_plugin"

INI = """\
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    ignore:Using `httpx` with `starlette.testclient` is deprecated
"""

BLOCKBUSTER_CONFTEST = """\
import os

import pytest


@pytest.fixture(autouse=True)
def blockbuster():
    if os.environ.get("WITH_BLOCKBUSTER") != "1":
        yield None
        return
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx() as bb:
        yield bb
"""

CASES = """\
import httpx
import pytest
from fastapi.testclient import TestClient

from guarded.app import app

ROUTES = ["sleep", "cpu", "db", "async-sleep", "def-route", "offload"]


@pytest.mark.parametrize("route", ROUTES)
def test_testclient(route):
    with TestClient(app) as client:
        assert client.get(f"/{route}").status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("route", ROUTES)
async def test_asyncclient(route):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        assert (await client.get(f"/{route}")).status_code == 200
"""

DEMO_CONFTEST = """\
import threading
import time

import pytest
import uvicorn

from loopscope.demo import DemoSettings, create_app


class LiveServer:
    def __init__(self, url):
        self.url = url


@pytest.fixture(scope="module")
def demo_server():
    app = create_app(DemoSettings(io_ms={io_ms}, users=10))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, loop="asyncio", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    yield LiveServer(f"http://127.0.0.1:{{server.servers[0].sockets[0].getsockname()[1]}}")
    server.should_exit = True
    thread.join(30)
"""


def pytest_run(project: Path, *args: str, blockbuster: bool = False) -> tuple[float, Path, str]:
    """Run pytest in `project`; its wall time, its JUnit XML and its output."""
    report = project / "report.xml"
    env = {
        "WITH_BLOCKBUSTER": "1" if blockbuster else "0",
        "PATH": str(Path(sys.executable).parent),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, f"--junitxml={report}", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    return time.perf_counter() - start, report, done.stdout


def failures(report: Path) -> dict[str, str]:
    """Failed test name → the first line of why, from JUnit XML."""
    failed = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        for problem in (*case.findall("failure"), *case.findall("error")):
            message = (problem.get("message") or "").splitlines()
            failed[case.get("name", "")] = message[0] if message else ""
    return failed


def test_names(report: Path) -> list[str]:
    return [c.get("name", "") for c in ET.parse(report).getroot().iter("testcase")]


def caught(message: str) -> str:
    """What a failure says, in a few words."""
    if "blocked the event loop" in message or "loopscope" in message:
        return "fails"
    if "BlockingError" in message or "Blocking call" in message:
        return "fails (BlockingError raised in the app)"
    return f"fails: {message[:60]}" if message else "fails"


def cases(workdir: Path) -> None:
    project = workdir / "cases"
    project.mkdir()
    shutil.copytree(GUARDED, project / "guarded", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "pytest.ini").write_text(INI)
    (project / "conftest.py").write_text(BLOCKBUSTER_CONFTEST)
    (project / "test_cases.py").write_text(CASES)
    _, loop_report, _ = pytest_run(project, "--loopscope")
    loop_failed = failures(loop_report)
    names = test_names(loop_report)
    _, bb_report, _ = pytest_run(project, blockbuster=True)
    bb_failed = failures(bb_report)
    print("## What each catches (guarded app; fails = the test fails)\n")
    print("| test | loopscope --loopscope | blockbuster |")
    print("|---|---|---|")
    for name in names:
        ours = caught(loop_failed[name]) if name in loop_failed else "passes"
        theirs = caught(bb_failed[name]) if name in bb_failed else "passes"
        print(f"| {name} | {ours} | {theirs} |")
    print()


def suite_times(workdir: Path, io_ms: int) -> None:
    project = workdir / f"demo-{io_ms}"
    project.mkdir()
    shutil.copy(ROOT / "tests" / "demo" / "test_app.py", project / "test_app.py")
    (project / "pytest.ini").write_text(INI)
    conftest = BLOCKBUSTER_CONFTEST + "\n\n" + DEMO_CONFTEST.format(io_ms=io_ms)
    (project / "conftest.py").write_text(conftest)
    modes = {
        "plain": ((), False),
        "--loopscope": (("--loopscope",), False),
        "blockbuster": ((), True),
    }
    times: dict[str, list[float]] = {m: [] for m in modes}
    failed: dict[str, dict[str, str]] = {}
    total = 0
    for _ in range(ROUNDS):
        for mode, (args, bb) in modes.items():
            elapsed, report, _ = pytest_run(project, *args, blockbuster=bb)
            times[mode].append(elapsed)
            failed[mode] = failures(report)
            total = len(test_names(report))
    print(f"## Demo app's tests (tests/demo, {total} tests), io_ms={io_ms}: median of {ROUNDS}\n")
    print("| run | wall time (s) | vs plain | tests failed | failed variants |")
    print("|---|---|---|---|---|")
    plain = statistics.median(times["plain"])
    for mode in modes:
        median = statistics.median(times[mode])
        variants = _variants(failed[mode])
        print(
            f"| {mode} | {median:.2f} | {median / plain:.2f}x | {len(failed[mode])} "
            f"| {', '.join(variants) or '-'} |"
        )
    print()


def _variants(failed: dict[str, str]) -> list[str]:
    """The demo variants (`async-blocking`, ...) whose tests failed."""
    from loopscope.demo import VARIANTS

    found = set()
    for name in failed:
        params = name.split("[", 1)[1] if "[" in name else ""
        # The longest variant named in the test's parameters (`async-blocking` before `async`).
        named = [v for v in VARIANTS if re.search(rf"(^|-){re.escape(v)}(-|\]|$)", params)]
        if named:
            found.add(max(named, key=len))
    return sorted(found)


def start_up(workdir: Path) -> None:
    project = workdir / "empty"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    runs = {"installed, off": (), "-p no:loopscope": ("-p", "no:loopscope")}
    times: dict[str, list[float]] = {r: [] for r in runs}
    for _ in range(STARTS):
        for name, args in runs.items():
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "--collect-only",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    *args,
                ],
                cwd=project,
                capture_output=True,
                timeout=120,
            )
            times[name].append(time.perf_counter() - start)
    # What the plugin imports when off: only its entry module and the package's `__init__`.
    probe = (
        "import sys, pytest; pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider']); "
        "print(sorted(m for m in sys.modules if m.startswith('loopscope')))"
    )
    modules = (
        subprocess.run(
            [sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, timeout=120
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    costs = []
    for _ in range(STARTS):
        imported = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-c",
                "import pytest; import loopscope.pytest_plugin",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stderr
        line = next(x for x in imported.splitlines() if x.endswith("| loopscope.pytest_plugin"))
        costs.append(int(line.split("|")[1]))
    print(f"## pytest start-up, empty project: median of {STARTS}\n")
    print("| run | wall time (ms) |")
    print("|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values) * 1000:.0f} |")
    print(f"\nloopscope modules imported when off: {modules}")
    print(f"their import time (-X importtime, cumulative, median): {statistics.median(costs)} us\n")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="loopscope-pytest-bench-") as tmp:
        workdir = Path(tmp)
        start_up(workdir)
        cases(workdir)
        for io_ms in (0, 50):
            suite_times(workdir, io_ms)


if __name__ == "__main__":
    main()
