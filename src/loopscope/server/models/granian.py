"""`granian:W`: the FastAPI demo under granian (Rust HTTP, one asyncio loop per worker)."""

from __future__ import annotations

import importlib.util

from loopscope.errors import UsageError
from loopscope.server.models.base import Capacity, ServerModel
from loopscope.server.models.uvicorn import asgi_capacity
from loopscope.server.process import ServerSettings


class GranianModel(ServerModel):
    """granian `--interface asgi --workers W`: each worker runs the app on its own event loop,
    so the model's bounds are uvicorn's (see `asgi_capacity`)."""

    family = "granian"
    server = "granian"

    @property
    def probe_able(self) -> bool:
        """No: the probe is only checked under uvicorn's loop handling."""
        return False

    def settings(
        self, io_ms: float, probe: bool = False, cpus: tuple[int, ...] | None = None
    ) -> ServerSettings:
        """As for every model, once granian is known to be installed."""
        if importlib.util.find_spec("granian") is None:
            raise UsageError("granian is not installed: pip install 'loopscope[granian]'.")
        return super().settings(io_ms, probe, cpus)

    def capacity(self, mode: str) -> Capacity:
        """As uvicorn's."""
        return asgi_capacity(self.workers, mode)
