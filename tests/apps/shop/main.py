"""Routes of the user's app: two block the loop, two do not."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI

from shop.services import crunch, order_report

app = FastAPI()


@app.get("/orders/{customer}")
async def orders(customer: str) -> dict[str, object]:
    return order_report(customer)


@app.get("/crunch")
async def crunch_route() -> dict[str, int]:
    return {"value": crunch(1_500_000)}


@app.get("/fine")
async def fine() -> dict[str, bool]:
    await asyncio.sleep(0.1)
    return {"ok": True}


@app.get("/sync")
def sync_route() -> dict[str, bool]:
    time.sleep(0.1)
    return {"ok": True}
