"""The watchdog thread: notices a loop that has stopped turning and samples what it is doing.

It wakes every quarter of the block threshold and does one of two things:

- precise mode (steps are timed by `loopscope.probe.loop`): if the step now running started
  more than half the threshold ago, sample the loop thread's stack into the stall's
  `StackSamples`; the step's end, recorded by the wrapper, decides later whether it was a block.
- heartbeat mode (uvloop, or precise mode turned off): post a callback with
  `call_soon_threadsafe`; if it has not run within half the threshold, sample; once it runs
  later than the threshold, record a `LoopBlock` from the post to the run.

Sampling reads `sys._current_frames()`, which costs the loop nothing (NOTES: ~0). The watchdog
also reads the loop thread's CPU clock on every tick so that a stall's CPU time can be measured
without the loop thread paying for a system call on every step.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections import deque
from collections.abc import Callable

from loopscope.probe.frames import FrameNamer
from loopscope.probe.recorder import Recorder, StackSamples
from loopscope.trace.model import LoopBlock

# Enough ticks to look back past the start of a stall that is noticed half a threshold late.
_TICKS_KEPT = 64


def _cpu_clock_of(thread_id: int) -> Callable[[], int] | None:
    """A reader of `thread_id`'s CPU clock from another thread, where the platform has one."""
    try:
        clock_id = time.pthread_getcpuclockid(thread_id)
    except (AttributeError, OSError):
        return None
    return lambda: time.clock_gettime_ns(clock_id)


class _Heartbeat:
    """One posted heartbeat: when it was posted and when (if yet) the loop ran it."""

    __slots__ = ("cpu_posted", "cpu_ran", "posted", "ran", "samples")

    def __init__(self, posted: int, cpu_posted: int | None) -> None:
        self.posted = posted
        self.cpu_posted = cpu_posted
        self.ran = 0
        self.cpu_ran = 0
        self.samples: StackSamples | None = None

    def beat(self) -> None:
        self.ran = time.monotonic_ns()
        self.cpu_ran = time.thread_time_ns()


class Watchdog:
    """The thread that watches one event loop; `start` it on the loop's thread, `stop` anywhere."""

    def __init__(
        self,
        recorder: Recorder,
        namer: FrameNamer,
        *,
        loop: asyncio.AbstractEventLoop,
        block_ns: int,
        heartbeat: bool,
        current_request: Callable[[], str | None],
    ) -> None:
        self._recorder = recorder
        self._namer = namer
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._block_ns = block_ns
        self._sample_after_ns = block_ns // 2
        self._interval = max(block_ns / 4e9, 0.001)
        self._heartbeat = heartbeat
        self._current_request = current_request
        self._cpu_clock = _cpu_clock_of(self._loop_thread)
        self._ticks: deque[tuple[int, int]] = deque(maxlen=_TICKS_KEPT)
        self._pending: _Heartbeat | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopscope-watchdog", daemon=True)

    @property
    def loop_thread(self) -> int:
        """The ident of the thread the loop runs in."""
        return self._loop_thread

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and wait for the thread to end."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._tick()
            except Exception:
                self._recorder.errors += 1

    def _tick(self) -> None:
        now = time.monotonic_ns()
        if self._cpu_clock is not None:
            self._ticks.append((now, self._cpu_clock()))
        if self._heartbeat:
            self._watch_heartbeat(now)
        else:
            self._watch_step(now)

    def cpu_at(self, t_ns: int) -> int | None:
        """The loop thread's CPU clock at `t_ns`, interpolated between the two nearest ticks."""
        ticks = list(self._ticks)
        i = bisect.bisect_left(ticks, (t_ns, -1))
        if i == 0 or i == len(ticks):
            return None
        (t0, c0), (t1, c1) = ticks[i - 1], ticks[i]
        if t1 == t0:
            return c0
        return c0 + (c1 - c0) * (t_ns - t0) // (t1 - t0)

    def _sample_into(self, samples: StackSamples | None) -> None:
        if samples is not None:
            where, stack = self._namer.sample(self._loop_thread)
            samples.add(where, stack)

    def _watch_step(self, now: int) -> None:
        start = self._recorder.current_step
        if not start or now - start <= self._sample_after_ns:
            return
        samples = self._recorder.samples.get(start)
        if samples is None:
            samples = self._recorder.stall(start)
            if samples is not None:
                samples.cpu_start_ns = self.cpu_at(start)
        if samples is None:
            return
        where, stack = self._namer.sample(self._loop_thread)
        # The step may have ended while we looked; a late sample would blame the next step.
        if self._recorder.current_step == start:
            samples.add(where, stack)

    def _watch_heartbeat(self, now: int) -> None:
        pending = self._pending
        if pending is not None and pending.ran:
            self._finish(pending)
            pending = self._pending = None
        if pending is None:
            cpu = self._ticks[-1][1] if self._ticks else None
            pending = self._pending = _Heartbeat(now, cpu)
            try:
                self._loop.call_soon_threadsafe(pending.beat)
            except RuntimeError:  # the loop is closed: nothing left to watch
                self._stop.set()
            return
        if now - pending.posted > self._sample_after_ns:
            if pending.samples is None:
                pending.samples = StackSamples(request_id=self._current_request())
            self._sample_into(pending.samples)

    def _finish(self, pending: _Heartbeat) -> None:
        if pending.ran - pending.posted <= self._block_ns or not self._recorder.admit():
            return
        samples = pending.samples or StackSamples()
        where, stack = samples.best()
        cpu = None
        if pending.cpu_posted is not None:
            cpu = max(0, min(pending.cpu_ran - pending.cpu_posted, pending.ran - pending.posted))
        block = LoopBlock(
            start_ns=pending.posted,
            end_ns=pending.ran,
            cpu_ns=cpu,
            request_id=samples.request_id,
            where=where,
            stack=stack,
        )
        self._recorder.watch_blocks.append(block)
