"""Apps that fail the ways a user's app can: at startup, never ready, or dying mid-run."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


async def block(request: Request) -> JSONResponse:
    time.sleep(0.06)  # blocks the loop: the line a checkpoint must name
    return JSONResponse({"blocked_ms": 60})


async def wait(request: Request) -> JSONResponse:
    await asyncio.sleep(float(request.query_params.get("s", "1.5")))
    return JSONResponse({"waited": True})


async def exit_now(request: Request) -> JSONResponse:
    os._exit(7)


async def killed(request: Request) -> JSONResponse:
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer does
    return JSONResponse({})


async def segfault(request: Request) -> JSONResponse:
    ctypes.string_at(0)  # reads address 0: SIGSEGV in native code
    return JSONResponse({})


ROUTES = [
    Route("/", hello),
    Route("/block", block),
    Route("/wait", wait),
    Route("/exit", exit_now, methods=["POST"]),
    Route("/segv", segfault, methods=["POST"]),
    Route("/kill", killed, methods=["POST"]),
]
app = Starlette(routes=ROUTES)


@asynccontextmanager
async def _database_down(app: Starlette) -> AsyncIterator[None]:
    raise RuntimeError("the database is down")
    yield


@asynccontextmanager
async def _forever(app: Starlette) -> AsyncIterator[None]:
    await asyncio.sleep(3600)
    yield


raises_at_startup = Starlette(routes=ROUTES, lifespan=_database_down)
never_ready = Starlette(routes=ROUTES, lifespan=_forever)
