"""An app for the multi-worker and accept-queue tests: a route that blocks its worker's event
loop at a known line, one that awaits, one that says which worker answered, and one that kills
its worker (uvicorn's supervisor then starts a new one)."""

from __future__ import annotations

import asyncio
import os
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def slow_lookup(ms: float) -> None:
    time.sleep(ms / 1000)  # BLOCKS HERE: the line the tests expect


def _answer(request: Request) -> JSONResponse:
    # `?close=1` ends the connection after the answer, as a client without keep-alive does, so
    # the user's next request needs a new connection: one the blocked loop cannot accept.
    close = request.query_params.get("close") == "1"
    return JSONResponse({"pid": os.getpid()}, headers={"connection": "close"} if close else None)


async def block(request: Request) -> JSONResponse:
    slow_lookup(float(request.query_params.get("ms", "100")))
    return _answer(request)


def crunch_numbers(ms: float) -> int:
    deadline = time.thread_time() + ms / 1000
    total = 0
    while time.thread_time() < deadline:  # CPU HERE: the line the tests expect
        total += 1
    return total


async def crunch(request: Request) -> JSONResponse:
    crunch_numbers(float(request.query_params.get("ms", "100")))
    return JSONResponse({"pid": os.getpid()})


async def nap(request: Request) -> JSONResponse:
    await asyncio.sleep(float(request.query_params.get("ms", "100")) / 1000)
    return JSONResponse({"pid": os.getpid()})


async def pid(request: Request) -> JSONResponse:
    return JSONResponse({"pid": os.getpid()})


async def die(request: Request) -> JSONResponse:
    # `?once=PATH`: only the first request dies (the file marks it), so that the client's retry
    # of a dropped request, or the next user, does not kill the replacement too.
    once = request.query_params.get("once")
    if once is not None:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return JSONResponse({"pid": os.getpid(), "died": False})
    os._exit(1)  # not 3: uvicorn takes exit code 3 for a worker that failed to start


app = Starlette(
    routes=[
        Route("/block", block),
        Route("/crunch", crunch),
        Route("/nap", nap),
        Route("/pid", pid),
        Route("/die", die),
    ]
)
