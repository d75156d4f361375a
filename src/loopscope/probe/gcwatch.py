"""Garbage-collection pauses on the loop thread, so a GC pause is not blamed on user code.

A full collection of a large heap can hold the loop for 100 ms or more while the stack shows
whatever line happened to allocate. `gc.callbacks` tells us when each collection starts and stops;
a `LoopBlock` mostly covered by such pauses is labelled `kind="gc"`.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from loopscope.probe.recorder import Recorder

MIN_PAUSE_NS = 100_000
"""Shorter collections (the frequent young-generation ones) are not stored."""


class GcWatch:
    """A `gc.callbacks` entry that records collections made on one thread."""

    def __init__(self, recorder: Recorder) -> None:
        self.thread_id: int | None = None  # set once the loop's thread is known
        self._recorder = recorder
        self._started = 0

    @property
    def installed(self) -> bool:
        """Whether the callback is registered."""
        return any(callback == self._callback for callback in gc.callbacks)

    def install(self) -> None:
        """Register the callback."""
        gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        """Unregister the callback (every copy of it)."""
        gc.callbacks[:] = [callback for callback in gc.callbacks if callback != self._callback]

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        try:
            if threading.get_ident() != self.thread_id:
                return
            now = time.monotonic_ns()
            if phase == "start":
                self._started = now
            elif self._started and now - self._started >= MIN_PAUSE_NS:
                if self._recorder.admit():
                    self._recorder.gc_pauses.append((self._started, now))
                self._started = 0
        except Exception as exc:
            self._recorder.fail("gc callback", exc)
