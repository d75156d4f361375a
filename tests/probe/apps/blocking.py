"""The test app: routes that block the loop, wait properly, or run in the thread pool."""

from __future__ import annotations

import asyncio
import gc
import time

from fastapi import FastAPI
from helpers import burn_cpu, load_profile

app = FastAPI()


def fetch_report(seconds: float) -> str:
    time.sleep(seconds)  # mark: helper-sleep
    return "report"


@app.get("/sleep-block")
async def sleep_block() -> dict[str, str]:
    return {"report": fetch_report(0.15)}


@app.get("/deep-block")
async def deep_block() -> dict[str, str]:
    return {"profile": load_profile(0.15)}


@app.get("/cpu-block")
async def cpu_block() -> dict[str, int]:
    return {"spins": burn_cpu(0.15)}


@app.get("/async-sleep")
async def async_sleep(seconds: float = 0.05) -> dict[str, str]:
    await asyncio.sleep(seconds)
    return {"slept": "politely"}


@app.get("/def-sleep")
def def_sleep() -> dict[str, str]:
    time.sleep(0.1)
    return {"slept": "in a thread"}


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"item": item_id}


class _Node:
    __slots__ = ("__weakref__", "other")


_heap: list[_Node] = []


@app.get("/gc-build")
async def gc_build() -> dict[str, int]:
    for _ in range(300_000):
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        _heap.append(a)
    return {"nodes": len(_heap) * 2}


@app.get("/gc-collect")
async def gc_collect() -> dict[str, int]:
    _heap.clear()  # the cycles are garbage now; only the collector can free them
    return {"collected": gc.collect()}
