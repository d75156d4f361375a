"""One test, watched: the probe and the app seam in place from its set-up to the end of its call.

`TestWatch.start` installs the probe (`loopscope.probe.install`) and the seam
(`loopscope.pytest_plugin.capture`); `stop` removes both, exactly, and `trace` joins what the
probe recorded into a server-only `Trace` (`loopscope.trace.merge.build_trace`), the same
data `loopscope trace` analyses, named after the test.
"""

from __future__ import annotations

import platform
import time
import weakref
from typing import Any

from loopscope import __version__
from loopscope.probe import Probe, install
from loopscope.pytest_plugin.capture import AppCapture
from loopscope.pytest_plugin.settings import GuardSettings
from loopscope.trace.merge import build_trace
from loopscope.trace.model import Run, Trace

MAX_EVENTS = 100_000
"""The probe's event budget per test: a test is short; a runaway one is cut, never unbounded."""


class TestWatch:
    """The probe and the seam around one test (`nodeid`); see the module docstring. `served`
    is the session's set of apps that have served a request (see `AppCapture`)."""

    __test__ = False  # not a test class, whatever pytest's collection thinks of the name

    def __init__(
        self, nodeid: str, settings: GuardSettings, served: weakref.WeakSet[Any] | None = None
    ) -> None:
        self.nodeid = nodeid
        self.settings = settings
        self._started_ns = time.monotonic_ns()
        root = str(settings.root) if settings.root is not None else None
        self._probe: Probe = install(
            block_ms=settings.block_ms, max_events=MAX_EVENTS, app_root=root
        )
        self._capture = AppCapture(self._probe, served)
        try:
            self._capture.install()
        except BaseException:
            self._probe.uninstall()
            raise

    @property
    def first_requests(self) -> frozenset[str]:
        """The ids of this test's requests that were an app's first in the session."""
        return frozenset(self._capture.first_requests)

    @property
    def watching(self) -> bool:
        """Whether the probe or the seam is still in place."""
        return self._probe.installed or self._capture.installed

    def stop(self) -> None:
        """Remove the seam and the probe; harmless when called again."""
        try:
            self._capture.uninstall()
        finally:
            self._probe.uninstall()

    def trace(self) -> Trace:
        """What the test's requests did, as a server-only `Trace` (stop first)."""
        run = Run(
            mode="pytest",
            app=self.nodeid,
            tool_version=__version__,
            python=platform.python_version(),
            server="in-process",
            block_ms=self.settings.block_ms,
            scenario=self.nodeid,
            started_ns=self._started_ns,
        )
        return build_trace(run, records=[self._probe.collect()])
