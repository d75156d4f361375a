"""`gunicorn-gthread:WxT`: the Flask demo under gunicorn's gthread workers, W processes × T
threads; each thread serves one request at a time, so W×T requests at once."""

from __future__ import annotations

from loopscope.demo.wsgi import WSGI_VARIANT
from loopscope.server.models.base import WSGI_APP, Capacity, ServerModel


class GunicornThreadsModel(ServerModel):
    """gunicorn `--worker-class gthread --workers W --threads T`."""

    family = "gunicorn-gthread"
    server = "gunicorn-gthread"
    app = WSGI_APP
    modes = (WSGI_VARIANT,)

    def __init__(self, workers: int = 1, threads: int | None = None) -> None:
        super().__init__(workers, threads or 1)

    def capacity(self, mode: str) -> Capacity:
        """W×T threads, one request each."""
        return Capacity(self.workers * (self.threads or 1), "thread", "accept queue")
