"""A register route that changes state (issue 10, defect 7): the first call for a name hashes
its password with `hashlib.scrypt` on the event loop and stores it; a repeat is a 400 that
hashes nothing. A warm-up that replays it would leave only the cheap 400s to measure.
"""

from __future__ import annotations

import hashlib

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

app = FastAPI()
_users: dict[str, bytes] = {}


class Account(BaseModel):
    username: str
    password: str


@app.post("/auth/register", status_code=201)
async def register(account: Account) -> dict[str, str]:
    if account.username in _users:
        raise HTTPException(400, "REGISTER_USER_ALREADY_EXISTS")
    # scrypt with n=2**14 takes tens of ms of CPU: it blocks the loop, as argon2 does in
    # fastapi-users.
    _users[account.username] = hashlib.scrypt(
        account.password.encode(), salt=b"loopscope", n=2**14, r=8, p=1
    )
    return {"username": account.username}


@app.get("/users/count")
async def count() -> dict[str, int]:
    return {"users": len(_users)}


def make_app() -> FastAPI:
    """A factory, for `--factory`."""
    return app
