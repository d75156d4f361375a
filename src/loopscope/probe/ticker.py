"""The loop's own heartbeat under uvloop: blocks outside every timed task step.

Under uvloop only task steps are timed (`loopscope.probe.loop`); a callback outside tasks (a
protocol's `data_received`, a transport, a timer's own callback) that holds the loop is seen by
no hook. A timer the loop sets for itself every half threshold is late by as long as the loop
was held: a tick later than the threshold is recorded as a block (`Recorder.watch_blocks`, with
the loop thread's CPU time since the previous tick), and `loopscope.probe.blocks.outside_steps`
keeps those that timed task steps do not explain. The tick runs on the loop thread, so it costs
one callback per half threshold and no thread hand-over (the cross-thread heartbeat it replaces
cost a busy uvloop server about 3% of its throughput, `make bench`). Its blocks name no line:
the watchdog samples stacks only while a timed step is stuck.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Any

from loopscope.probe.recorder import Recorder
from loopscope.trace.model import LoopBlock

_NO_REQUEST = contextvars.Context()
"""The ticks run in an empty context: they belong to no request."""


class LoopTicker:
    """Ticks on `loop` every half `block_ns`; `start` and `stop` on the loop's thread (a `stop`
    from elsewhere only keeps the next tick from being scheduled)."""

    def __init__(self, recorder: Recorder, loop: asyncio.AbstractEventLoop, block_ns: int) -> None:
        self._recorder = recorder
        self._loop = loop
        self._block_ns = block_ns
        self._interval_ns = max(block_ns // 2, 1_000_000)
        self._due = 0
        self._cpu = 0
        self._handle: Any = None
        self._stopped = False

    def start(self) -> None:
        """Schedule the first tick."""
        self._cpu = time.thread_time_ns()
        self._schedule(time.monotonic_ns())

    def stop(self) -> None:
        """Schedule no more ticks."""
        self._stopped = True
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                handle.cancel()

    def _schedule(self, now: int) -> None:
        self._due = now + self._interval_ns
        self._handle = self._loop.call_later(
            self._interval_ns / 1e9, self._tick, context=_NO_REQUEST
        )

    def _tick(self) -> None:
        now = time.monotonic_ns()
        try:
            cpu = time.thread_time_ns()
            late = now - self._due
            if late > self._block_ns and self._recorder.admit():
                used = max(0, min(late, cpu - self._cpu))
                self._recorder.watch_blocks.append(LoopBlock(self._due, now, used, None, None))
            self._cpu = cpu
        except Exception as exc:
            self._recorder.fail("loop ticker", exc)
        if not self._stopped:
            self._schedule(now)
