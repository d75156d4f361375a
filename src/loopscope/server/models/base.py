"""What every server model offers the bench: settings, a route per mode, and its capacity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loopscope.demo.settings import DemoSettings
from loopscope.errors import UsageError
from loopscope.server.process import ServerSettings

ASGI_APP = "loopscope.demo:create_app"
WSGI_APP = "loopscope.demo.wsgi:create_wsgi_app"


@dataclass(frozen=True, slots=True)
class Capacity:
    """The most a model serves when each request waits `io_ms`: `slots` requests can wait at
    once (`None`: no fixed bound, the event loop waits for any number), held by `holder`
    (`"worker"`, `"thread"`, `"loop"`, `"token"`), so at most `slots / io` req/s."""

    slots: int | None
    holder: str
    queue: str

    def max_rps(self, io_ms: float) -> float | None:
        """`slots / io` in req/s, or `None` when there is no such bound."""
        if self.slots is None or io_ms <= 0:
            return None
        return self.slots / (io_ms / 1000)


class ServerModel:
    """One family of server models with `workers` processes (and `threads` where it has them).

    Subclasses set `family`, `server` (the `SERVER_KINDS` name), `app` and `modes`, and say
    what bounds them in `capacity`."""

    family = ""
    server = ""
    app = ASGI_APP
    modes: Sequence[str] = ("blocking", "async-blocking", "async", "offload")

    def __init__(self, workers: int = 1, threads: int | None = None) -> None:
        self.workers = workers
        self.threads = threads

    @property
    def name(self) -> str:
        """The model as the command line names it, e.g. `gunicorn-gthread:2x4`."""
        threads = f"x{self.threads}" if self.threads is not None else ""
        return f"{self.family}:{self.workers}{threads}"

    @property
    def probe_able(self) -> bool:
        """Whether a probe can watch this model: the ASGI probe in a server running loopscope's
        target app, or the WSGI probe in gunicorn's sync and gthread workers."""
        return True

    def check_mode(self, mode: str) -> None:
        """Raise `UsageError` unless the model serves `mode`."""
        if mode not in self.modes:
            raise UsageError(f"{self.name} serves the modes {', '.join(self.modes)}, not {mode!r}.")

    def route(self, mode: str) -> str:
        """The path the bench sends to in `mode` (the seed's `/info`)."""
        return f"/info/{mode}"

    def settings(
        self,
        io_ms: float,
        probe: bool = False,
        cpus: tuple[int, ...] | None = None,
    ) -> ServerSettings:
        """How to run this model on the demo app with `io_ms` of I/O per request."""
        return ServerSettings(
            app=self.app,
            factory=True,
            server=self.server,
            workers=self.workers,
            threads=self.threads,
            env=DemoSettings(io_ms=io_ms).to_env(),
            probe=probe and self.probe_able,
            cpus=cpus,
        )

    def capacity(self, mode: str) -> Capacity:
        """What bounds the model in `mode`."""
        raise NotImplementedError
