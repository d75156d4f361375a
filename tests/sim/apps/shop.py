"""A third app unlike the demo: routes under two routers with prefixes, a sync dependency with
an exit (FastAPI runs it in the pool, and its exit on a limiter of its own), and libraries doing
the work: pydantic serialising a response model on the loop, difflib matching in a `def` route,
and a synchronous client's wait inside an `async def` route."""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel

WORDS = [f"{a}{b}{c}" for a in "bcdfghklmnprst" for b in "aeiou" for c in "lmnrstxz"]


class Session:
    """A stand-in for a synchronous database session."""

    def __init__(self) -> None:
        time.sleep(0.008)  # connecting
        self.open = True

    def close(self) -> None:
        self.open = False


def get_session() -> Iterator[Session]:
    session = Session()
    try:
        yield session
    finally:
        session.close()


class Item(BaseModel):
    id: int
    name: str
    tags: list[str]
    price: float


catalog = APIRouter(prefix="/catalog", tags=["catalog"])
orders = APIRouter(prefix="/orders", tags=["orders"])


@catalog.get("/items/{item_id}", response_model=list[Item])
async def related_items(
    item_id: int, session: Annotated[Session, Depends(get_session)]
) -> list[Item]:
    await asyncio.sleep(0.04)  # an async driver's query
    return [
        Item(id=item_id + i, name=WORDS[i % len(WORDS)], tags=WORDS[i : i + 4], price=i * 0.5)
        for i in range(400)
    ]


@catalog.get("/search")
def search(q: str = "tanks") -> dict[str, list[str]]:
    # difflib is pure Python: it holds the GIL the whole time, in a pool thread.
    matches: list[str] = []
    for word in (q, q[::-1], q.upper().lower()):
        matches += difflib.get_close_matches(word, WORDS, n=3, cutoff=0.1)
    return {"matches": matches}


@orders.get("/{order_id}")
async def order(order_id: int) -> dict[str, object]:
    time.sleep(0.035)  # a synchronous payment client called from `async def`: blocks the loop
    return {"id": order_id, "lines": [WORDS[i] for i in range(order_id % 7 + 1)]}


app = FastAPI()
app.include_router(catalog, prefix="/api/v1")
app.include_router(orders, prefix="/api/v1")
