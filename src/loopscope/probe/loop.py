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

Both hooks exist twice, with one API: in C (`loopscope.probe._speedups`, used where it was
compiled: a Python hook costs the busy server several times more) and in Python
(`loopscope.probe._speedups_python`), the fallback and the reference the tests hold the C one
to; `loopscope.probe.backend` picks one (`LOOPSCOPE_PURE_PYTHON=1` the Python one). The C ones
do the wrapped methods' work themselves instead of calling them (each call from C into a Python
function starts a new interpreter frame, most of what they cost): `Handle._run` runs the
callback in the handle's context, and hands a callback's exception to asyncio's own
`Handle._run` to report (`callback_error_reporter`; the reported traceback has one more frame,
`_Rethrow.run`); `_call_soon` makes and queues the Handle. They do so only where the methods
are asyncio's own: another tool's wrapper installed before the probe is called as it was.

uvloop's `Handle` is compiled, so none of this sees anything there. Tasks can be seen all the
same (`watch_tasks`): a task factory wraps each new task's coroutine in the step hook's
`TimedCoroutine`, whose every `send`/`throw` (one task step) is timed and recorded like a loop
step, and `uvloop.Loop.call_soon` (a Python subclass of the compiled loop, where asyncio's
futures and tasks look it up) is replaced by `TaskSoonHook`, which notes when a request's task
became runnable. Callbacks outside tasks (protocols, transports, timers' own callbacks) stay
unseen; the watchdog's heartbeat, which keeps running under uvloop, finds their blocks.
"""

from __future__ import annotations

import asyncio
from asyncio import base_events, events
from collections.abc import Callable
from types import ModuleType
from typing import Any

from loopscope.probe.backend import PURE_PYTHON_ENV as PURE_PYTHON_ENV
from loopscope.probe.backend import is_compiled
from loopscope.probe.context import REQUEST_ID
from loopscope.probe.recorder import STAMP_LIMIT, Recorder


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


_TASK_WAKERS = ("call_soon", "call_at", "call_later")
"""uvloop.Loop's methods replaced while its task steps are timed, in the order of the
`TaskSoonHook` modes (0: call_soon, 1: call_at, 2: call_later)."""


class LoopHooks:
    """The step hooks around asyncio's handle execution, and their exact undoing.

    Steps are recorded only for `loop` (set by the probe once it has seen the app's loop and
    decided on precise mode), so other loops in the process cost a timed call per step. The
    hooks come from `backend` (`loopscope.probe.backend`): C or their Python twin, one API.
    """

    def __init__(self, recorder: Recorder, *, long_step_ns: int, backend: ModuleType) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recorder = recorder
        self._long_step_ns = long_step_ns
        self._originals: dict[tuple[type, str], Any] = {}
        self._backend = backend
        self._steps: Any = None  # the StepHook in place
        self._soon: Any = None  # the SoonHook in place
        self._task_loop: Any = None  # the loop whose task factory is ours (uvloop)
        self._factory: Any = None
        self._previous_factory: Any = None
        self._wakers_on: type | None = None  # uvloop's loop class, while its methods are hooked

    @property
    def compiled(self) -> bool:
        """Whether the C hooks are used (else their Python twin)."""
        return is_compiled(self._backend)

    @property
    def clock(self) -> Any:
        """Whose `current_step` is the start of the step now running (0 between steps): the
        step hook while it is in place, else the recorder (always 0)."""
        return self._steps if self._steps is not None else self._recorder

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop whose steps are recorded; `None` records none."""
        return self._loop

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        for hook in (self._steps, self._soon):
            if hook is not None:
                hook.loop = loop

    @property
    def installed(self) -> bool:
        """Whether the hooks are in place."""
        return bool(self._originals)

    def install(self) -> None:
        """Put the hooks in place, remembering the exact objects they replace."""
        backend = self._backend
        # From `__dict__`, not getattr: restoring must put back the very same object.
        run = events.Handle.__dict__["_run"]
        call_soon = base_events.BaseEventLoop.__dict__["_call_soon"]
        self._steps = backend.StepHook(
            run,
            callback_error_reporter(run),
            self._recorder,
            REQUEST_ID,
            events.Handle,
            events.TimerHandle,
            self._long_step_ns,
            STAMP_LIMIT,
            inline=is_asyncios_own(run, events),
        )
        # The step hook keeps the stamps the call_soon hook takes.
        self._soon = backend.SoonHook(
            call_soon, self._steps, inline=is_asyncios_own(call_soon, base_events)
        )
        for owner, name, hook in (
            (events.Handle, "_run", self._steps),
            (base_events.BaseEventLoop, "_call_soon", self._soon),
        ):
            self._originals[(owner, name)] = owner.__dict__[name]
            setattr(owner, name, hook)

    def watch_tasks(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Time every step of the tasks `loop` creates from now on (for uvloop, whose handles
        cannot be wrapped); `False` where the step hook is not in place."""
        steps = self._steps
        if steps is None:
            return False
        self.unwatch_tasks()
        previous = loop.get_task_factory()
        task_factory = self._backend.TaskFactory(steps, asyncio.Task, previous)
        loop.set_task_factory(task_factory)
        self._task_loop, self._factory, self._previous_factory = loop, task_factory, previous
        cls = type(loop)
        if all(name not in cls.__dict__ for name in _TASK_WAKERS) and hasattr(cls, "call_at"):
            # uvloop.Loop is a Python subclass of the compiled loop: the hooks are set there and
            # removed again, leaving the compiled methods untouched.
            for timer, name in enumerate(_TASK_WAKERS):
                waker = self._backend.TaskSoonHook(getattr(cls, name), steps, timer)
                waker.loop = loop
                setattr(cls, name, waker)
            self._wakers_on = cls
        return True

    def unwatch_tasks(self) -> None:
        """Put back the task factory and uvloop's `call_soon`, `call_at` and `call_later` that
        `watch_tasks` replaced."""
        loop, self._task_loop = self._task_loop, None
        if loop is not None and not loop.is_closed() and loop.get_task_factory() is self._factory:
            loop.set_task_factory(self._previous_factory)
        self._factory = self._previous_factory = None
        if self._wakers_on is not None:
            for name in _TASK_WAKERS:
                if name in self._wakers_on.__dict__:
                    delattr(self._wakers_on, name)
            self._wakers_on = None

    @property
    def watching_tasks(self) -> bool:
        """Whether task steps are being timed (`watch_tasks`)."""
        return self._task_loop is not None

    def uninstall(self) -> None:
        """Restore every hooked attribute to the object it was before `install`."""
        self.unwatch_tasks()
        for (owner, name), original in self._originals.items():
            setattr(owner, name, original)
        self._originals.clear()
        self.loop = None
        if self._steps is not None:
            self._steps.forget_stamps()  # the handles it holds belong to the app's loop
        self._steps = self._soon = None

    def adopt_running_step(self) -> None:
        """Make the step now running (of the loop just made `loop`) the current step, so that
        the watchdog watches it and it is recorded when it ends (the first ASGI call of a new
        loop runs inside one of its steps, and may block it)."""
        if self._steps is not None:
            self._steps.adopt_running_step()
