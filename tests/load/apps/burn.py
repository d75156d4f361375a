"""A raw ASGI app for the fixed-rate driver's tests: a route that burns CPU (a server with a
known, low capacity), one that answers chunked, one that closes its connection, and one that
fails."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = parse_qs(scope["query_string"].decode())
    path = scope["path"]
    if path == "/burn":
        # CPU, not sleep: one worker serves at most 1000 / ms requests a second.
        until = time.thread_time() + float(query.get("ms", ["2"])[0]) / 1000
        while time.thread_time() < until:
            pass
    if path == "/boom":
        # As Starlette's error middleware does: answer 500, then raise. uvicorn then closes the
        # connection, without a `connection: close` on the answer already sent.
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"boom"})
        raise RuntimeError("boom")
    if path == "/chunked":
        # No content-length: the answer comes in chunks.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
        return
    headers = [(b"connection", b"close")] if path == "/close" else []
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})
