"""`gunicorn-sync:W`: the Flask demo under gunicorn's sync workers, the seed's first picture.

Each of W processes takes one connection from the shared accept queue and serves it to the end:
at most W requests are served at once, the rest wait in the kernel's queue.
"""

from __future__ import annotations

from loopscope.demo.wsgi import WSGI_VARIANT
from loopscope.server.models.base import WSGI_APP, Capacity, ServerModel


class GunicornSyncModel(ServerModel):
    """gunicorn `--worker-class sync --workers W`."""

    family = "gunicorn-sync"
    server = "gunicorn-sync"
    app = WSGI_APP
    modes = (WSGI_VARIANT,)

    def capacity(self, mode: str) -> Capacity:
        """W workers, one request each."""
        return Capacity(self.workers, "worker", "accept queue")
