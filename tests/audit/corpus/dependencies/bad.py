import time
from typing import Annotated

from fastapi import Depends, FastAPI, Security

app = FastAPI()


async def slow_user():
    time.sleep(1)
    return "user"


async def token():
    time.sleep(1)
    return "token"


async def inner():
    time.sleep(1)


async def outer(value: Annotated[None, Depends(inner)]):
    return value


async def session():
    time.sleep(1)
    yield "session"


@app.get("/deps")
async def deps(
    user: str = Depends(slow_user),
    key: str = Security(token),
    nested: None = Depends(outer),
    db: str = Depends(session),
):
    return user
