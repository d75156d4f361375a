import asyncio
import functools
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

app = FastAPI()
POOL = ThreadPoolExecutor(4)
JOBS = queue.Queue()
READY = threading.Event()


def get_db():
    return Session()


def compute():
    return 42


class Report:
    def __init__(self, path):
        self.text = open(path).read()


def timed(func):
    @functools.wraps(func)
    async def wrapper(*args, **kwargs):
        time.sleep(0.01)
        return await func(*args, **kwargs)

    return wrapper


def later():
    time.sleep(1)


async def chunks():
    time.sleep(1)
    yield b"chunk"


def ping():
    return "pong"


HANDLERS = {"ping": ping}


@app.get("/session")
async def with_session(db: Annotated[Session, Depends(get_db)]):
    return db.execute("SELECT 1")


@app.get("/future")
async def waits_for_future():
    return POOL.submit(compute).result()


@app.get("/queue")
async def waits_on_queue():
    return JOBS.get()


@app.get("/event")
async def waits_on_event():
    READY.wait()


@app.get("/report")
async def builds_report():
    return Report("report.txt").text


@app.get("/timed")
@timed
async def timed_route():
    return "ok"


@app.get("/later")
async def schedules_later():
    asyncio.get_running_loop().call_soon(later)


@app.get("/stream")
async def streams():
    return StreamingResponse(chunks())


@app.get("/dispatch/{name}")
async def dispatch(name: str):
    return HANDLERS[name]()
