import asyncio
import contextlib
import sqlite3
import threading

from fastapi import FastAPI

app = FastAPI()
ASYNC_LOCK = asyncio.Semaphore(4)
THREAD_LOCK = threading.Semaphore(4)


class Quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@app.get("/good/semaphore")
async def awaited_semaphore():
    async with ASYNC_LOCK:
        return 1


@app.get("/good/in-pool")
def semaphore_in_pool(conn: sqlite3.Connection):
    with THREAD_LOCK, conn:
        return 1


@app.get("/good/free")
async def free_context_managers():
    with contextlib.suppress(KeyError), Quiet():
        return 1
