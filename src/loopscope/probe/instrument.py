"""`install` the probe into this process, wrap the app with `Probe.asgi`, `collect` or `dump`.

One probe per process: its hooks are process-wide (asyncio's classes, anyio's module,
`gc.callbacks`), so a second `install` is refused rather than stacking wrappers.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from loopscope.errors import UsageError
from loopscope.probe.asgi import ASGIApp, ProbeMiddleware
from loopscope.probe.backend import load_backend
from loopscope.probe.collect import server_record
from loopscope.probe.context import REQUEST_HEADER, REQUEST_ID
from loopscope.probe.executors import ExecutorHooks
from loopscope.probe.faults import faults_from_env, recorder_class
from loopscope.probe.frames import FrameNamer
from loopscope.probe.gcwatch import GcWatch
from loopscope.probe.loop import LoopHooks
from loopscope.probe.pool import PoolHooks, ThreadLabels
from loopscope.probe.routes import route_template
from loopscope.probe.ticker import LoopTicker
from loopscope.probe.watchdog import Watchdog
from loopscope.trace.constants import DEFAULT_BLOCK_MS
from loopscope.trace.io import dump_record
from loopscope.trace.record import ServerRecord

_active: Probe | None = None
_active_lock = threading.Lock()


def loop_kind(loop: asyncio.AbstractEventLoop) -> str:
    """`asyncio` for the pure-Python loop, `uvloop` for uvloop, else the loop's class path."""
    cls = type(loop)
    if cls.__module__.split(".")[0] == "uvloop":
        return "uvloop"
    if isinstance(loop, asyncio.BaseEventLoop):
        return "asyncio"
    return f"{cls.__module__}.{cls.__qualname__}"


