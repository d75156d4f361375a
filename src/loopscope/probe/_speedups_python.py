"""The probe's hot paths in Python: the twin of the C extension `loopscope.probe._speedups`.

Every class here has the C type's name, constructor, attributes and methods, one for one (the
stub `_speedups.pyi` is the contract for both), so `loopscope.probe.backend` can hand either to
the rest of the probe. It is the fallback where the extension was not compiled, what
`LOOPSCOPE_PURE_PYTHON=1` picks, and the reference the tests hold the C one to. The C versions do
a wrapped method's work themselves to save its frame; these call the original, so `report` and
`inline` are accepted and not needed here.

Nothing here raises into the app: the probe's own failures go to `recorder.fail(hook, exc)`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from threading import get_ident
from time import monotonic_ns as _now
from types import CoroutineType, MethodType
from typing import Any

from loopscope.probe.context import client_request_id
from loopscope.probe.packed import NO_TEXT as NO_TEXT
from loopscope.probe.packed import STEP

ROUTE_SLOTS = 256
"""Route templates a `RequestWatcher` keeps, by the route object's address (direct-mapped: two
routes that meet in a slot take turns)."""

BUDGET_CHUNK = 256
"""Steps take their events from the recorder's budget this many at a time, so that the hot path
checks a local count instead of the shared one."""

TICKS_KEPT = 64
"""The watchdog ticks a `StallGate` remembers: enough to look back past the start of a stall
that is noticed half a threshold late."""


class StepHook:
    """`Handle._run`, timed: one loop step of `loop` per call, recorded in `recorder.steps`.

    Set on the class in place of the original (it binds to the handle like a method). A step of
    another loop is timed too but recorded only if the probe starts watching that loop during
    it (`adopt_running_step`).
    """

    loop: Any  # the loop whose steps are recorded; None: none
    current_step: int  # start of the step now running, 0 between steps
    foreign_step: int  # start of the running step of a loop not watched, 0 between such steps
    task_ready: dict[str, int]  # uvloop: when each request's task became runnable
    current_request: Any  # the request of the task step now running, None between
    stamp_limit: int  # past this many ready stamps, they are dropped wholesale

    def __init__(
        self,
        original: Any,
        report: Any,
        recorder: Any,
        var: Any,
        handle_type: type,
        timer_type: type,
        long_ns: int,
        stamp_limit: int,
        inline: bool = False,
    ) -> None:
        self.loop: Any = None
        self.current_step = 0
        self.foreign_step = 0
        self._step_thread = 0  # the thread that runs the step `current_step` times
        self.__wrapped__ = original
        self.recorder = recorder
        self.stamps: dict[int, tuple[int, object]] = {}  # id(handle) → (ready_ns, handle)
        self.stamp_limit = stamp_limit
        # Under uvloop: when each request's task became runnable, by request id (TaskSoonHook).
        self.task_ready: dict[str, int] = {}
        self.current_request: Any = None  # the request of the task step now running
        # Stamps noted while a task step runs, put in task_ready when it ends: most are the
        # timer a request sets as its response ends (uvicorn's keep-alive), which its finish in
        # that same step drops unused (`_forget_ready`).
        self._held: dict[str, int] = {}
        self._store: Callable[[int, int, int, int], None] = lambda *_: None
        self._run = self._make_run(original, recorder, var, timer_type, long_ns)
        self._task_step = self._make_task_step(recorder, var)

    def __get__(self, handle: Any, owner: type | None = None) -> Any:
        return self if handle is None else MethodType(self._run, handle)

    def __call__(self, handle: Any) -> None:
        self._run(handle)

    def forget_stamps(self) -> None:
        """Release every handle stamped as ready and not run yet."""
        self.stamps.clear()
        self.task_ready.clear()
        self._held.clear()

    def _stamp_ready(self, request_id: str, at: int) -> None:
        """Note that `request_id`'s task became (or may become) runnable at `at`: held back
        while a task step runs, else in `task_ready`; the earlier stamp stands."""
        if self.current_step:
            held = self._held
            stamp = held.get(request_id)
            if stamp is None or stamp > at:
                held[request_id] = at
        else:
            self._put_ready(request_id, at)

    def _put_ready(self, request_id: str, at: int) -> None:
        ready_of = self.task_ready
        stamp = ready_of.get(request_id)
        if stamp is None or stamp > at:
            if stamp is None and len(ready_of) > self.stamp_limit:
                ready_of.clear()
            ready_of[request_id] = at

    def _release_held(self) -> None:
        """The task step is over: the stamps it held back go into `task_ready`."""
        held, self._held = self._held, {}
        for request_id, at in held.items():
            self._put_ready(request_id, at)

    def _forget_ready(self, request_id: str) -> None:
        """`request_id` is over: a ready stamp of its task that no later step took is stale."""
        self._held.pop(request_id, None)
        self.task_ready.pop(request_id, None)

    def coroutine(self, coro: Any) -> TimedCoroutine:
        """`coro` wrapped so that each step of the task that runs it is timed as a loop step
        (uvloop, whose handles cannot be wrapped: a task factory wraps each task's coroutine)."""
        return TimedCoroutine(self._task_step, coro)

    def adopt_running_step(self) -> None:
        """The step now running (of a loop just chosen as `loop`) becomes the current step, to be
        recorded when it ends."""
        self._step_thread = get_ident()
        self.current_step = self.foreign_step

    def running_here(self) -> bool:
        """Whether a step of the watched loop runs now on the calling thread (the middleware
        asks it instead of asyncio for the running loop: a watched step's loop is the watched
        loop)."""
        return self.current_step != 0 and self._step_thread == get_ident()

    def _make_run(
        self, original: Any, rec: Any, var: Any, timer_type: Any, long_ns: int
    ) -> Callable[[Any], None]:
        # Everything the hot path reads is a local of the closure: no attribute lookups but the
        # hook's own `loop` and the stamps.
        hook = self
        add_step = rec.steps.data.extend
        pack_step = STEP.pack
        live = rec.live
        stamps = self.stamps
        pop_stamp = stamps.pop
        wall = time.monotonic_ns
        thread_cpu = time.thread_time_ns
        room = 0  # events taken from the recorder's budget and not used yet

        def store(start: int, end: int, ref: int, ready: int) -> None:
            nonlocal room
            cpu_end = thread_cpu() if end - start > long_ns else 0
            if room < 0:  # after a failure to take from the budget: a chunk goes unrecorded
                room += 1
                rec.unrecorded += 1
                return
            if not room:
                try:
                    room = rec.take(BUDGET_CHUNK)
                except Exception:
                    # As the C hook: one failure (counted by the caller) per chunk of steps,
                    # which are `unrecorded`, not `dropped` (the budget is not spent).
                    room = 1 - BUDGET_CHUNK
                    rec.unrecorded += 1
                    raise
                if not room:
                    rec.dropped += 1
                    return
            room -= 1
            add_step(pack_step(start, end, cpu_end, ref, ready))

        def _run(handle: Any) -> None:
            if handle._loop is not hook.loop:
                _foreign_run(handle)
                return
            request_id = handle._context.get(var)
            start = wall()
            hook._step_thread = get_ident()
            hook.current_step = start
            try:
                original(handle)
            finally:
                end = wall()
                hook.current_step = 0
                try:
                    ready = ref = 0
                    # Taken even when its request id was reset meanwhile, to let go of it.
                    stamp = pop_stamp(id(handle), None) if stamps else None
                    if request_id is not None:
                        row = live.get(request_id)
                        ref = row.serial if row is not None else rec.ref_of(request_id)
                        if stamp is not None:
                            ready = stamp[0]
                        elif type(handle) is timer_type:
                            ready = int(handle.when() * 1e9)
                    store(start, end, ref, ready)
                except Exception as exc:
                    rec.fail("Handle._run", exc)

        def _foreign_run(handle: Any) -> None:
            start = hook.foreign_step = wall()
            try:
                original(handle)
            finally:
                end = wall()
                hook.foreign_step = 0
                if handle._loop is hook.loop:  # adopted: the watched loop's first step
                    hook.current_step = 0
                    try:
                        pop_stamp(id(handle), None)
                        # The request id was set and reset inside the step: the request's first
                        # and last step attribute it.
                        store(start, end, 0, 0)
                    except Exception as exc:
                        rec.fail("Handle._run", exc)

        self._store = store
        return _run

    def _make_task_step(self, rec: Any, var: Any) -> Callable[..., Any]:
        hook = self
        live = rec.live
        ready_of = self.task_ready
        pop_ready = ready_of.pop
        wall = time.monotonic_ns

        def task_step(advance: Callable[..., Any], *args: Any) -> Any:
            if hook.loop is None:
                return advance(*args)
            request_id = var.get()
            # The request's stamp, taken before the step: what the step does (a timer it sets,
            # a future it completes) belongs to its next wake-up.
            ready = pop_ready(request_id, 0) if ready_of and request_id is not None else 0
            hook.current_request = request_id
            start = wall()
            hook._step_thread = get_ident()
            hook.current_step = start
            try:
                return advance(*args)
            finally:
                end = wall()
                hook.current_step = 0
                hook.current_request = None
                try:
                    ref = 0
                    if request_id is not None:
                        row = live.get(request_id)
                        ref = row.serial if row is not None else rec.ref_of(request_id)
                    hook._store(start, end, ref, ready)
                except Exception as exc:
                    rec.fail("task step", exc)
                if hook._held:
                    try:
                        hook._release_held()
                    except Exception as exc:
                        rec.fail("task step", exc)

        return task_step


class TimedCoroutine:
    """A task's coroutine whose every `send` and `throw` (one task step each) is timed by a
    `StepHook`; anything else is the wrapped coroutine's (`cr_frame`, `__qualname__`...)."""

    __slots__ = ("_coro", "_step")

    def __init__(self, step: Callable[..., Any], coro: Any) -> None:
        self._step = step
        self._coro = coro

    def send(self, value: Any) -> Any:
        return self._step(self._coro.send, value)

    def throw(self, *args: Any) -> Any:
        return self._step(self._coro.throw, *args)

    def close(self) -> Any:
        return self._coro.close()

    def __await__(self) -> TimedCoroutine:
        return self

    def __iter__(self) -> TimedCoroutine:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._coro, name)

    def __repr__(self) -> str:
        return repr(self._coro)


