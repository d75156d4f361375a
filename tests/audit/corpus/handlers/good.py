import time

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse

app = FastAPI()


@app.exception_handler(KeyError)
def on_key_error(request: Request, exc: KeyError):
    time.sleep(1)


def notify_in_pool():
    time.sleep(1)


def rows_in_pool():
    time.sleep(1)
    yield b"row"


@app.post("/good/signup")
async def good_signup(tasks: BackgroundTasks):
    tasks.add_task(notify_in_pool)
    return StreamingResponse(rows_in_pool())
