"""The benchmark's app behind a switch: the probe is installed and removed at runtime.

`GET /__bench/probe/on` installs the probe (`loopscope.probe.install`, the embedding API) and
routes requests through its middleware; `.../off` uninstalls it. One server process then runs
both with and without the probe, so the process's own speed, which differs by about 2% between
processes of one program on this machine (memory layout, hash seed), cancels out of the ratio.
"""

from __future__ import annotations

from typing import Any

from trivial import app as trivial_app

from loopscope.probe import install

SWITCH = "/__bench/probe/"


class Switchable:
    """An ASGI app that serves `app` with or without the probe, as last switched."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.served = app
        self.probe: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(SWITCH):
            state = scope["path"][len(SWITCH) :]
            self.switch(on=state == "on")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": state.encode()})
            return
        await self.served(scope, receive, send)

    def switch(self, *, on: bool) -> None:
        if self.probe is not None:
            self.probe.uninstall()
            self.probe, self.served = None, self.app
        if on:
            self.probe = install(block_ms=20)
            self.served = self.probe.asgi(self.app)


app = Switchable(trivial_app)
