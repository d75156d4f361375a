"""Small apps for the server tests: one that answers, one that can be told to die."""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world", "pid": os.getpid()})


async def nap(request: Request) -> JSONResponse:
    await asyncio.sleep(float(request.query_params.get("ms", "100")) / 1000)
    return JSONResponse({"id": request.headers.get("x-loopscope-request")})


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "id": request.headers.get("x-loopscope-request"),
            "method": request.method,
            "body": body.decode(),
        }
    )


async def die(request: Request) -> JSONResponse:
    os._exit(3)


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/nap", nap),
        Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE"]),
        Route("/die", die),
    ]
)


async def no_lifespan(scope, receive, send):  # type: ignore[no-untyped-def]
    """A bare ASGI app that refuses the lifespan scope, as many hand-written apps do."""
    if scope["type"] != "http":
        raise RuntimeError("only http here")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
