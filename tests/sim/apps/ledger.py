"""A second app unlike the demo: work offloaded to the pool, CPU inside `def` routes (the GIL
is shared with the loop), and a route that awaits twice around some CPU."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

app = FastAPI()


def checksum(n: int) -> int:
    total = 0
    for i in range(n):
        total = (total * 31 + i) % 1_000_003
    return total


def fetch_rows() -> list[int]:
    time.sleep(0.04)
    return list(range(100))


@app.get("/rows")
async def rows() -> dict[str, int]:
    data = await run_in_threadpool(fetch_rows)
    return {"rows": len(data)}


@app.get("/audit")
def audit() -> dict[str, int]:
    return {"sum": checksum(300_000)}


@app.get("/report")
async def report() -> dict[str, int]:
    await asyncio.sleep(0.03)
    value = checksum(100_000)
    await asyncio.sleep(0.03)
    return {"value": value}
