from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from shop.services import Orders, async_lookup, lookup

app = FastAPI()


@app.get("/good/orders/{key}")
def order_in_pool(key: str):
    return Orders().find(key)


@app.get("/good/lookup/{key}")
async def find_offloaded(key: str):
    await async_lookup(key)
    return await run_in_threadpool(lookup, key)
