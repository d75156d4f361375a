import time
from contextlib import asynccontextmanager

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse


@asynccontextmanager
async def lifespan(app):
    time.sleep(1)
    yield


app = FastAPI(lifespan=lifespan)


@app.exception_handler(ValueError)
async def on_value_error(request: Request, exc: ValueError):
    time.sleep(1)


@app.on_event("startup")
def warm_up():
    time.sleep(1)


async def notify():
    time.sleep(1)


async def rows():
    time.sleep(1)
    yield b"row"


@app.post("/signup")
async def signup(tasks: BackgroundTasks):
    tasks.add_task(notify)
    return StreamingResponse(rows())