class TaskFactory:
    """A loop's task factory (`loop.set_task_factory`) that wraps each new task's native
    coroutine in `steps.coroutine(coro)`, then makes the task as `previous` (the factory the
    loop had) or `task_type` (`asyncio.Task`) would."""

    previous: Any  # the loop's task factory before, or None

    def __init__(self, steps: StepHook, task_type: Any, previous: Any = None) -> None:
        self.previous = previous
        self._wrap = steps.coroutine
        self._task_type = task_type

    def __call__(self, loop: Any, coro: Any, **kwargs: Any) -> Any:
        if type(coro) is CoroutineType:
            coro = self._wrap(coro)
        if self.previous is not None:
            return self.previous(loop, coro, **kwargs)
        return self._task_type(coro, loop=loop, **kwargs)


WAKE_SOON, WAKE_AT, WAKE_LATER = 0, 1, 2
"""What a `TaskSoonHook` replaces: `call_soon`, or a timer's `call_at` or `call_later`."""


class TaskSoonHook:
    """uvloop's `Loop.call_soon` (`timer=0`): notes when a request's task became runnable (a
    future it awaited was done, or it yielded), in the step hook's `task_ready`, by request id;
    or `call_at` (1) / `call_later` (2): notes when a timer the request set is due, the earliest
    moment its task may run again (uvloop's timers are compiled: without it a sleep that ends
    while the loop is blocked would count as awaited until the loop ran the timer). Set on
    `uvloop.Loop`, a Python subclass of the compiled loop, where asyncio's futures and tasks
    look these methods up."""

    loop: Any  # the loop whose calls are stamped

    def __init__(self, original: Any, steps: StepHook, timer: int = WAKE_SOON) -> None:
        if timer not in (WAKE_SOON, WAKE_AT, WAKE_LATER):
            raise ValueError("timer must be 0 (call_soon), 1 (call_at) or 2")
        self.loop: Any = None
        self.__wrapped__ = original
        self._call = self._make_call(original, steps, timer)
        self._bound: Any = None  # bound to `loop`, made once

    def __get__(self, loop: Any, owner: type | None = None) -> Any:
        # asyncio's futures and tasks get `loop.call_soon` for each call: for the loop watched,
        # the bound hook is made once and kept.
        if loop is None:
            return self
        if loop is not self.loop:
            return MethodType(self._call, loop)
        bound = self._bound
        if bound is None or bound.__self__ is not loop:
            bound = self._bound = MethodType(self._call, loop)
        return bound

    def __call__(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        return self._call(loop, *args, **kwargs)

    def _make_call(self, original: Any, steps: StepHook, timer: int) -> Callable[..., Any]:
        from loopscope.probe.context import REQUEST_ID

        hook = self
        wall = time.monotonic_ns
        var = REQUEST_ID

        def call(loop: Any, *args: Any, context: Any = None) -> Any:
            handle = original(loop, *args, context=context)
            try:
                if loop is hook.loop:
                    request_id = var.get() if context is None else context.get(var)
                    at = wall()
                    if timer != WAKE_SOON:
                        # A timer's `when` is loop.time(), i.e. time.monotonic(): one clock.
                        due = int(args[0] * 1e9)
                        at = due if timer == WAKE_AT else at + due
                    # The earliest call since the request's last step; none from within it
                    # but a timer's. A stamp already there may be a timer's, maybe ahead.
                    own = steps.current_step and request_id == steps.current_request
                    if request_id is not None and not (timer == WAKE_SOON and own):
                        steps._stamp_ready(request_id, at)
            except Exception as exc:
                steps.recorder.fail("call_soon", exc)
            return handle

        return call


class SoonHook:
    """`BaseEventLoop._call_soon`: notes when a request's handle on `loop` became runnable, in
    the step hook's stamps (its `ready` time)."""

    loop: Any  # the loop whose handles are stamped

    def __init__(self, original: Any, steps: StepHook, inline: bool = False) -> None:
        self.loop: Any = None
        self.__wrapped__ = original
        self._call_soon = self._make_call_soon(original, steps)

    def __get__(self, loop: Any, owner: type | None = None) -> Any:
        return self if loop is None else MethodType(self._call_soon, loop)

    def __call__(self, loop: Any, callback: Any, args: Any, context: Any) -> Any:
        return self._call_soon(loop, callback, args, context)

    def _make_call_soon(self, original: Any, steps: StepHook) -> Callable[..., Any]:
        from loopscope.probe.context import REQUEST_ID

        hook = self
        stamps = steps.stamps
        limit = steps.stamp_limit
        wall = time.monotonic_ns
        var = REQUEST_ID

        def _call_soon(loop: Any, callback: Any, args: Any, context: Any) -> Any:
            handle = original(loop, callback, args, context)
            if handle._source_traceback:  # debug mode: this frame is not where it was made
                del handle._source_traceback[-1]
            try:
                if loop is hook.loop and handle._context.get(var) is not None:
                    if len(stamps) > limit:
                        stamps.clear()
                    # The handle itself is kept so its id cannot be reused while stamped.
                    stamps[id(handle)] = (wall(), handle)
            except Exception as exc:
                steps.recorder.fail("_call_soon", exc)
            return handle

        return _call_soon


class RequestWatch:
    """One running HTTP request: the app's `send` (a call stamps the hand-over and notes the
    status, and returns the server's own awaitable) and `finish(scope)` when the app is done."""

    __slots__ = (
        "_send",
        "end",
        "first_step",
        "method",
        "path",
        "request_id",
        "serial",
        "start",
        "status",
        "token",
        "watcher",
    )

    def __init__(
        self,
        watcher: RequestWatcher,
        send: Callable[[Any], Awaitable[None]],
        request_id: str,
        method: Any,
        path: Any,
        start: int,
        first_step: int,
        serial: int,
    ) -> None:
        self.watcher = watcher
        self._send = send
        self.request_id = request_id
        self.method = method
        self.path = path
        self.start = start
        self.first_step = first_step
        self.serial = serial
        self.status: Any = None
        self.end = 0
        self.token: Token[str | None] | None = None

    @property
    def row(self) -> tuple[Any, Any, int, int, int]:
        """`(method, path, start_ns, first_step_ns, serial)`: what `Recorder.live` rows hold."""
        return (self.method, self.path, self.start, self.first_step, self.serial)

    def __call__(self, message: Any) -> Awaitable[None]:
        # Not a coroutine: handing back the server's own awaitable saves one per message. The
        # last message's hand-over is the request's end, so every message stamps it.
        self.end = _now()
        try:
            # Only the response's start tells the status: the body's messages are not looked at.
            if self.status is None and message["type"] == "http.response.start":
                self.status = message["status"]
        except Exception as exc:
            self.watcher.recorder.fail("middleware", exc)
        return self._send(message)

    def finish(self, scope: Any) -> None:
        """Store the request's row and reset the request id; call once, when the app is done."""
        watcher = self.watcher
        recorder = watcher.recorder
        template = None
        try:
            template = watcher._route_template(scope)
        except Exception as exc:
            recorder.fail("middleware", exc)
        try:
            # Stored once, while it is the running request with its id.
            if recorder.live.get(self.request_id) is self:
                end = self.end or _now()
                recorder.finished.append(
                    self.serial,
                    (self.request_id, self.method, self.path, template),
                    (self.start, self.first_step, end, watcher.clock.current_step),
                    self.status,
                )
                del recorder.live[self.request_id]
        except Exception as exc:
            recorder.fail("middleware", exc)
        # A ready stamp of the request's task that no later step took is stale (a timer set in
        # its last step, as uvicorn's keep-alive timer): kept, one per request would pile up.
        forget_ready = getattr(watcher.clock, "_forget_ready", None)
        if forget_ready is not None:
            forget_ready(self.request_id)
        if self.token is not None:
            try:
                watcher.var.reset(self.token)
            except Exception as exc:
                recorder.fail("middleware", exc)
            self.token = None


class RequestWatcher:
    """The probe middleware's per-request bookkeeping: `begin(scope, send)` numbers a request,
    gives it an id (the client's `header`, sanitized and made unique, or a generated one), sets
    `var` to it and returns its `RequestWatch`; `None` when the event budget is spent or the
    probe failed (the request then passes unrecorded). `route_of(scope)` names the route."""

    def __init__(
        self,
        recorder: Any,
        var: ContextVar[str | None],
        clock: Any,
        header: bytes,
        route_of: Callable[[Any], str | None],
    ) -> None:
        self.recorder = recorder
        self.var = var
        self.clock = clock
        self.header = header
        self.route_of = route_of
        # Route templates built so far, by the route (or FastAPI route context) object: by its
        # address, as routes compare by value and do not hash; each slot holds its object, so an
        # address is never mistaken for a freed route's.
        self._routes: list[tuple[Any, str] | None] = [None] * ROUTE_SLOTS

    def _route_template(self, scope: Any) -> Any:
        """`route_of(scope)`, kept by the route object (FastAPI's effective route context where
        there is one): a route's template does not change. Built every time where a mount added
        a prefix (`app_root_path` in the scope), which the route does not tell."""
        if type(scope) is not dict:
            return self.route_of(scope)
        route = scope.get("route")
        if route is None:  # no route matched (a 404): route_of says None
            return None
        if "app_root_path" in scope:
            return self.route_of(scope)
        key = route
        fastapi = scope.get("fastapi")
        if isinstance(fastapi, dict):
            context = fastapi.get("effective_route_context")
            if context is not None:
                key = context
        slot = (id(key) >> 4) % ROUTE_SLOTS
        known = self._routes[slot]
        if known is not None and known[0] is key:
            return known[1]
        template = self.route_of(scope)
        if type(template) is str:
            self._routes[slot] = (key, template)
        return template

    def begin(self, scope: Any, send: Any) -> RequestWatch | None:
        """A new request's `RequestWatch`, or `None` (see the class)."""
        start = _now()
        recorder = self.recorder
        # One event per request, as the C watcher takes: a small budget is shared fairly.
        if recorder.used >= recorder.capacity:
            recorder.dropped += 1
            return None
        recorder.used += 1
        try:
            serial = recorder.serial = recorder.serial + 1
            client_id = client_request_id(scope.get("headers"), self.header)
            if client_id is not None:
                taken = recorder.id_taken(client_id)
                request_id = recorder.unique_id(client_id) if taken else client_id
                recorder.named[request_id] = None
            else:
                request_id = f"{recorder.id_prefix}{serial}"
                if request_id in recorder.named:  # a client sent it before
                    request_id = recorder.unique_id(request_id)
            watch = RequestWatch(
                self,
                send,
                request_id,
                scope.get("method"),
                scope.get("path"),
                start,
                self.clock.current_step,
                serial,
            )
            recorder.live[request_id] = watch
            try:
                watch.token = self.var.set(request_id)
            except BaseException:
                # A request that never runs must not show as running forever.
                recorder.live.pop(request_id, None)
                raise
        except Exception as exc:
            recorder.fail("middleware", exc)
            return None
        return watch


class WatchedApp:
    """`app` as the probe's ASGI middleware (`loopscope.probe.asgi`): each HTTP request is
    watched by `watcher` (`begin` on the call's first step, `finish` once the app is done, in
    any way). `clock.running_here()` tells whether the loop is surely the one already seen;
    otherwise `host.check_loop()` looks, and says whether requests must be mapped to their
    tasks (`host.track(request_id)`, `host.untrack(task)`). Other scopes go to
    `host.not_http(scope, receive, send)`."""

    __slots__ = ("_on_watched_step", "_track", "_watcher", "app", "host")

    def __init__(self, app: Any, watcher: RequestWatcher, clock: Any, host: Any) -> None:
        self.app = app
        self.host = host
        self._watcher = watcher
        self._on_watched_step: Callable[[], bool] = getattr(clock, "running_here", _never)
        self._track = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        host = self.host
        if not self._on_watched_step():
            try:
                self._track = bool(host.check_loop())
            except Exception as exc:
                self._watcher.recorder.fail("middleware", exc)
        if scope.get("type") != "http":
            return await host.not_http(scope, receive, send)
        watch = self._watcher.begin(scope, send)  # never raises for a request
        if watch is None:  # the event budget is spent, or the probe failed: pass through
            return await self.app(scope, receive, send)
        task = None
        try:
            if self._track:
                try:
                    task = host.track(watch.request_id)
                except Exception as exc:
                    self._watcher.recorder.fail("middleware", exc)
            return await self.app(scope, receive, watch)
        finally:
            watch.finish(scope)
            if task is not None:
                host.untrack(task)


def _never() -> bool:
    return False


class StallGate:
    """The precise-mode watchdog's wait: `wait()` ticks every `interval_ns`, noting the loop
    thread's CPU clock, until the step now running (`hook.current_step`) has run longer than
    `sample_after_ns`, and returns that moment; `None` once `stop()` was called. The C gate
    waits without the GIL; this one sleeps between ticks."""

    def __init__(
        self, hook: Any, interval_ns: int, sample_after_ns: int, cpu_clock_id: int | None
    ) -> None:
        if not isinstance(hook, StepHook):
            raise TypeError(f"hook must be a StepHook, not {type(hook).__name__}")
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be positive, not {interval_ns}")
        self._hook = hook
        self._interval_s = interval_ns / 1e9
        self._sample_after_ns = sample_after_ns
        self._cpu_clock_id = cpu_clock_id
        self._stopped = threading.Event()
        self._ticks: deque[tuple[int, int]] = deque(maxlen=TICKS_KEPT)

    def wait(self) -> int | None:
        """Block until a step has run long (its moment) or the gate is stopped (`None`)."""
        while not self._stopped.wait(self._interval_s):
            now = _now()
            if self._cpu_clock_id is not None:
                # None once the loop thread is gone.
                with contextlib.suppress(OSError):
                    self._ticks.append((now, time.clock_gettime_ns(self._cpu_clock_id)))
            start = self._hook.current_step
            if start and now - start > self._sample_after_ns:
                return now
        return None

    def stop(self) -> None:
        """End every `wait()`, now and later."""
        self._stopped.set()

    def ticks(self) -> list[tuple[int, int]]:
        """The last ticks' `(wall_ns, loop_thread_cpu_ns)`, oldest first."""
        return list(self._ticks)
