"""Precise mode: time every step of the pure-asyncio event loop and note when it became ready.

Two class attributes of asyncio are wrapped while the probe is installed:

- `asyncio.events.Handle._run` (also `TimerHandle`'s): one loop step. The wrapper takes two
  `time.monotonic_ns()` stamps and reads the request id from the context the handle carries.
  It is the hot path (`make bench` measures it), so it does not read the thread CPU clock, a
  system call that costs about 1 µs here; it reads it only at the end of a step that ran long,
  and the watchdog supplies the CPU clock at the step's start.
- `BaseEventLoop._call_soon` (behind `call_soon` and `call_soon_threadsafe`): stamp the moment
  a request's handle became runnable. Timer handles need no stamp: their `_when` is
  `loop.time()`, which is `time.monotonic()`, the same clock. I/O callbacks (`_add_callback`)
  are not stamped: they run in the context of whoever opened the connection, not of the request
  waiting on it, and the request's own wake-up goes through `call_soon`.

uvloop's `Handle` is compiled, so none of this sees anything there; the watchdog's heartbeat
takes over (`loopscope.probe.watchdog`).
"""

from __future__ import annotations

import asyncio
import time
from asyncio import base_events, events
from collections.abc import Callable
from typing import Any

from loopscope.probe.context import REQUEST_ID
from loopscope.probe.recorder import STAMP_LIMIT, Recorder

_PATCHES: tuple[tuple[type, str], ...] = (
    (events.Handle, "_run"),
    (base_events.BaseEventLoop, "_call_soon"),
)
# Steps take their events from the recorder's budget this many at a time, so that the hot path
# checks a local count instead of the shared one.
_BUDGET_CHUNK = 256


class LoopHooks:
    """The wrappers around asyncio's handle execution, and their exact undoing.

    Steps are recorded only for `loop` (set by the probe once it has seen the app's loop and
    decided on precise mode), so other loops in the process cost one identity check per step.
    """

    def __init__(self, recorder: Recorder, *, long_step_ns: int) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._recorder = recorder
        self._long_step_ns = long_step_ns
        self._originals: dict[tuple[type, str], Any] = {}

    @property
    def installed(self) -> bool:
        """Whether the wrappers are in place."""
        return bool(self._originals)

    def install(self) -> None:
        """Put the wrappers in place, remembering the exact objects they replace."""
        makers: dict[str, Callable[[Any], Any]] = {
            "_run": self._wrap_run,
            "_call_soon": self._wrap_call_soon,
        }
        for owner, name in _PATCHES:
            # From `__dict__`, not getattr: restoring must put back the very same object.
            original = owner.__dict__[name]
            self._originals[(owner, name)] = original
            setattr(owner, name, makers[name](original))

    def uninstall(self) -> None:
        """Restore every wrapped attribute to the object it was before `install`."""
        for (owner, name), original in self._originals.items():
            setattr(owner, name, original)
        self._originals.clear()
        self.loop = None

    def _wrap_run(self, original: Callable[[events.Handle], None]) -> Callable[..., None]:
        hooks = self
        rec = self._recorder
        append = rec.steps.append
        pop_stamp = rec.stamps.pop
        wall = time.monotonic_ns
        thread_cpu = time.thread_time_ns
        var = REQUEST_ID
        timer_handle = events.TimerHandle
        long_ns = self._long_step_ns
        room = 0  # events taken from the recorder's budget and not used yet

        def _run(handle: Any) -> None:
            nonlocal room
            if handle._loop is not hooks.loop:
                original(handle)
                return
            request_id = handle._context.get(var)
            start = wall()
            rec.current_step = start
            try:
                original(handle)
            finally:
                end = wall()
                rec.current_step = 0
                try:
                    cpu_end = thread_cpu() if end - start > long_ns else 0
                    ready = 0
                    if request_id is not None:
                        stamp = pop_stamp(id(handle), None)
                        if stamp is not None:
                            ready = stamp[0]
                        elif type(handle) is timer_handle:
                            ready = int(handle.when() * 1e9)
                    if room or (room := rec.take(_BUDGET_CHUNK)):
                        room -= 1
                        append((start, end, cpu_end, request_id, ready))
                    else:
                        rec.dropped += 1
                except Exception:
                    rec.errors += 1

        return _run

    def _wrap_call_soon(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self
        rec = self._recorder
        stamps = rec.stamps
        wall = time.monotonic_ns
        var = REQUEST_ID

        def _call_soon(loop: Any, callback: Any, args: Any, context: Any) -> Any:
            handle = original(loop, callback, args, context)
            try:
                if loop is hooks.loop and handle._context.get(var) is not None:
                    if len(stamps) > STAMP_LIMIT:
                        stamps.clear()
                    # The handle itself is kept so its id cannot be reused while stamped.
                    stamps[id(handle)] = (wall(), handle)
            except Exception:
                rec.errors += 1
            return handle

        return _call_soon
