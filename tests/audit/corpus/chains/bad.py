from fastapi import FastAPI

from shop.services import Orders, lookup

app = FastAPI()


@app.get("/orders/{key}")
async def order(key: str):
    return Orders().find(key)


@app.get("/lookup/{key}")
async def find(key: str):
    return lookup(key)
