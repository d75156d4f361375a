"""What the compiled middleware (`_speedups.WatchedApp`) shows as its `__call__`.

Servers tell an ASGI 3 app by asking whether `app.__call__` is a coroutine function, some with
`asyncio.iscoroutinefunction` (uvicorn, Starlette), some with `inspect.iscoroutinefunction`
(hypercorn), which on Python 3.11 accepts only a real `async def`. A C type's `__call__` is a
slot wrapper that neither accepts, so the C middleware's `__call__` attribute is this function
bound to it. Servers call the app itself, which stays C; this runs only where `__call__` is
called by name.
"""

from __future__ import annotations

from typing import Any


async def call_through(app: Any, scope: Any, receive: Any, send: Any) -> Any:
    """`app(scope, receive, send)`, awaited."""
    return await app(scope, receive, send)
