import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
from fastapi import BackgroundTasks, FastAPI
from starlette.concurrency import run_in_threadpool

app = FastAPI()
EXECUTOR = ThreadPoolExecutor(4)


def work():
    time.sleep(1)


@app.get("/threadpool")
async def threadpool():
    await run_in_threadpool(work)


@app.get("/anyio")
async def with_anyio():
    await anyio.to_thread.run_sync(work)


@app.get("/to-thread")
async def with_to_thread():
    await asyncio.to_thread(work)


@app.get("/executor")
async def with_executor():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(EXECUTOR, work)


@app.get("/background")
async def in_background(tasks: BackgroundTasks):
    tasks.add_task(work)
