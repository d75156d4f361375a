"""A fast ASGI app that stalls its event loop for `STALL_S` once, on request `STALL_AT`: the
server that a closed-loop load tool reports as healthy (coordinated omission)."""

from __future__ import annotations

import time
from typing import Any

STALL_AT = 60
STALL_S = 1.0
_served = 0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _served
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/stall":
        _served += 1
        if _served == STALL_AT:
            time.sleep(STALL_S)  # the whole loop stops: every request waits
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
