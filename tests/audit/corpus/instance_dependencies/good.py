import asyncio
import time
from typing import Annotated

from fastapi import Depends, FastAPI

app = FastAPI()


class SyncChecker:
    def __call__(self):
        time.sleep(1)
        return "user"


class SessionMaker:
    def __call__(self):
        time.sleep(1)
        yield "session"


class AwaitingChecker:
    async def __call__(self):
        await asyncio.sleep(1)
        return "user"


sessions = SessionMaker()


@app.get("/good/instances")
async def good_instances(
    user: str = Depends(SyncChecker()),
    session: Annotated[str, Depends(sessions)] = "",
    other: str = Depends(AwaitingChecker()),
):
    return user
