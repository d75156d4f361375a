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

Both wrappers exist twice: in C (`loopscope.probe._speedups`, used where it was compiled: a
Python wrapper costs the busy server several times more) and here in Python, the fallback and
the reference the tests hold the C one to. `LOOPSCOPE_PURE_PYTHON=1` picks the Python ones.
The C ones do the wrapped methods' work themselves instead of calling them (each call from C
into a Python function starts a new interpreter frame, most of what they cost): `Handle._run`
runs the callback in the handle's context, and hands a callback's exception to asyncio's own
`Handle._run` to report (`callback_error_reporter`; the reported traceback has one more frame,
`_Rethrow.run`); `_call_soon` makes and queues the Handle. They do so only where the methods
are asyncio's own: another tool's wrapper installed before the probe is called as it was.

uvloop's `Handle` is compiled, so none of this sees anything there; the watchdog's heartbeat
takes over (`loopscope.probe.watchdog`).
"""

from __future__ import annotations

import asyncio
import os
import time
from asyncio import base_events, events
from collections.abc import Callable
from typing import Any

from loopscope.probe.context import REQUEST_ID
from loopscope.probe.packed import STEP
from loopscope.probe.recorder import STAMP_LIMIT, Recorder

_PATCHES: tuple[tuple[type, str], ...] = (
    (events.Handle, "_run"),
    (base_events.BaseEventLoop, "_call_soon"),
)
# Steps take their events from the recorder's budget this many at a time, so that the hot path
# checks a local count instead of the shared one.
_BUDGET_CHUNK = 256

PURE_PYTHON_ENV = "LOOPSCOPE_PURE_PYTHON"


class _Rethrow:
    """A stand-in for a handle's context whose `run` raises what the callback already raised."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def run(self, callback: Any, *args: Any) -> None:
        raise self.exc


def callback_error_reporter(original: Callable[[Any], None]) -> Callable[[Any, Any], None]:
    """`report(handle, exc)` for the C step hook, which runs a handle's callback itself: it has
    asyncio's own `Handle._run` (`original`) report `exc`, the callback's exception, with the
    very message, context and handler that asyncio would use, in any Python version."""

    def report(handle: Any, exc: BaseException) -> None:
        context, args = handle._context, handle._args
        handle._context = _Rethrow(exc)
        if args is None:  # the callback cancelled its own handle (asyncio read its args before)
            handle._args = ()
        try:
            original(handle)
        finally:
            handle._context, handle._args = context, args

    return report


def is_asyncios_own(function: Any, module: Any) -> bool:
    """Whether `function` is defined in `module`'s source: asyncio's own method, not another
    tool's wrapper (which `functools.wraps` can make look like it, but not its code)."""
    code = getattr(function, "__code__", None)
    return code is not None and code.co_filename == getattr(module, "__file__", None)


def load_speedups() -> Any:
    """The C hooks, or `None` where they were not compiled or `LOOPSCOPE_PURE_PYTHON=1`."""
    if os.environ.get(PURE_PYTHON_ENV) == "1":
        return None
    try:
        from loopscope.probe import _speedups
    except ImportError:
        return None
    return _speedups


