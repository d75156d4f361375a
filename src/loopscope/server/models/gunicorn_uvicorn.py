"""`gunicorn-uvicorn:W`: the FastAPI demo under gunicorn's arbiter with W uvicorn workers."""

from __future__ import annotations

from loopscope.server.models.base import Capacity, ServerModel
from loopscope.server.models.uvicorn import asgi_capacity


class GunicornUvicornModel(ServerModel):
    """gunicorn with uvicorn's worker class: the same event loop per worker as uvicorn's."""

    family = "gunicorn-uvicorn"
    server = "gunicorn"

    def capacity(self, mode: str) -> Capacity:
        """As uvicorn's: see `asgi_capacity`."""
        return asgi_capacity(self.workers, mode)
