"""The probe's ASGI middleware: give each HTTP request an id and note when the app saw it.

It is the outermost layer around the user's app, so `server_start_ns` is the first moment the
app side saw the request and `server_end_ns` the moment its last message was handed to the
server. The middleware must never break the app: its own bookkeeping is guarded and counted in
`probe_errors`; the app's exceptions pass through unchanged. Lifespan and websocket scopes go
straight to the app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import Token
from typing import Any, Protocol

from loopscope.probe.context import REQUEST_ID, RequestIds
from loopscope.probe.recorder import Recorder, RequestRecord

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ProbeHost(Protocol):
    """What the middleware needs from the probe that owns it."""

    recorder: Recorder
    request_ids: RequestIds
    task_requests: dict[asyncio.Task[Any], str]

    @property
    def loop_observed(self) -> bool:
        """Whether `observe_loop` has seen the loop already."""

    @property
    def tracks_tasks(self) -> bool:
        """Whether requests must be mapped to their tasks (heartbeat mode)."""

    def observe_loop(self) -> None:
        """Note the running loop (first call only) and start watching it."""


def route_template(scope: Scope) -> str | None:
    """The matched route's template (`/users/{id}`), where the router left it in the scope."""
    route = scope.get("route")
    path = getattr(route, "path", None) if route is not None else None
    return path if isinstance(path, str) else None


class ProbeMiddleware:
    """Wraps an ASGI app; see the module docstring for what it records."""

    def __init__(
        self, app: ASGIApp, host: ProbeHost, on_shutdown: Callable[[], None] | None = None
    ) -> None:
        self.app = app
        self._host = host
        self._on_shutdown = on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = self._host
        if not host.loop_observed:
            try:
                host.observe_loop()
            except Exception:
                host.recorder.errors += 1
        if scope.get("type") != "http":
            if scope.get("type") == "lifespan" and self._on_shutdown is not None:
                await _lifespan_with_hook(self.app, scope, receive, send, self._on_shutdown)
            else:
                await self.app(scope, receive, send)
            return
        start = time.monotonic_ns()
        request_id: str | None = None
        record: RequestRecord | None = None
        token: Token[str | None] | None = None
        task: asyncio.Task[Any] | None = None
        try:
            request_id = host.request_ids.from_headers(scope.get("headers"))
            record = RequestRecord(
                method=str(scope.get("method", "")), path=str(scope.get("path", "")), start_ns=start
            )
            request_id = host.recorder.add_request(request_id, record) or request_id
            record.first_step_ns = host.recorder.current_step
            token = REQUEST_ID.set(request_id)
            if host.tracks_tasks:
                # For the watchdog under uvloop, which cannot read a handle's context.
                task = asyncio.current_task()
                if task is not None:
                    host.task_requests[task] = request_id
        except Exception:
            host.recorder.errors += 1

        async def send_observed(message: Message) -> None:
            if record is not None:
                try:
                    if message["type"] == "http.response.start":
                        record.status = int(message["status"])
                except Exception:
                    host.recorder.errors += 1
            await send(message)
            if record is not None:
                record.end_ns = time.monotonic_ns()

        try:
            await self.app(scope, receive, send_observed if record is not None else send)
        finally:
            try:
                self._finish(scope, record, token, task)
            except Exception:
                host.recorder.errors += 1

    def _finish(
        self,
        scope: Scope,
        record: RequestRecord | None,
        token: Token[str | None] | None,
        task: asyncio.Task[Any] | None,
    ) -> None:
        if token is not None:
            REQUEST_ID.reset(token)
        if task is not None:
            self._host.task_requests.pop(task, None)
        if record is not None:
            record.last_step_ns = self._host.recorder.current_step
            if record.end_ns is None:
                record.end_ns = time.monotonic_ns()
            record.route = record.path
            # Last: a route object of unexpected shape may raise, after the rest is done.
            record.route = route_template(scope) or record.path


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