class Probe:
    """The probe installed in this process. Create it with `install`; see `loopscope.probe`."""

    def __init__(
        self, *, block_ms: float, precise: bool | None, max_events: int, app_root: str | None
    ) -> None:
        self.block_ms = block_ms
        # `LOOPSCOPE_PROBE_FAULTS` (tests, benchmarks) makes the recorder fail on purpose.
        self.recorder = recorder_class(faults_from_env())(max_events)
        self.task_requests: dict[asyncio.Task[Any], str] = {}
        self._wanted_precise = precise
        self._precise: bool | None = None
        self._task_steps = False  # precise by timing task steps (uvloop)
        self._ticker: LoopTicker | None = None  # blocks outside task steps (uvloop)
        self._loop_kind = "unknown"
        self._namer = FrameNamer(app_root)
        block_ns = int(block_ms * 1_000_000)
        self._block_ns = block_ns
        self._backend = load_backend()
        self._loop_hooks = LoopHooks(
            self.recorder, long_step_ns=block_ns // 2, backend=self._backend
        )
        labels = ThreadLabels()
        self._pool_hooks = PoolHooks(self.recorder, self._count_hop, self._namer, labels)
        self._executor_hooks = ExecutorHooks(self.recorder, self._namer, labels)
        self._gc = GcWatch(self.recorder)
        self._watchdog: Watchdog | None = None
        self._observed: asyncio.AbstractEventLoop | None = None
        self._observe_lock = threading.Lock()
        self._loops = 0
        # Held weakly: a loop that is gone must not be kept alive by the probe.
        self._unobserved: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._installed = False

    @property
    def installed(self) -> bool:
        """Whether the probe's hooks are in place."""
        return self._installed

    @property
    def loop(self) -> str:
        """The kind of loop observed (`asyncio`, `uvloop`, ...), `unknown` before the first call."""
        return self._loop_kind

    @property
    def precise(self) -> bool:
        """Whether loop steps are being timed: every step of the pure asyncio loop, or every
        task step under uvloop (precise not turned off)."""
        return bool(self._precise)

    def _install(self) -> None:
        try:
            if self._wanted_precise is not False:
                self._loop_hooks.install()
            self._pool_hooks.install()
            self._executor_hooks.install()
            self._gc.install()
        except BaseException:
            self._remove_hooks()
            raise
        self._installed = True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.observe_loop()

    @property
    def task_steps(self) -> bool:
        """Whether the loop steps timed are task steps (uvloop), the watchdog beside them."""
        return self._task_steps

    @property
    def tracks_tasks(self) -> bool:
        """Whether the middleware must map tasks to requests: only the heartbeat watchdog
        (uvloop) needs it, as it cannot read a handle's context."""
        return self._observed is not None and not self._precise

    @property
    def step_clock(self) -> Any:
        """Whose `current_step` is the start of the loop step now running (0 between steps)."""
        return self._loop_hooks.clock

    @property
    def compiled(self) -> bool:
        """Whether the hot paths run in C (`loopscope.probe._speedups`), else in Python."""
        return self._loop_hooks.compiled

    def observe_loop(self) -> None:
        """Watch the running loop, if it is not the one watched already.

        Called by the middleware whenever a call arrives on another loop than the last one it
        saw (every first call of a loop: the lifespan's, or a request's where no lifespan came,
        as under httpx's `ASGITransport`), on the loop's thread. A process may run many loops
        one after another (`asyncio.run` in a row, pytest's loop per test): each new one is
        watched in its turn. A loop that starts while the watched one still runs (two loops in
        two threads at once) is counted in `unobserved_loops` and not watched: the step hooks
        and the watchdog follow one loop at a time.
        """
        if not self._installed:
            return
        loop = asyncio.get_running_loop()
        with self._observe_lock:
            old = self._observed
            if loop is old:
                return
            if old is not None and old.is_running() and not old.is_closed():
                if loop not in self._unobserved:
                    self._unobserved.add(loop)
                return
            if self._watchdog is not None:
                self._watchdog.stop()
                self._watchdog = None
            self._observed = loop
            self._loops += 1
            kind = loop_kind(loop)
            self._loop_kind = kind if self._loop_kind in ("unknown", kind) else "mixed"
            self._loop_hooks.unwatch_tasks()
            self._precise = kind == "asyncio" and self._wanted_precise is not False
            # uvloop's handles are compiled: its tasks' steps are timed instead, and the
            # watchdog's heartbeat keeps looking for blocks outside them.
            self._task_steps = (
                kind == "uvloop"
                and self._wanted_precise is not False
                and self._loop_hooks.watch_tasks(loop)
            )
            self._loop_hooks.loop = loop if self._precise or self._task_steps else None
            if self._precise:
                self._loop_hooks.adopt_running_step()
            self._precise = self._precise or self._task_steps
            if self._ticker is not None:
                self._ticker.stop()
                self._ticker = None
            if self._task_steps:
                self._ticker = LoopTicker(self.recorder, loop, self._block_ns)
                self._ticker.start()
            self._gc.thread_id = threading.get_ident()
            self._watchdog = Watchdog(
                self.recorder,
                self._namer,
                loop=loop,
                block_ns=self._block_ns,
                heartbeat=not self._precise,
                current_request=self._current_request,
                step_clock=self._loop_hooks.clock,
                backend=self._backend,
            )
            self._watchdog.start()

    @property
    def observed_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop being watched now, `None` before the first ASGI call."""
        return self._observed

    @property
    def loops_observed(self) -> int:
        """How many event loops have been watched, one after another."""
        return self._loops

    @property
    def unobserved_loops(self) -> int:
        """Loops that served the app while another was watched (not recorded)."""
        return len(self._unobserved)

    def _current_request(self) -> str | None:
        """The request of the task the loop is running; read from the watchdog thread."""
        loop = self._observed
        if loop is None:
            return None
        task = asyncio.current_task(loop)
        return self.task_requests.get(task) if task is not None else None

    def _count_hop(self, request_id: str) -> None:
        hops = self.recorder.pool_hops
        hops[request_id] = hops.get(request_id, 0) + 1

    def asgi(self, app: ASGIApp, on_shutdown: Callable[[], None] | None = None) -> ASGIApp:
        """`app` wrapped in the probe's middleware: request ids and server-side times.

        `on_shutdown` (e.g. a `dump`) runs once the app's lifespan has shut down, the last moment
        a uvicorn worker is sure to reach; it must not raise.
        """
        watcher = self._backend.RequestWatcher(
            self.recorder, REQUEST_ID, self.step_clock, REQUEST_HEADER, route_template
        )
        return ProbeMiddleware(app, self, watcher, on_shutdown).wrap(self._backend)

    def collect(self) -> ServerRecord:
        """What the probe recorded in this process (see `loopscope.probe`)."""
        return server_record(
            self.recorder,
            pid=os.getpid(),
            loop=self._loop_kind,
            precise=self.precise,
            task_steps=self._task_steps,
            block_ms=self.block_ms,
            loops=self._loops,
            unobserved_loops=self.unobserved_loops,
        )

    def dump(self, path: str | Path) -> Path:
        """Write `collect()` to `path` as JSON (atomically) and return the path."""
        return dump_record(self.collect(), path)

    def _remove_hooks(self) -> None:
        self._loop_hooks.uninstall()
        self._pool_hooks.uninstall()
        self._executor_hooks.uninstall()
        self._gc.uninstall()

    def uninstall(self) -> None:
        """Stop the watchdog and restore every patched attribute; the records stay readable."""
        global _active
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._ticker is not None:
            self._ticker.stop()
        self._remove_hooks()
        self._installed = False
        with _active_lock:
            if _active is self:
                _active = None

    def __enter__(self) -> Probe:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()


def install(
    *,
    block_ms: float = DEFAULT_BLOCK_MS,
    precise: bool | None = None,
    max_events: int = 200_000,
    app_root: str | None = None,
) -> Probe:
    """Install the probe in this process and return it; undo with `Probe.uninstall()`.

    `block_ms` is the threshold above which the loop counts as blocked. `precise=None` times
    every loop step when the app runs on the pure asyncio loop and falls back to the watchdog's
    heartbeat under uvloop; `False` forces the heartbeat. `max_events` bounds what is stored.
    `app_root` is where the app's source lives, for relative `path:line` locations.
    Raises `UsageError` when a probe is already installed or a setting is out of range.
    """
    global _active
    if not block_ms > 0:
        raise UsageError(f"block_ms must be positive, got {block_ms!r}.")
    if max_events < 0:
        raise UsageError(f"max_events must be 0 or more, got {max_events!r}.")
    with _active_lock:
        if _active is not None:
            raise UsageError(
                "The loopscope probe is already installed in this process. "
                "Call `uninstall()` on the installed probe before installing another."
            )
        probe = Probe(block_ms=block_ms, precise=precise, max_events=max_events, app_root=app_root)
        probe._install()
        _active = probe
    return probe


def active_probe() -> Probe | None:
    """The probe installed in this process, if any."""
    return _active
