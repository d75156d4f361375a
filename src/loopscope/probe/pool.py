"""Thread-pool trips: how long each call waited for a token and a thread, and how long it ran.

Starlette and FastAPI look up `anyio.to_thread.run_sync` as a module attribute at call time
(`starlette/concurrency.py`, `fastapi/concurrency.py`, `starlette/responses.py`), so replacing that
attribute sees every `def` endpoint, sync dependency, sync background task and file response.
Code that imported `run_sync` by name before the probe was installed is not seen;
`asyncio.to_thread`, `loop.run_in_executor` and aiosqlite's threads are
`loopscope.probe.executors`'.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any
from warnings import warn

import anyio.to_thread

from loopscope.probe.context import REQUEST_ID
from loopscope.probe.frames import FrameNamer
from loopscope.probe.recorder import Recorder
from loopscope.probe.runqueue import RUN_QUEUE
from loopscope.trace.model import PoolCall, PoolSample


def unwrap_callable(func: Callable[..., Any]) -> Callable[..., Any]:
    """What really runs in the thread: FastAPI's endpoint, not the partial around it."""
    while isinstance(func, functools.partial):
        # fastapi.routing passes `partial(_run_sync_endpoint, function=endpoint, ...)`.
        inner = func.keywords.get("function")
        func = inner if callable(inner) else func.func
    return func


def describe_callable(func: Callable[..., Any]) -> str:
    """A readable name for what runs in the thread: FastAPI's endpoint, not its wrapper."""
    func = unwrap_callable(func)
    module = getattr(func, "__module__", None) or ""
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{name}" if module else name


def defined_at(func: Callable[..., Any], namer: FrameNamer | None) -> str | None:
    """Where the function that runs in the thread is defined (`users.py:42`), if it is the
    app's or an installed library's code."""
    if namer is None:
        return None
    code = getattr(unwrap_callable(func), "__code__", None)
    if code is None:
        return None
    path = namer.display_path(code.co_filename) or namer.library_path(code.co_filename)
    return f"{path}:{code.co_firstlineno}" if path else None


class ThreadLabels:
    """Unique lane names for threads: anyio names every worker "AnyIO worker thread"."""

    def __init__(self) -> None:
        self._labels: weakref.WeakKeyDictionary[threading.Thread, str] = weakref.WeakKeyDictionary()
        self._given: set[str] = set()
        self._counter = itertools.count(1)
        self._lock = threading.Lock()  # called from many worker threads at once

    def current(self, *, numbered: bool = True) -> str:
        """The label of the calling thread: `<name> #<n>`, or with `numbered=False` its own
        name (an executor's `reports_0`) unless another thread had that name already."""
        thread = threading.current_thread()
        label = self._labels.get(thread)
        if label is None:
            with self._lock:
                if numbered or thread.name in self._given:
                    label = f"{thread.name} #{next(self._counter)}"
                else:
                    label = thread.name
                self._given.add(label)
                self._labels[thread] = label
        return label


