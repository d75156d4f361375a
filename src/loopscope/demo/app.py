"""The seed's FastAPI service: `/login`, `/info` and `/history`, in every execution variant.

Each route exists once per variant, because FastAPI decides where an endpoint runs from how it is
defined (`def` → thread pool, `async def` → event loop), not from anything at request time:

- `blocking`: the seed's code, plain `def` with the blocking helper; FastAPI runs it in a worker
  thread of anyio's pool.
- `async-blocking`: `async def` calling the same blocking helper, the classic mistake: it runs on
  the event loop and stops it for everyone.
- `async`: `async def` awaiting `asyncio.sleep` and `aiosqlite`, the seed's non-blocking version.
- `offload`: `async def` that hands the blocking helper to the pool with `run_in_threadpool`.

The seed's one-worker-thread assumption is a server setting (the pool's tokens), not a variant.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.concurrency import run_in_threadpool

from loopscope.demo.db import UserRow, UserStore, create_users_db
from loopscope.demo.passwords import verify_password
from loopscope.demo.settings import DemoSettings

VARIANTS = ("blocking", "async-blocking", "async", "offload")

Username = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Credentials(BaseModel):
    """The login body. Credentials travel in the JSON body, never in the URL."""

    model_config = ConfigDict(extra="forbid")
    username: Username
    password: Password


class UserQuery(BaseModel):
    """The body of `/info` and `/history`."""

    model_config = ConfigDict(extra="forbid")
    username: Username


def _store(request: Request) -> UserStore:
    store: UserStore = request.app.state.store
    return store


def _welcome(user: UserRow | None, creds: Credentials) -> dict[str, str]:
    if user is None or not verify_password(user[1], creds.password):
        raise HTTPException(status_code=401, detail="Invalid credentials")
    return {"message": f"Welcome, {creds.username}!"}


def _info(user: UserRow | None) -> dict[str, str]:
    if user is None:
        raise HTTPException(status_code=404, detail="User not found")
    return {"username": user[0], "info": user[2]}


def _history(user: UserRow | None) -> dict[str, str]:
    if user is None:
        raise HTTPException(status_code=404, detail="User not found")
    return {"username": user[0], "history": user[3]}


def _blocking_routes(router: APIRouter) -> None:
    @router.post("/login/blocking")
    def login_blocking(creds: Credentials, request: Request) -> dict[str, str]:
        user = _store(request).get_user_from_db(creds.username)
        return _welcome(user, creds)

    @router.post("/info/blocking")
    def info_blocking(query: UserQuery, request: Request) -> dict[str, str]:
        return _info(_store(request).get_user_from_db(query.username))

    @router.post("/history/blocking")
    def history_blocking(query: UserQuery, request: Request) -> dict[str, str]:
        return _history(_store(request).get_user_from_db(query.username))


def _async_blocking_routes(router: APIRouter) -> None:
    @router.post("/login/async-blocking")
    async def login_async_blocking(creds: Credentials, request: Request) -> dict[str, str]:
        user = _store(request).get_user_from_db(creds.username)
        return _welcome(user, creds)

    @router.post("/info/async-blocking")
    async def info_async_blocking(query: UserQuery, request: Request) -> dict[str, str]:
        return _info(_store(request).get_user_from_db(query.username))

    @router.post("/history/async-blocking")
    async def history_async_blocking(query: UserQuery, request: Request) -> dict[str, str]:
        return _history(_store(request).get_user_from_db(query.username))


def _async_routes(router: APIRouter) -> None:
    @router.post("/login/async")
    async def login_async(creds: Credentials, request: Request) -> dict[str, str]:
        user = await _store(request).get_user_from_db_async(creds.username)
        return _welcome(user, creds)

    @router.post("/info/async")
    async def info_async(query: UserQuery, request: Request) -> dict[str, str]:
        return _info(await _store(request).get_user_from_db_async(query.username))

    @router.post("/history/async")
    async def history_async(query: UserQuery, request: Request) -> dict[str, str]:
        return _history(await _store(request).get_user_from_db_async(query.username))


def _offload_routes(router: APIRouter) -> None:
    @router.post("/login/offload")
    async def login_offload(creds: Credentials, request: Request) -> dict[str, str]:
        user = await run_in_threadpool(_store(request).get_user_from_db, creds.username)
        return _welcome(user, creds)

    @router.post("/info/offload")
    async def info_offload(query: UserQuery, request: Request) -> dict[str, str]:
        user = await run_in_threadpool(_store(request).get_user_from_db, query.username)
        return _info(user)

    @router.post("/history/offload")
    async def history_offload(query: UserQuery, request: Request) -> dict[str, str]:
        user = await run_in_threadpool(_store(request).get_user_from_db, query.username)
        return _history(user)


def _unknown_variant_routes(router: APIRouter) -> None:
    # Registered last, so it only sees variants that no route above matched.
    @router.post("/{action}/{variant}")
    async def unknown_variant(action: str, variant: str) -> None:
        if action not in ("login", "info", "history"):
            raise HTTPException(status_code=404, detail="Not Found")
        raise HTTPException(
            status_code=404,
            detail=f"Unknown variant {variant!r}; use one of {', '.join(VARIANTS)}.",
        )


ROUTE_SETS: tuple[Callable[[APIRouter], None], ...] = (
    _blocking_routes,
    _async_blocking_routes,
    _async_routes,
    _offload_routes,
    _unknown_variant_routes,
)


def create_app(settings: DemoSettings | None = None) -> FastAPI:
    """The seed's app. With no `settings`, they are read from the environment (`DemoSettings`)."""
    settings = settings or DemoSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with tempfile.TemporaryDirectory(prefix="loopscope-demo-") as tmp:
            path = settings.db_path or Path(tmp) / "users.db"
            await run_in_threadpool(create_users_db, path, settings.users)
            app.state.store = UserStore(path=path, io_s=settings.io_ms / 1000)
            yield

    app = FastAPI(title="loopscope demo: the seed's users service", lifespan=lifespan)
    router = APIRouter()
    for add_routes in ROUTE_SETS:
        add_routes(router)
    app.include_router(router)
    return app
