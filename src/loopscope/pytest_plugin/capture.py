"""The seam through which a test's app reaches the probe: `Starlette.__call__`, while a test runs.

A test hands its app to a client (`TestClient(app)`, `ASGITransport(app=app)`) or to a uvicorn in
a thread; none of them can be asked to wrap it. Every Starlette and FastAPI app, though, is
called through `Starlette.__call__` (FastAPI's own `__call__` ends in it), so replacing that one
class attribute for the length of a test sends each app's calls through the probe's middleware
(`Probe.asgi`), however the test reached the app, and restoring it leaves nothing behind. A
Starlette app mounted in another (a sub-app) is called inside a request already seen: it passes
straight through, so a request is counted once. A bare ASGI callable that is no Starlette app is
not seen, nor is an app served on a loop that is not asyncio's (trio).

On the first call on each event loop, the seam has the probe watch the loop and then yields to
it once, so the app's work starts in a step of its own: the step that was running (the test's
own code before the call, the probe starting its watchdog thread, which a busy machine can take
20 ms to schedule) is not counted as the request's, and the watchdog has read the loop thread's
CPU clock before the request's first step begins. Under uvloop the probe times the steps of the
tasks made once it watches the loop, so the first call there runs in a task of its own, made
then (the task that made the call, a server's connection task, came earlier). Where only the
watchdog's heartbeat sees blocks, the yield lasts half a threshold, long enough for the first
heartbeat to be posted. Nothing else about the app's scheduling changes.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from loopscope.probe import REQUEST_ID, Probe
from loopscope.probe.asgi import ASGIApp

_Call = Callable[[Any, Any, Any, Any], Any]

# asyncio's C accessor of the running loop: `None` outside one (trio), without an exception.
_running_loop = asyncio.events._get_running_loop


class AppCapture:
    """Routes every Starlette app's calls through `probe`'s middleware between `install()` and
    `uninstall()`; one middleware per app instance, made on its first call.

    `served` holds the apps that have served an HTTP request in this session (shared across
    tests); `first_requests` gets the ids of the requests that were an app's first, in which
    FastAPI and pydantic build what they build on first use (`loopscope.pytest_plugin.judge`).
    """

    def __init__(self, probe: Probe, served: weakref.WeakSet[Any] | None = None) -> None:
        self._probe = probe
        self._served: weakref.WeakSet[Any] = served if served is not None else weakref.WeakSet()
        self.first_requests: set[str] = set()
        self._owner: type | None = None
        self._original: _Call | None = None
        # Weak keys, and a weak reference in each middleware: an app a test dropped must not
        # be kept alive by the capture.
        self._middleware: weakref.WeakKeyDictionary[Any, ASGIApp] = weakref.WeakKeyDictionary()
        self._loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    @property
    def installed(self) -> bool:
        """Whether `Starlette.__call__` is replaced now."""
        return self._original is not None

    def install(self) -> None:
        """Replace `Starlette.__call__`, remembering the exact object it replaces."""
        from starlette.applications import Starlette

        # From `__dict__`, not getattr: restoring must put back the very same object.
        original: _Call = Starlette.__dict__["__call__"]
        middleware_of = self._middleware_of
        loops = self._loops
        watch_loop = self._watch_loop

        async def __call__(app: Any, scope: Any, receive: Any, send: Any) -> None:
            loop = _running_loop()
            # A sub-app inside a request already seen, or a loop the probe cannot watch.
            if REQUEST_ID.get() is not None or loop is None:
                await original(app, scope, receive, send)
                return
            own_task = loop not in loops and await watch_loop(loop)
            call = middleware_of(app, original)(scope, receive, send)
            if own_task:
                # The task running now was made before the probe timed the loop's tasks
                # (uvloop): its steps would go untimed. The call gets a task of its own, made
                # now; cancelling this task cancels it too.
                await asyncio.ensure_future(call)
                return
            await call

        self._owner, self._original = Starlette, original
        setattr(Starlette, "__call__", __call__)  # noqa: B010 (a method: mypy refuses `=`)

    async def _watch_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Have the probe watch `loop` (the running one), then yield to it once; with only the
        watchdog's heartbeat, until it has posted its first (half a threshold). Return whether
        the probe times the steps of tasks made from now on only (uvloop)."""
        self._loops.add(loop)
        self._probe.observe_loop()
        watched = self._probe.observed_loop is loop
        heartbeat = watched and not self._probe.precise
        await asyncio.sleep(self._probe.block_ms / 2000 if heartbeat else 0)
        return watched and self._probe.precise and self._probe.loop == "uvloop"

    def _middleware_of(self, app: Any, original: _Call) -> ASGIApp:
        middleware = self._middleware.get(app)
        if middleware is None:
            app_ref = weakref.ref(app)
            served, first_requests = self._served, self.first_requests

            async def call_app(scope: Any, receive: Any, send: Any) -> None:
                target = app_ref()
                if scope.get("type") == "http" and target not in served:
                    served.add(target)
                    request_id = REQUEST_ID.get()  # set by the middleware around this call
                    if request_id is not None:
                        first_requests.add(request_id)
                await original(target, scope, receive, send)

            middleware = self._probe.asgi(call_app)
            self._middleware[app] = middleware
        return middleware

    def uninstall(self) -> None:
        """Put `Starlette.__call__` back as it was; harmless when not installed."""
        if self._owner is not None and self._original is not None:
            setattr(self._owner, "__call__", self._original)  # noqa: B010
        self._owner = self._original = None
        self._middleware.clear()
        self._loops.clear()
