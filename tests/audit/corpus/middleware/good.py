import asyncio

from starlette.middleware.base import BaseHTTPMiddleware


class GoodTiming(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        await asyncio.sleep(0)
        return await call_next(request)


class GoodAsgi:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)
