import time

from fastapi import FastAPI, Request
from starlette.middleware.base import BaseHTTPMiddleware

app = FastAPI()


class Timing(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        time.sleep(0.01)
        return await call_next(request)


class PureAsgi:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        time.sleep(0.01)
        await self.app(scope, receive, send)


@app.middleware("http")
async def stamp(request: Request, call_next):
    time.sleep(0.01)
    return await call_next(request)


app.add_middleware(Timing)
