"""`uvicorn:W`: the FastAPI demo under uvicorn with W worker processes, in any demo mode."""

from __future__ import annotations

from loopscope.server.models.base import Capacity, ServerModel
from loopscope.trace.constants import ANYIO_DEFAULT_TOKENS


def asgi_capacity(workers: int, mode: str) -> Capacity:
    """What bounds an ASGI server of `workers` processes running the demo in `mode`: the loop
    itself when a request blocks it, the thread pool's tokens when it runs in the pool, nothing
    of the model's when it awaits."""
    if mode == "async-blocking":
        return Capacity(workers, "loop", "accept queue")
    if mode in ("blocking", "offload"):
        return Capacity(workers * ANYIO_DEFAULT_TOKENS, "token", "thread pool's queue")
    return Capacity(None, "loop", "event loop")


class UvicornModel(ServerModel):
    """uvicorn, `--workers W`."""

    family = "uvicorn"
    server = "uvicorn"

    def capacity(self, mode: str) -> Capacity:
        """See `asgi_capacity`."""
        return asgi_capacity(self.workers, mode)