class PoolHooks:
    """The wrapper around `anyio.to_thread.run_sync`, and its exact undoing."""

    def __init__(
        self,
        recorder: Recorder,
        requests_hop: Callable[[str], None],
        namer: FrameNamer | None = None,
        labels: ThreadLabels | None = None,
    ) -> None:
        self._recorder = recorder
        self._count_hop = requests_hop
        self._namer = namer
        self._labels = labels if labels is not None else ThreadLabels()
        self._original: Any = None

    @property
    def installed(self) -> bool:
        """Whether the wrapper is in place."""
        return self._original is not None

    def install(self) -> None:
        """Replace `anyio.to_thread.run_sync` with the timing wrapper."""
        self._original = anyio.to_thread.__dict__["run_sync"]
        anyio.to_thread.run_sync = self._wrap(self._original)  # type: ignore[assignment]

    def uninstall(self) -> None:
        """Put the original `anyio.to_thread.run_sync` back."""
        if self._original is not None:
            anyio.to_thread.run_sync = self._original
            self._original = None

    def _sample(self, limiter: Any) -> None:
        if limiter is None:
            return
        try:
            # Called from worker threads too, where `statistics()` is unsafe: it copies the
            # borrower set while the loop thread may change it. `len()` of anyio's set and wait
            # queue is atomic under the GIL.
            waiters = getattr(limiter, "_wait_queue", None)
            waiting = len(waiters) if waiters is not None else limiter.statistics().tasks_waiting
            self._recorder.add_pool_sample(
                PoolSample(
                    t_ns=time.monotonic_ns(),
                    borrowed=int(limiter.borrowed_tokens),
                    total=int(limiter.total_tokens),
                    waiting=int(waiting),
                )
            )
        except Exception as exc:
            self._recorder.fail("thread pool", exc)

    def _begin(self, func: Callable[..., Any], limiter: Any) -> tuple[PoolCall, Any] | None:
        """Record a submission (on the loop); `None` when the budget is spent."""
        request_id = REQUEST_ID.get()
        if request_id is not None:
            self._count_hop(request_id)
        if not self._recorder.admit():
            return None
        call = PoolCall(
            request_id=request_id,
            func=describe_callable(func),
            submitted_ns=time.monotonic_ns(),
            started_ns=None,
            finished_ns=None,
            thread=None,
            where=defined_at(func, self._namer),
        )
        self._recorder.pool.append(call)
        default = anyio.to_thread.current_default_thread_limiter()
        # Samples describe the default pool only; FastAPI's private CapacityLimiter(1) for
        # generator-dependency exits would mix two pools in one series.
        sampled = default if limiter is None or limiter is default else None
        self._sample(sampled)
        return call, sampled

    def _timed(self, func: Callable[..., Any], call: PoolCall, limiter: Any) -> Callable[..., Any]:
        labels = self._labels
        rec = self._recorder

        def timed(*args: Any) -> Any:
            cpu_start = 0
            runq_start: int | None = None
            try:
                call.started_ns = time.monotonic_ns()
                cpu_start = time.thread_time_ns()
                runq_start = RUN_QUEUE.read()
                call.thread = labels.current()
                self._sample(limiter)
            except Exception as exc:
                rec.fail("thread pool", exc)
            try:
                return func(*args)
            finally:
                try:
                    call.cpu_ns = time.thread_time_ns() - cpu_start
                    runq_end = RUN_QUEUE.read()
                    call.finished_ns = time.monotonic_ns()
                    if runq_start is not None and runq_end is not None:
                        call.runnable_ns = runq_end - runq_start
                    self._sample(limiter)
                except Exception as exc:
                    rec.fail("thread pool", exc)

        return timed

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        @functools.wraps(original)
        async def run_sync(
            func: Callable[..., Any],
            *args: Any,
            abandon_on_cancel: bool = False,
            cancellable: bool | None = None,
            limiter: Any = None,
        ) -> Any:
            if cancellable is not None:
                # Warn here, as anyio does, so the warning points at the caller, not at us.
                abandon_on_cancel = cancellable
                warn(
                    "The `cancellable=` keyword argument to `anyio.to_thread.run_sync` is "
                    "deprecated since AnyIO 4.1.0; use `abandon_on_cancel=` instead",
                    DeprecationWarning,
                    stacklevel=2,
                )
            target = func
            begun: tuple[PoolCall, Any] | None = None
            try:
                begun = hooks._begin(func, limiter)
                if begun is not None:
                    target = hooks._timed(func, *begun)
            except Exception as exc:
                hooks._recorder.fail("thread pool", exc)
            try:
                return await original(
                    target, *args, abandon_on_cancel=abandon_on_cancel, limiter=limiter
                )
            finally:
                if begun is not None:
                    begun[0].resumed_ns = time.monotonic_ns()

        return run_sync
