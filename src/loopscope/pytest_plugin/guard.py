"""The guard: pytest's hooks around each test when the plugin is on.

Per test: `pytest_runtest_protocol` puts the probe and the app seam in place before the test's
fixtures are set up (`loopscope.pytest_plugin.watch`); `pytest_runtest_makereport`, at the end
of the test's call, removes them, judges the test's trace (`loopscope.pytest_plugin.judge`) and
fails the report (or, in warn mode, adds the report beside a pass). A test that had already
failed keeps its own failure, with the loop's report added as a section. At the end of the
session the terminal summary adds up the suite (`loopscope.pytest_plugin.summary`) and
`--loopscope-json` writes the traces.
"""

from __future__ import annotations

import json
import sys
import sysconfig
import weakref
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest

from loopscope.errors import UsageError
from loopscope.pytest_plugin.judge import Allowance, judge
from loopscope.pytest_plugin.settings import GuardSettings
from loopscope.pytest_plugin.summary import SuiteSummary
from loopscope.pytest_plugin.watch import TestWatch
from loopscope.report import words
from loopscope.trace.io import trace_to_dict
from loopscope.trace.model import Trace

_ALLOWANCE = pytest.StashKey[Allowance]()

# Python's own and its installed packages' directories: a file there is nobody's project.
_PYTHON_DIRS = tuple(
    {sys.prefix, sys.base_prefix, *(sysconfig.get_paths()[k] for k in ("stdlib", "purelib"))}
)


def allowance_of(marker: pytest.Mark | None) -> Allowance:
    """What `@pytest.mark.loopscope(allow_block_ms=..., allow=[...])` allows.

    Raises `pytest.UsageError` for positional arguments, unknown keywords or wrong types.
    """
    if marker is None:
        return Allowance()
    unknown = set(marker.kwargs) - {"allow_block_ms", "allow"}
    if marker.args or unknown:
        raise pytest.UsageError(words.guard_marker_usage(marker.args, sorted(unknown)))
    block_ms = marker.kwargs.get("allow_block_ms")
    places = marker.kwargs.get("allow", ())
    if isinstance(places, str):
        places = (places,)
    wrong_number = isinstance(block_ms, bool) or not isinstance(block_ms, int | float)
    if block_ms is not None and wrong_number:
        raise pytest.UsageError(words.guard_marker_usage((), ["allow_block_ms"]))
    if not isinstance(places, Sequence) or not all(isinstance(p, str) for p in places):
        raise pytest.UsageError(words.guard_marker_usage((), ["allow"]))
    return Allowance(float(block_ms) if block_ms is not None else None, tuple(places))


class LoopGuard:
    """The plugin object registered when `--loopscope` is on; see the module docstring."""

    def __init__(self, settings: GuardSettings) -> None:
        self.settings = settings
        self.summary = SuiteSummary(settings.block_ms)
        self.traces: list[Trace] = []
        self.warnings: list[tuple[str, str]] = []
        self.unwatched: list[str] = []
        self._watches: dict[str, TestWatch] = {}
        self._served: weakref.WeakSet[Any] = weakref.WeakSet()
        self._project_files: dict[str, bool] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # Read every marker before the first test runs: a wrong one stops the run at once.
        for item in items:
            item.stash[_ALLOWANCE] = allowance_of(item.get_closest_marker("loopscope"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        try:
            watch = TestWatch(item.nodeid, self.settings, self._served)
        except UsageError:  # the test's process has a loopscope probe of its own already
            self.unwatched.append(item.nodeid)
            return (yield)
        self._watches[item.nodeid] = watch
        try:
            return (yield)
        finally:
            self._watches.pop(item.nodeid, None)
            watch.stop()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        watch = self._watches.pop(item.nodeid, None) if call.when == "call" else None
        if watch is None:
            return report
        watch.stop()
        trace = watch.trace()
        allowance = item.stash.get(_ALLOWANCE, Allowance())
        test_file = item.location[0].replace("\\", "/")
        judgement = judge(
            trace,
            self.settings.block_ms,
            allowance,
            test_file,
            first_requests=watch.first_requests,
            in_project=self._in_project,
        )
        self.summary.add(item.nodeid, trace, judgement)
        if trace.requests and self.settings.json_path is not None:
            self.traces.append(trace)
        if not judgement.failed:
            return report
        warn = self.settings.mode == "warn"
        text = "\n".join(words.guard_report(judgement, warn=warn))
        if warn:
            self.warnings.append((item.nodeid, text))
            report.sections.append(("loopscope", text))
        elif report.passed:
            report.outcome = "failed"
            report.longrepr = text
        else:  # the test failed (or was skipped) on its own: that stays its outcome
            report.sections.append(("loopscope", text))
        return report

    def _in_project(self, path: str) -> bool:
        """Whether `path` (as a block's place writes it) is a file of the project: places in
        the project are written from its root (absolute outside it), places inside installed
        libraries from their site-packages, and the standard library's absolute."""
        known = self._project_files.get(path)
        if known is None:
            if Path(path).is_absolute():
                known = Path(path).is_file() and not path.startswith(_PYTHON_DIRS)
            else:
                known = (self.settings.root or Path.cwd()).joinpath(path).is_file()
            self._project_files[path] = known
        return known

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.settings.json_path
        if path is None:
            return
        data: dict[str, Any] = {"runs": [trace_to_dict(t) for t in self.traces]}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, separators=(",", ":")))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("loopscope")
        for nodeid, text in self.warnings:
            terminalreporter.line(words.guard_warned_test(nodeid), yellow=True)
            terminalreporter.line(text)
        for line in words.guard_summary(self.summary, self.unwatched):
            terminalreporter.line(line)
        if self.settings.json_path is not None:
            terminalreporter.line(words.guard_wrote(len(self.traces), str(self.settings.json_path)))
