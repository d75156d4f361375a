"""Routers under prefixes and a mounted sub-app, as real apps are laid out.

`/a/items` and `/b/items` come from one decorator each, `@router.get("/items")`, included under
two prefixes; only `/a/items` blocks the loop. The heroes router has a prefix of its own and two
methods on one path; the sub-app is mounted at `/sub`.
"""

import time

from fastapi import APIRouter, FastAPI

a = APIRouter()
b = APIRouter()
heroes = APIRouter(prefix="/heroes")
inner = APIRouter()


@a.get("/items")
async def a_items() -> dict[str, str]:
    time.sleep(0.08)  # mark: a-block
    return {"from": "a"}


@b.get("/items")
async def b_items() -> dict[str, str]:
    return {"from": "b"}


@inner.get("/deep/{n}")
async def deep(n: int) -> dict[str, int]:
    return {"n": n}


@heroes.get("/")
async def list_heroes() -> list[str]:
    return ["ada"]


@heroes.post("/")
async def create_hero() -> dict[str, str]:
    return {"name": "grace"}


b.include_router(inner, prefix="/in")

app = FastAPI()
app.include_router(a, prefix="/a")
app.include_router(b, prefix="/b")
app.include_router(heroes)

sub = FastAPI()


@sub.get("/status/{code}")
async def status(code: int) -> dict[str, int]:
    return {"code": code}


app.mount("/sub", sub)
