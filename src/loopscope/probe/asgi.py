"""The probe's ASGI middleware: give each HTTP request an id and note when the app saw it.

It is the outermost layer around the user's app, so `server_start_ns` is the first moment the
app side saw the request and `server_end_ns` the moment its last message was handed to the
server. The middleware must never break the app: its own bookkeeping is guarded and counted in
`probe_errors`; the app's exceptions pass through unchanged. Lifespan and websocket scopes go
straight to the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from loopscope.probe.recorder import Recorder

# asyncio's C accessor of the running loop: no exception machinery when there is none. It makes
# a getpid system call on every call (a fork check), so the middleware asks it only where no
# watched loop step is running on its thread (`StepHook.running_here`).
_running_loop = asyncio.events._get_running_loop


def _never() -> bool:
    return False


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ProbeHost(Protocol):
    """What the middleware needs from the probe that owns it."""

    recorder: Recorder
    task_requests: dict[asyncio.Task[Any], str]

    @property
    def tracks_tasks(self) -> bool:
        """Whether requests must be mapped to their tasks (heartbeat mode)."""

    @property
    def step_clock(self) -> Any:
        """The object whose `current_step` is the start of the loop step now running."""

    def observe_loop(self) -> None:
        """Watch the running loop if it is a new one."""


class ProbeMiddleware:
    """Wraps an ASGI app; see the module docstring for what it records.

    Every HTTP request passes through `__call__`, so it is kept lean (`make bench` measures it):
    the per-request bookkeeping is the backend's `RequestWatcher` (C, or its Python twin), whose
    `RequestWatch` is the app's `send` and stores the request when the app is done.
    """

    def __init__(
        self,
        app: ASGIApp,
        host: ProbeHost,
        watcher: Any,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self._host = host
        self._watcher = watcher
        self._on_shutdown = on_shutdown
        self._recorder = host.recorder
        self._loop: object = None  # the loop of the last call
        self._track_tasks = False
        # Whether a step of the watched loop runs on this thread now: then the call's loop is
        # the watched one, and was seen (a new loop's first call runs in a step not watched).
        self._on_watched_step: Callable[[], bool] = getattr(host.step_clock, "running_here", _never)

    def _see_loop(self, loop: object) -> None:
        """Let the probe watch the loop this call runs on (the first call of every loop)."""
        self._loop = loop
        try:
            self._host.observe_loop()
            self._track_tasks = self._host.tracks_tasks
        except Exception as exc:
            self._recorder.fail("middleware", exc)

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan and websocket scopes: straight to the app, the lifespan's end observed."""
        if scope.get("type") == "lifespan" and self._on_shutdown is not None:
            await _lifespan_with_hook(self.app, scope, receive, send, self._on_shutdown)
        else:
            await self.app(scope, receive, send)

    def _track(self, request_id: str) -> asyncio.Task[Any] | None:
        """Map the running task to `request_id`, for the watchdog under uvloop (which cannot
        read a handle's context); the task, to forget it when the request is done."""
        task = asyncio.current_task()
        if task is not None:
            self._host.task_requests[task] = request_id
        return task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._on_watched_step() and (loop := _running_loop()) is not self._loop:
            self._see_loop(loop)
        if scope.get("type") != "http":
            await self._not_http(scope, receive, send)
            return
        watch = None
        task = None
        try:
            # Never raises for a request: its own failures are counted and give `None`.
            watch = self._watcher.begin(scope, send)
            if watch is not None and self._track_tasks:
                task = self._track(watch.request_id)
        except Exception as exc:
            self._recorder.fail("middleware", exc)
        if watch is None:  # the event budget is spent, or the probe failed: pass through
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, watch)
        finally:
            watch.finish(scope)
            if task is not None:
                self._host.task_requests.pop(task, None)


async def _lifespan_with_hook(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, hook: Callable[[], None]
) -> None:
    """Run the app's lifespan and call `hook` once the app has shut down.

    uvicorn re-raises SIGTERM after a graceful shutdown, so the process dies by the signal and
    `atexit` never runs: the lifespan shutdown is the last moment that is sure to come. An app
    that refuses the lifespan scope is spoken for, so that its shutdown is still seen. `hook`
    must not raise (its caller guards it).
    """
    started = False

    async def send_observed(message: Message) -> None:
        nonlocal started
        if message["type"] == "lifespan.startup.complete":
            started = True
        elif message["type"].startswith("lifespan.shutdown."):
            hook()
        await send(message)

    try:
        await app(scope, receive, send_observed)
    except Exception:
        if started:
            raise
        # The app refused the lifespan scope before starting: finish the protocol for it.
        await send({"type": "lifespan.startup.complete"})
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        hook()
        await send({"type": "lifespan.shutdown.complete"})
