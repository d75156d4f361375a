import asyncio
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI

app = FastAPI()
GOOD_POOL = ThreadPoolExecutor(4)


def compute_in_pool():
    return 42


class Summary:
    def __init__(self, text):
        self.text = text.strip()


@app.get("/good/future")
async def awaits_future():
    return await asyncio.wrap_future(GOOD_POOL.submit(compute_in_pool))


@app.get("/good/summary")
async def builds_summary():
    return Summary(" ok ").text