class LoopHooks:
    """The wrappers around asyncio's handle execution, and their exact undoing.

    Steps are recorded only for `loop` (set by the probe once it has seen the app's loop and
    decided on precise mode), so other loops in the process cost one identity check per step.
    """

    def __init__(self, recorder: Recorder, *, long_step_ns: int) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recorder = recorder
        self._long_step_ns = long_step_ns
        self._originals: dict[tuple[type, str], Any] = {}
        self._speedups = load_speedups()
        self._compiled: list[Any] = []  # the C hooks in place, which keep their own `loop`
        self._clock: Any = recorder

    @property
    def compiled(self) -> bool:
        """Whether the C hooks are used (else the pure-Python ones)."""
        return self._speedups is not None

    @property
    def speedups(self) -> Any:
        """The C extension module in use, `None` for pure Python."""
        return self._speedups

    @property
    def clock(self) -> Any:
        """Whose `current_step` is the start of the step now running (0 between steps): the C
        step hook where it is in place, else the recorder, which the Python hook updates."""
        return self._clock

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop whose steps are recorded; `None` records none."""
        return self._loop

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        for hook in self._compiled:
            hook.loop = loop

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
        for hook in self._compiled:
            if isinstance(hook, self._speedups.StepHook):
                hook.forget_stamps()  # the handles it holds belong to the app's loop
        self._compiled.clear()
        # Uninstalled hooks leave no step running, as the recorder says.
        self._clock = self._recorder

    def _wrap_run(self, original: Callable[[events.Handle], None]) -> Callable[..., None]:
        if self._speedups is not None:
            hook = self._speedups.StepHook(
                original,
                callback_error_reporter(original),
                self._recorder,
                REQUEST_ID,
                events.Handle,
                events.TimerHandle,
                self._long_step_ns,
                STAMP_LIMIT,
                inline=is_asyncios_own(original, events),
            )
            self._compiled.append(hook)
            self._clock = hook
            return hook  # type: ignore[no-any-return]
        hooks = self
        rec = self._recorder
        add_step = rec.steps.data.extend
        pack_step = STEP.pack
        live = rec.live
        stamps = rec.stamps
        pop_stamp = stamps.pop
        wall = time.monotonic_ns
        thread_cpu = time.thread_time_ns
        var = REQUEST_ID
        timer_handle = events.TimerHandle
        long_ns = self._long_step_ns
        room = 0  # events taken from the recorder's budget and not used yet

        def _run(handle: Any) -> None:
            nonlocal room
            if handle._loop is not hooks._loop:
                _foreign_run(handle)
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
                    ready = ref = 0
                    # Taken even when its request id was reset meanwhile, to let go of it.
                    stamp = pop_stamp(id(handle), None) if stamps else None
                    if request_id is not None:
                        row = live.get(request_id)
                        ref = row[4] if type(row) is tuple else rec.ref_of(request_id)
                        if stamp is not None:
                            ready = stamp[0]
                        elif type(handle) is timer_handle:
                            ready = int(handle.when() * 1e9)
                    if room or (room := rec.take(_BUDGET_CHUNK)):
                        room -= 1
                        add_step(pack_step(start, end, cpu_end, ref, ready))
                    else:
                        rec.dropped += 1
                except Exception as exc:
                    rec.fail("Handle._run", exc)

        def _foreign_run(handle: Any) -> None:
            # A step of a loop not watched, timed in case the probe starts watching its loop in
            # the middle of it (see `adopt_running_step`): then it is the watched loop's first.
            start = rec.foreign_step = wall()
            try:
                original(handle)
            finally:
                end = wall()
                rec.foreign_step = 0
                if handle._loop is hooks._loop:
                    rec.current_step = 0
                    try:
                        stamp = pop_stamp(id(handle), None) if stamps else None
                        del stamp  # taken to let go of it; the request id was reset already
                        if rec.take(1):
                            cpu_end = thread_cpu() if end - start > long_ns else 0
                            add_step(pack_step(start, end, cpu_end, 0, 0))
                        else:
                            rec.dropped += 1
                    except Exception as exc:
                        rec.fail("Handle._run", exc)

        return _run

    def adopt_running_step(self) -> None:
        """Make the step now running (of the loop just made `loop`) the current step, so that
        the watchdog watches it and it is recorded when it ends (the first ASGI call of a new
        loop runs inside one of its steps, and may block it)."""
        if self._compiled:
            self._compiled[0].adopt_running_step()
        else:
            self._recorder.current_step = self._recorder.foreign_step

    def _wrap_call_soon(self, original: Callable[..., Any]) -> Callable[..., Any]:
        if self._speedups is not None:
            # The C step hook keeps the stamps (in a table of its own, not `recorder.stamps`).
            hook = self._speedups.SoonHook(
                original, self._clock, inline=is_asyncios_own(original, base_events)
            )
            self._compiled.append(hook)
            return hook  # type: ignore[no-any-return]
        hooks = self
        rec = self._recorder
        stamps = rec.stamps
        wall = time.monotonic_ns
        var = REQUEST_ID

        def _call_soon(loop: Any, callback: Any, args: Any, context: Any) -> Any:
            handle = original(loop, callback, args, context)
            if handle._source_traceback:  # debug mode: this frame is not where it was made
                del handle._source_traceback[-1]
            try:
                if loop is hooks._loop and handle._context.get(var) is not None:
                    if len(stamps) > STAMP_LIMIT:
                        stamps.clear()
                    # The handle itself is kept so its id cannot be reused while stamped.
                    stamps[id(handle)] = (wall(), handle)
            except Exception as exc:
                rec.fail("_call_soon", exc)
            return handle

        return _call_soon
