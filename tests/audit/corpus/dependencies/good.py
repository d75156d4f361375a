import asyncio
import time
from typing import Annotated

from fastapi import Depends, FastAPI

app = FastAPI()


def sync_user():
    time.sleep(1)
    return "user"


def sync_session():
    time.sleep(1)
    yield "session"


class Paging:
    def __init__(self, page: int = 0):
        time.sleep(0.1)
        self.page = page


async def async_user():
    await asyncio.sleep(1)
    return "user"


@app.get("/good/deps")
async def good_deps(
    user: Annotated[str, Depends(sync_user)],
    db: Annotated[str, Depends(sync_session)],
    paging: Annotated[Paging, Depends(Paging)],
    other: str = Depends(async_user),
):
    return user
