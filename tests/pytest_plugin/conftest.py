"""Fixtures for the pytest plugin's tests: a `pytester` project holding the guarded shop app.

Each test builds a small project of its own (`guarded/` is copied in as the project's code),
runs pytest on it in this process with or without `--loopscope`, and reads the reports and the
terminal output. Every case runs with the probe's C hooks and again with its Python twin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from loopscope.probe.loop import PURE_PYTHON_ENV

GUARDED = Path(__file__).parent / "guarded"

SUITE = (GUARDED / "suite.py").read_text()
"""The guarded app's own tests."""

INNER_INI = """\
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore:Using `httpx` with `starlette.testclient` is deprecated
"""


@pytest.fixture(params=["compiled", "pure-python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The probe's C hooks, then its pure-Python twin (`LOOPSCOPE_PURE_PYTHON=1`)."""
    monkeypatch.setenv(PURE_PYTHON_ENV, "1" if request.param == "pure-python" else "")
    return str(request.param)


def _marked_line(mark: str) -> str:
    lines = (GUARDED / "app.py").read_text().splitlines()
    for number, text in enumerate(lines, start=1):
        if text.rstrip().endswith(f"# mark: {mark}"):
            return f"guarded/app.py:{number}"
    raise AssertionError(f"no line marked {mark!r} in guarded/app.py")


@pytest.fixture(scope="session")
def marked_line() -> Callable[[str], str]:
    """`guarded/app.py:<n>`: the line of the app ending with `# mark: <mark>`."""
    return _marked_line


@dataclass
class Outcome:
    """One inner test's call phase: its outcome and the text of its failure, if any."""

    outcome: str
    text: str
    sections: dict[str, str]


def _outcomes(result: pytest.RunResult) -> dict[str, Outcome]:
    """Each inner test's call-phase outcome by test id (`test_testclient[sleep]`)."""
    found = {}
    for report in result.reprec.getreports("pytest_runtest_logreport"):  # type: ignore[attr-defined]
        if report.when == "call":
            name = report.nodeid.split("::", 1)[1]
            found[name] = Outcome(report.outcome, report.longreprtext, dict(report.sections))
    return found


@dataclass
class Project:
    """A run of pytest on the project: its result and each test's call-phase outcome."""

    result: pytest.RunResult
    outcomes: dict[str, Outcome]

    @property
    def output(self) -> str:
        """What the run printed."""
        return self.result.stdout.str()


RunProject = Callable[..., Project]


@pytest.fixture
def project(pytester: pytest.Pytester) -> RunProject:
    """A project with the guarded app; call it with test files (name → source; `SUITE` is the
    app's own tests) and pytest's arguments to run them."""
    package = pytester.path / "guarded"
    package.mkdir()
    for name in ("__init__.py", "app.py"):
        (package / name).write_text((GUARDED / name).read_text())
    pytester.makefile(".ini", pytest=INNER_INI)

    def run(files: dict[str, str], *args: str) -> Project:
        for name, source in files.items():
            (pytester.path / name).write_text(source)
        result = pytester.runpytest("-p", "no:cacheprovider", *args)
        return Project(result, _outcomes(result))

    return run
