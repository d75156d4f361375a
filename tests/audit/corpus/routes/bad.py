import time

from fastapi import APIRouter, FastAPI, WebSocket

app = FastAPI()
router = APIRouter(prefix="/r")


@app.get("/sleep")
async def sleep_on_loop():
    time.sleep(1)


@router.post("/sleep")
async def router_sleep():
    time.sleep(1)


async def added():
    time.sleep(1)


app.add_api_route("/added", added, methods=["PUT"])


@app.websocket("/ws")
async def socket(ws: WebSocket):
    time.sleep(1)


@app.api_route("/both", methods=["GET", "POST"])
async def both():
    time.sleep(1)


app.include_router(router)
