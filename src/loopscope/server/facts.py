"""What each server process really ran, written by the process itself.

`--loop auto` and `--http auto` leave the choice to uvicorn, and a worker that dies is replaced by
another: neither can be known from the command line. So every process that serves the app
(uvicorn's only process, each of its `--workers`, a gunicorn worker) writes one small file,
`worker-<pid>.json`, into the run's workers directory: its pid, when the app first ran in it
(`time.monotonic_ns()`), its event loop (at the first ASGI call, from the running loop) and its
HTTP protocol (at the first HTTP request, from the server module that called the app). The file
is rewritten atomically when a fact is learnt; `read_workers` reads them all back.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from starlette.types import ASGIApp, Receive, Scope, Send

from loopscope.trace.model import WorkerLife

HTTP_IMPLEMENTATIONS = {
    "uvicorn.protocols.http.h11_impl": "h11",
    "uvicorn.protocols.http.httptools_impl": "httptools",
}
"""The server module that calls the app for each HTTP request → the protocol's name."""

_FILE_PREFIX = "worker-"
_MAX_FRAMES = 40


def http_name(frame: FrameType | None) -> str:
    """The HTTP protocol whose code is on the stack above `frame`, `unknown` if none is known."""
    for _ in range(_MAX_FRAMES):
        if frame is None:
            break
        name = HTTP_IMPLEMENTATIONS.get(frame.f_globals.get("__name__", ""))
        if name is not None:
            return name
        frame = frame.f_back
    return "unknown"


class WorkerFacts:
    """The outermost ASGI layer in each server process: writes the process's facts file at the
    first ASGI call (pid, start, loop) and again at the first HTTP request (protocol); after
    that it only passes calls through."""

    def __init__(self, app: ASGIApp, out_dir: str | Path) -> None:
        self.app = app
        self._path = Path(out_dir) / f"{_FILE_PREFIX}{os.getpid()}.json"
        self._life: WorkerLife | None = None
        self._complete = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A coroutine function, not a plain one handing back the app's awaitable: uvicorn
        # takes an app whose `__call__` is not a coroutine function for ASGI 2.
        if not self._complete:
            self._observe(scope, sys._getframe(1))
        await self.app(scope, receive, send)

    def _observe(self, scope: Scope, caller: FrameType | None) -> None:
        try:
            life = self._life
            if life is None:
                # The probe names loops (imported here: a server without the probe imports
                # none of it at start-up).
                from loopscope.probe.instrument import loop_kind

                # The pid is read here, not at import: a forking server (gunicorn --preload)
                # imports the app once in its master.
                self._path = self._path.with_name(f"{_FILE_PREFIX}{os.getpid()}.json")
                life = self._life = WorkerLife(
                    pid=os.getpid(),
                    started_ns=time.monotonic_ns(),
                    loop=loop_kind(asyncio.get_running_loop()),
                )
            if scope.get("type") == "http":
                life.http = http_name(caller)
                self._complete = True
            _write(self._path, life)
        except Exception as exc:  # the facts are worth less than the app: never break it
            self._complete = True
            print(f"loopscope: could not record this worker's facts: {exc}", file=sys.stderr)


def _write(path: Path, life: WorkerLife) -> None:
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(json.dumps(asdict(life)))
    partial.replace(path)


def read_workers(out_dir: str | Path) -> list[WorkerLife]:
    """Every facts file in `out_dir`, by start time; unreadable files (a process killed while
    writing leaves only a `.part`) are skipped."""
    lives = []
    for path in Path(out_dir).glob(f"{_FILE_PREFIX}*.json"):
        try:
            data = json.loads(path.read_text())
            lives.append(WorkerLife(**data))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(lives, key=lambda w: (w.started_ns or 0, w.pid))
