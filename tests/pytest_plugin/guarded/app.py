"""Routes that block the event loop (a sleep two calls down, a CPU loop, a sync SQLite query)
and routes that do not (an awaited sleep, a `def` route, an offloaded call)."""

import asyncio
import sqlite3
import time
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

BLOCK_S = 0.12
"""How long the sleeping routes hold the loop: far over the 20 ms threshold, on a busy host too."""

CPU_S = 0.25
"""The CPU loop's CPU time. It holds the GIL, so the watchdog samples its line only when it gets
the GIL, which on a crowded host may take a good part of a tenth of a second."""

DB_PATH = Path(__file__).with_name("shop.db")

app = FastAPI()


def wait_for_stock() -> None:
    time.sleep(BLOCK_S)  # mark: sleep


def check_stock() -> None:
    wait_for_stock()


def count_orders() -> int:
    with sqlite3.connect(DB_PATH) as db:
        # A query that keeps SQLite busy for about a tenth of a second.
        row = db.execute(  # mark: db
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000) "
            "SELECT count(*) FROM c"
        ).fetchone()
    return int(row[0])


@app.get("/sleep")
async def sleep_route() -> dict[str, bool]:
    check_stock()
    return {"ok": True}


@app.get("/cpu")
async def cpu_route() -> dict[str, int]:
    # CPU time, not wall time: the loop spins this long even when the host is busy.
    end = time.thread_time() + CPU_S
    spins = 0
    while time.thread_time() < end:  # mark: cpu
        spins += 1
    return {"spins": spins}


@app.get("/db")
async def db_route() -> dict[str, int]:
    return {"orders": count_orders()}


@app.get("/async-sleep")
async def async_sleep_route(seconds: float = BLOCK_S) -> dict[str, bool]:
    await asyncio.sleep(seconds)
    return {"ok": True}


@app.get("/def-route")
def def_route() -> dict[str, bool]:
    check_stock()
    return {"ok": True}


@app.get("/offload")
async def offload_route() -> dict[str, bool]:
    await run_in_threadpool(check_stock)
    return {"ok": True}
