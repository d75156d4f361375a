"""An app the simulator was not written for: a loop-blocking helper, a CPU loop, an awaiting
route and a plain `def` route, each a little different from the demo's."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI

app = FastAPI()


def load_book(book_id: int) -> dict[str, object]:
    time.sleep(0.06)  # a synchronous client waiting on a remote catalogue
    return {"id": book_id, "title": f"book {book_id}"}


def rank(n: int) -> int:
    total = 0
    for i in range(n):
        total = (total * 17 + i) % 999_983
    return total


@app.get("/books/{book_id}")
async def book(book_id: int) -> dict[str, object]:
    return load_book(book_id)


@app.get("/search")
async def search() -> dict[str, int]:
    return {"score": rank(400_000)}


@app.get("/feed")
async def feed() -> dict[str, bool]:
    await asyncio.sleep(0.08)
    return {"fresh": True}


@app.get("/export")
def export() -> dict[str, int]:
    time.sleep(0.05)
    return {"rows": rank(50_000)}
