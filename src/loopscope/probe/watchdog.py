"""The watchdog thread: notices a loop that has stopped turning and samples what it is doing.

It wakes every half (precise mode) or quarter (heartbeat mode) of the block threshold and does
one of two things:

- precise mode (steps are timed by `loopscope.probe.loop`): if the step now running started
  more than half the threshold ago, sample the loop thread's stack into the stall's
  `StackSamples`; the step's end, recorded by the wrapper, decides later whether it was a block.
- heartbeat mode (uvloop, or precise mode turned off): post a callback with
  `call_soon_threadsafe`; if it has not run within half the threshold, sample; once it runs
  later than the threshold, record a `LoopBlock` from the post to the run, split where the
  sampled request changed. A stall that holds the GIL starves this thread too, so it is
  recognised afterwards: the watchdog woke late while the loop thread's CPU clock ran on.

Sampling reads `sys._current_frames()`, which costs the loop nothing (NOTES: ~0). The watchdog
also reads the loop thread's CPU clock on every tick so that a stall's CPU time can be measured
without the loop thread paying for a system call on every step.

In precise mode the ticks are the backend's `StallGate` (`loopscope.probe.backend`): in C they
run without the GIL, and the thread takes the GIL only to sample a step that has run long (a
Python tick every 10 ms made the busy loop thread hand the GIL over each time, which cost a busy
server about 2.5% of its throughput, `make bench`); the Python twin ticks in Python.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import Any

from loopscope.probe.frames import FrameNamer
from loopscope.probe.recorder import Recorder, StackSamples
from loopscope.probe.runqueue import ProcessRunQueue
from loopscope.trace.model import LoopBlock

# Enough ticks to look back past the start of a stall that is noticed half a threshold late.
_TICKS_KEPT = 64


def _cpu_clock_id(thread_id: int) -> int | None:
    """The id of `thread_id`'s CPU clock, readable from another thread, where the platform has
    one."""
    try:
        return time.pthread_getcpuclockid(thread_id)
    except (AttributeError, OSError):
        return None


class _Stretch:
    """Consecutive samples of a stuck loop that found it running the same request."""

    __slots__ = ("first_cpu", "first_ns", "last_cpu", "last_ns", "samples")

    def __init__(self, now: int, cpu: int | None, request_id: str | None) -> None:
        self.first_ns = self.last_ns = now
        self.first_cpu = self.last_cpu = cpu
        self.samples = StackSamples(request_id=request_id)


class _Heartbeat:
    """One posted heartbeat: when it was posted, when (if yet) the loop ran it, what was seen."""

    __slots__ = ("cpu_posted", "cpu_ran", "posted", "ran", "stretches")

    def __init__(self, posted: int, cpu_posted: int | None) -> None:
        self.posted = posted
        self.cpu_posted = cpu_posted
        self.ran = 0
        self.cpu_ran = 0
        self.stretches: list[_Stretch] = []

    def beat(self) -> None:
        self.cpu_ran = time.thread_time_ns()
        self.ran = time.monotonic_ns()


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
        step_clock: Any = None,
        backend: ModuleType | None = None,
    ) -> None:
        self._recorder = recorder
        # Whose `current_step` is the running step's start (the C step hook or the recorder).
        self._clock = step_clock if step_clock is not None else recorder
        self._namer = namer
        self._loop = loop
        self._loop_thread = threading.get_ident()
        # Read only while the loop is stuck: a file read is too dear for every tick.
        # The loop thread's run-queue delay and every thread's, read together while the loop
        # is stuck (files kept open: opening one costs 35-70 µs here).
        self._loop_native_id = threading.get_native_id()
        self._runq = ProcessRunQueue()
        self._block_ns = block_ns
        self._sample_after_ns = block_ns // 2
        # Precise mode only has to catch a step between half the threshold and the threshold:
        # a tick every half threshold always lands there, and each tick costs the loop a GIL
        # hand-over. The heartbeat needs finer ticks to time the loop's turns.
        self._interval = max(block_ns / (4e9 if heartbeat else 2e9), 0.001)
        self._heartbeat = heartbeat
        self._current_request = current_request
        clock_id = _cpu_clock_id(self._loop_thread)
        self._cpu_clock: Callable[[], int] | None = None
        if clock_id is not None:
            self._cpu_clock = lambda: time.clock_gettime_ns(clock_id)
        self._ticks: deque[tuple[int, int]] = deque(maxlen=_TICKS_KEPT)
        self._gate = None
        if not heartbeat:
            if backend is None or step_clock is None:
                raise ValueError("precise mode needs the backend and its step hook")
            self._gate = backend.StallGate(
                step_clock, int(self._interval * 1e9), self._sample_after_ns, clock_id
            )
        self._first_tick: tuple[int, int] | None = None
        self._pending: _Heartbeat | None = None
        self._last_turn: tuple[int, int] = (0, 0)  # last heartbeat run: (wall, loop CPU)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopscope-watchdog", daemon=True)

    def start(self) -> None:
        """Start watching (on the loop's thread)."""
        if threading.get_ident() == self._loop_thread:
            # The loop thread's own CPU clock now is the first tick: the step that is running
            # (a loop's first ASGI call runs inside one, and may block it) then has a CPU start
            # too, where the ticks begin only an interval later. A new loop per request (a
            # `TestClient` without `with`, a test's own loop) has no other step to time.
            self._first_tick = (time.monotonic_ns(), time.thread_time_ns())
        self._thread.start()

    @property
    def gated(self) -> bool:
        """Whether quiet ticks are the backend's `StallGate` (precise mode)."""
        return self._gate is not None

    def stop(self) -> None:
        """Stop watching and wait for the thread to end.

        In heartbeat mode a late heartbeat is recorded as a block on the tick after it ran;
        stopping right after a block (a test that ends with its request) must not lose it, so
        the heartbeat in flight is given up to a threshold to run, and finished here.
        """
        pending = self._pending
        waits = threading.get_ident() != self._loop_thread and not self._stop.is_set()
        if pending is not None and waits and self._loop.is_running():
            deadline = time.monotonic_ns() + self._block_ns
            while not pending.ran and time.monotonic_ns() < deadline:
                time.sleep(0.001)
        self._stop.set()
        if self._gate is not None:
            self._gate.stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if not self._thread.is_alive():
            self._runq.close()  # the files it keeps open (only its thread reads them)
        pending = self._pending
        if pending is not None and pending.ran and not self._thread.is_alive():
            self._pending = None
            try:
                self._finish(pending)
            except Exception as exc:
                self._recorder.fail("watchdog", exc)

    def _run(self) -> None:
        if self._gate is not None:
            while (now := self._gate.wait()) is not None:
                try:
                    self._watch_step(now)
                except Exception as exc:
                    self._recorder.fail("watchdog", exc)
            return
        while not self._stop.wait(self._interval):
            try:
                self._tick()
            except Exception as exc:
                self._recorder.fail("watchdog", exc)

    def _tick(self) -> None:
        now = time.monotonic_ns()
        cpu = None
        if self._cpu_clock is not None:
            cpu = self._cpu_clock()
            self._ticks.append((now, cpu))
        self._watch_heartbeat(now, cpu)

    def cpu_at(self, t_ns: int) -> int | None:
        """The loop thread's CPU clock at `t_ns`, interpolated between the two nearest ticks
        (the first tick taken on the loop thread when watching began)."""
        first = self._first_tick
        if first is not None and t_ns <= first[0]:
            # Only the step that was running when watching began starts before the first
            # tick; it ran all along, so its CPU clock at `t_ns` was at most that much lower.
            return max(0, first[1] - (first[0] - t_ns))
        ticks = self._gate.ticks() if self._gate is not None else list(self._ticks)
        if first is not None and len(ticks) < _TICKS_KEPT:
            ticks.insert(0, first)
        i = bisect.bisect_left(ticks, (t_ns, -1))
        if i == 0 or i == len(ticks):
            return None
        (t0, c0), (t1, c1) = ticks[i - 1], ticks[i]
        if t1 == t0:
            return c0
        return c0 + (c1 - c0) * (t_ns - t0) // (t1 - t0)

    def _sample_into(self, samples: StackSamples | None) -> None:
        if samples is not None:
            samples.add(*self._namer.sample(self._loop_thread), t_ns=time.monotonic_ns())

    def _watch_step(self, now: int) -> None:
        start = self._clock.current_step
        if not start or now - start <= self._sample_after_ns:
            return
        samples = self._recorder.samples.get(start)
        if samples is None:
            samples = self._recorder.stall(start)
            if samples is not None:
                samples.cpu_start_ns = self.cpu_at(start)
        if samples is None:
            return
        frames = self._namer.snapshot(self._loop_thread)
        # The step may have ended before we looked; a late sample would blame the next step.
        # Checked right after the snapshot, which holds the GIL throughout: naming the frames
        # and reading the run queue may let go of it, and a CPU-bound step then takes it back
        # for a switch interval each time, long enough for the step to end meanwhile.
        if self._clock.current_step != start:
            return
        where, stack, inner = self._namer.describe_snapshot(frames)
        samples.add(where, stack, inner, now)
        loop_runq, process_runq = self._runq.thread_and_total(self._loop_native_id)
        samples.note_runq(now, loop_runq)
        samples.note_process_cpu(now, time.process_time_ns())
        samples.note_process_runq(now, process_runq)

    def _watch_heartbeat(self, now: int, cpu: int | None) -> None:
        pending = self._pending
        if pending is not None and pending.ran:
            self._finish(pending)
            self._last_turn = (pending.ran, pending.cpu_ran)
            pending = self._pending = None
        if pending is None:
            self._check_gil_stall(now, cpu)
            pending = self._pending = _Heartbeat(now, cpu)
            try:
                self._loop.call_soon_threadsafe(pending.beat)
            except RuntimeError:  # the loop is closed: nothing left to watch
                self._stop.set()
            return
        if now - pending.posted > self._sample_after_ns:
            request_id = self._current_request()
            stretches = pending.stretches
            if not stretches or stretches[-1].samples.request_id != request_id:
                stretches.append(_Stretch(now, cpu, request_id))
            stretch = stretches[-1]
            stretch.last_ns, stretch.last_cpu = now, cpu
            self._sample_into(stretch.samples)
            loop_runq, process_runq = self._runq.thread_and_total(self._loop_native_id)
            stretch.samples.note_runq(now, loop_runq)
            stretch.samples.note_process_cpu(now, time.process_time_ns())
            stretch.samples.note_process_runq(now, process_runq)

    def _check_gil_stall(self, now: int, cpu: int | None) -> None:
        """Catch a stall that held the GIL (a big GC, a C extension) and so starved this thread.

        No heartbeat can be posted while the loop thread holds the GIL, so the stall shows only
        as this thread waking late while the loop thread's CPU clock ran on.
        """
        turned, cpu_turned = self._last_turn
        if not turned or cpu is None or now - turned <= self._block_ns:
            return
        if (cpu - cpu_turned) * 2 < now - turned or not self._recorder.admit():
            return
        samples = StackSamples(request_id=self._current_request())
        self._sample_into(samples)
        where, stack, inner = samples.best()
        block = LoopBlock(
            turned, now, cpu - cpu_turned, samples.request_id, where, stack, inner=inner
        )
        self._recorder.watch_blocks.append(block)

    def _finish(self, pending: _Heartbeat) -> None:
        """Record the blocks of a heartbeat that ran late, one per request seen meanwhile."""
        if pending.ran - pending.posted <= self._block_ns:
            return
        stretches = pending.stretches or [_Stretch(pending.posted, pending.cpu_posted, None)]
        bounds: list[tuple[int, int | None]] = [(pending.posted, pending.cpu_posted)]
        for before, after in itertools.pairwise(stretches):
            # The request changed somewhere between two samples: split halfway.
            middle = (before.last_ns + after.first_ns) // 2
            cpu = None
            if before.last_cpu is not None and after.first_cpu is not None:
                cpu = (before.last_cpu + after.first_cpu) // 2
            bounds.append((middle, cpu))
        bounds.append((pending.ran, pending.cpu_ran))
        for stretch, (start, cpu_start), (end, cpu_end) in zip(
            stretches, bounds, bounds[1:], strict=False
        ):
            if end - start <= self._block_ns or not self._recorder.admit():
                continue
            cpu = None
            if cpu_start is not None and cpu_end is not None:
                cpu = max(0, min(cpu_end - cpu_start, end - start))
            # A sample in the last tick before the heartbeat ran may have caught the loop after
            # the stall, running whatever came next: it names no culprit.
            late = pending.ran - int(self._interval * 1e9)
            where, stack, inner = stretch.samples.best(before_ns=late)
            runnable = stretch.samples.runnable_ns(start, end)
            process_cpu = stretch.samples.process_cpu_ns(start, end, os.cpu_count() or 1)
            if runnable is not None and cpu is not None:
                runnable = min(runnable, end - start - cpu)
            block = LoopBlock(
                start,
                end,
                cpu,
                stretch.samples.request_id,
                where,
                stack,
                runnable_ns=runnable,
                inner=inner,
                process_cpu_ns=process_cpu,
                process_runnable_ns=stretch.samples.process_runnable_ns(start, end),
            )
            self._recorder.watch_blocks.append(block)
