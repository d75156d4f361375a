"""A steady app for the probe's fault injection: an async route, a sync one (thread pool) and one
that blocks the loop for 30 ms; every answer's body is known in advance."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"route": "async", "n": int(request.query_params.get("n", "0"))})


def sync_hello(request: Request) -> JSONResponse:
    return JSONResponse({"route": "sync", "n": int(request.query_params.get("n", "0"))})


async def block(request: Request) -> JSONResponse:
    time.sleep(0.03)  # blocks the loop: a loop block for the probe to find
    return JSONResponse({"route": "block"})


app = Starlette(routes=[Route("/", hello), Route("/sync", sync_hello), Route("/block", block)])
