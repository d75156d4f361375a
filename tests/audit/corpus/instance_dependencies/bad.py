import time
from typing import Annotated

from fastapi import Depends, FastAPI

app = FastAPI()


class TokenChecker:
    def __init__(self, scheme: str):
        self.scheme = scheme

    async def __call__(self):
        time.sleep(1)
        return self.scheme


class RoleChecker:
    async def __call__(self):
        time.sleep(1)
        return "admin"


admin = RoleChecker()


@app.get("/inline")
async def inline(token: str = Depends(TokenChecker("bearer"))):
    return token


@app.get("/named")
async def named(role: Annotated[str, Depends(admin)]):
    return role
