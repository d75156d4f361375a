"""Every other thread a request waits on: executors and drivers' own threads.

anyio's thread pool is seen by `loopscope.probe.pool`. Two more roads lead to a worker thread:

- `concurrent.futures.ThreadPoolExecutor.submit`, behind `asyncio.to_thread`,
  `loop.run_in_executor(None, ...)` (the loop's default executor) and an app's own executor
  (`run_in_executor(reports_pool, ...)`). The request is read at submit time, on the loop, from
  the submitting task's context (`run_in_executor` does not copy it into the thread;
  `to_thread` does, and reads the same).
- aiosqlite's `Connection._execute`: each connection runs its calls one at a time on its own
  thread, fed by a queue; a call waits there behind the connection's earlier calls.

Each trip becomes a `PoolCall` with the executor's name (its `thread_name_prefix`, or
`aiosqlite`) and capacity, timed in the thread (start, end, thread CPU). A class attribute is
replaced, so a subclass that overrides `submit` is not seen.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import time
from collections.abc import Callable
from typing import Any

from loopscope.probe.context import REQUEST_ID
from loopscope.probe.frames import FrameNamer
from loopscope.probe.pool import ThreadLabels, defined_at, describe_callable
from loopscope.probe.recorder import Recorder
from loopscope.probe.runqueue import RUN_QUEUE
from loopscope.trace.constants import AIOSQLITE_EXECUTOR
from loopscope.trace.model import PoolCall

AIOSQLITE = AIOSQLITE_EXECUTOR
"""The executor name of aiosqlite's per-connection threads."""


def offloaded(func: Callable[..., Any]) -> Callable[..., Any]:
    """What really runs: `asyncio.to_thread` submits `partial(context.run, func, ...)`."""
    while isinstance(func, functools.partial):
        run = func.func
        if isinstance(getattr(run, "__self__", None), contextvars.Context) and func.args:
            func = func.args[0]
        else:
            func = func.func
    return func


def executor_name(executor: concurrent.futures.ThreadPoolExecutor) -> str:
    """The executor's `thread_name_prefix` (`reports`; `asyncio` for asyncio's default one;
    `ThreadPoolExecutor-<n>` where none was given)."""
    return str(getattr(executor, "_thread_name_prefix", "") or type(executor).__name__)


class ExecutorHooks:
    """The wrappers around `ThreadPoolExecutor.submit` and aiosqlite's `Connection._execute`,
    and their exact undoing."""

    def __init__(self, recorder: Recorder, namer: FrameNamer | None, labels: ThreadLabels) -> None:
        self._recorder = recorder
        self._namer = namer
        self._labels = labels
        self._originals: dict[tuple[type, str], Any] = {}

    @property
    def installed(self) -> bool:
        """Whether any wrapper is in place."""
        return bool(self._originals)

    def install(self) -> None:
        """Put the wrappers in place (aiosqlite's only where it is installed)."""
        pool = concurrent.futures.ThreadPoolExecutor
        self._replace(pool, "submit", self._wrap_submit(pool.__dict__["submit"]))
        try:
            from aiosqlite.core import Connection
        except ImportError:
            return
        self._replace(Connection, "_execute", self._wrap_execute(Connection.__dict__["_execute"]))

    def uninstall(self) -> None:
        """Restore every wrapped attribute to the very object it was."""
        for (owner, name), original in self._originals.items():
            setattr(owner, name, original)
        self._originals.clear()

    def _replace(self, owner: type, name: str, wrapper: Any) -> None:
        self._originals[(owner, name)] = owner.__dict__[name]
        setattr(owner, name, wrapper)

    def _begin(self, func: Callable[..., Any], executor: str, capacity: int | None) -> PoolCall:
        real = offloaded(func)
        call = PoolCall(
            request_id=REQUEST_ID.get(),
            func=describe_callable(real),
            submitted_ns=time.monotonic_ns(),
            started_ns=None,
            finished_ns=None,
            thread=None,
            where=defined_at(real, self._namer),
            executor=executor,
            capacity=capacity,
        )
        self._recorder.pool.append(call)
        return call

    def _timed(self, func: Callable[..., Any], call: PoolCall) -> Callable[..., Any]:
        labels = self._labels
        rec = self._recorder

        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu_start = 0
            runq_start: int | None = None
            try:
                call.started_ns = time.monotonic_ns()
                cpu_start = time.thread_time_ns()
                runq_start = RUN_QUEUE.read()
                call.thread = labels.current(numbered=False)
            except Exception as exc:
                rec.fail("executor", exc)
            try:
                return func(*args, **kwargs)
            finally:
                try:
                    call.cpu_ns = time.thread_time_ns() - cpu_start
                    runq_end = RUN_QUEUE.read()
                    call.finished_ns = time.monotonic_ns()
                    if runq_start is not None and runq_end is not None:
                        call.runnable_ns = runq_end - runq_start
                except Exception as exc:
                    rec.fail("executor", exc)

        return timed

    def _trip(
        self, func: Callable[..., Any], executor: Callable[[], str], capacity: int | None
    ) -> Callable[..., Any]:
        """`func` timed as a new trip, or `func` itself past the budget or on a failure."""
        try:
            if self._recorder.admit():
                return self._timed(func, self._begin(func, executor(), capacity))
        except Exception as exc:
            self._recorder.fail("executor", exc)
        return func

    def _wrap_submit(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        @functools.wraps(original)
        def submit(executor: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            capacity = getattr(executor, "_max_workers", None)
            target = hooks._trip(
                fn,
                lambda: executor_name(executor),
                capacity if isinstance(capacity, int) else None,
            )
            return original(executor, target, *args, **kwargs)

        return submit

    def _wrap_execute(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        @functools.wraps(original)
        async def _execute(connection: Any, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
            # One thread per connection, fed by a queue: a call waits there behind the
            # connection's earlier calls.
            target = hooks._trip(fn, lambda: AIOSQLITE, 1)
            return await original(connection, target, *args, **kw)

        return _execute
