import asyncio
import time

from fastapi import APIRouter, FastAPI, WebSocket

app = FastAPI()
router = APIRouter()


@app.get("/good/sleep")
async def sleep_awaited():
    await asyncio.sleep(1)


@router.post("/good/sleep")
def router_sleep_in_pool():
    time.sleep(1)


def added_in_pool():
    time.sleep(1)


app.add_api_route("/good/added", added_in_pool, methods=["PUT"])


@app.websocket("/good/ws")
async def socket_awaits(ws: WebSocket):
    await ws.receive_text()
