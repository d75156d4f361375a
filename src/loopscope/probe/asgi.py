"""The probe's ASGI middleware: give each HTTP request an id and note when the app saw it.

It is the outermost layer around the user's app, so `server_start_ns` is the first moment the
app side saw the request and `server_end_ns` the moment its last message was handed to the
server. The middleware must never break the app: its own bookkeeping is guarded and counted in
`probe_errors`; the app's exceptions pass through unchanged. Lifespan and websocket scopes go
straight to the app.

Every HTTP request passes through it, so the call itself is the backend's `WatchedApp` (C, or
its Python twin; `make bench` measures it), which does the per-request work with the backend's
`RequestWatcher` (whose `RequestWatch` is the app's `send` and stores the request when the app is
done). `ProbeMiddleware` here is its host: what is rare (a new loop, other scopes, the task map
of heartbeat mode) stays in Python.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from loopscope.probe.recorder import Recorder

# asyncio's C accessor of the running loop: no exception machinery when there is none. It makes
# a getpid system call on every call (a fork check), so it is asked only where no watched loop
# step is running on the calling thread (`StepHook.running_here`).
_running_loop = asyncio.events._get_running_loop

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
    """The middleware's slow paths, for the backend's `WatchedApp` that wraps `app` (see the
    module docstring); `wrap` gives the ASGI app to serve."""

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

    def wrap(self, backend: Any) -> ASGIApp:
        """The ASGI app that serves `app` through this middleware, from `backend`'s
        `WatchedApp` (`loopscope.probe.backend`)."""
        app: ASGIApp = backend.WatchedApp(self.app, self._watcher, self._host.step_clock, self)
        return app

    def check_loop(self) -> bool:
        """Let the probe watch the loop this call runs on if it is a new one (the first call of
        every loop); whether requests must be mapped to their tasks. Never raises."""
        loop = _running_loop()
        if loop is not self._loop:
            self._loop = loop
            try:
                self._host.observe_loop()
                self._track_tasks = self._host.tracks_tasks
            except Exception as exc:
                self._recorder.fail("middleware", exc)
        return self._track_tasks

    async def not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan and websocket scopes: straight to the app, the lifespan's end observed."""
        if scope.get("type") == "lifespan" and self._on_shutdown is not None:
            await _lifespan_with_hook(self.app, scope, receive, send, self._on_shutdown)
        else:
            await self.app(scope, receive, send)

    def track(self, request_id: str) -> asyncio.Task[Any] | None:
        """Map the running task to `request_id`, for the watchdog under uvloop (which cannot
        read a handle's context); the task, to `untrack` when the request is done."""
        task = asyncio.current_task()
        if task is not None:
            self._host.task_requests[task] = request_id
        return task

    def untrack(self, task: asyncio.Task[Any]) -> None:
        """Forget `task`'s request (`track`)."""
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
