"""gunicorn, with its sync or gthread workers (WSGI apps) or uvicorn's worker class (ASGI).

One `ServerKind` per worker class, all built here: `gunicorn-sync` and `gunicorn-gthread` run
`settings.app` itself (a WSGI app; with `probe`, wrapped by the WSGI probe in
`loopscope.server.gunicorn_wsgi`), `gunicorn` runs
`loopscope.server.target:app` under uvicorn's worker, like `uvicorn --workers N`, so the probe
and the thread-pool settings apply. `settings.workers` is gunicorn's `--workers`; for gthread,
`settings.threads` is its `--threads` (for the ASGI kind it stays the thread pool's tokens).

gunicorn's arbiter logs "Listening at: http://HOST:PORT (PID)" once its socket is bound, before
any worker boots; its error log goes to stderr, which `ServerProcess` keeps in `server.log` of
the server's working directory, so the port is read from the server that bound it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from loopscope.server.kinds import SERVER_LOG

if TYPE_CHECKING:
    from loopscope.server.process import ServerSettings


_LISTENING = re.compile(r"Listening at: https?://\[?[^\]\s]*\]?:(\d+)")
_SYNC_TIMEOUT_S = 600
"""gunicorn kills a sync worker silent for `--timeout` (30 s by default); a bench may hold one
for longer on purpose (a slow DML), so the limit is far above any bounded load."""


def _supports_control_socket() -> bool:
    # gunicorn 24+ opens a control socket at one fixed path per user by default: two servers
    # would fight over it, so it is switched off where the option exists.
    from gunicorn.config import KNOWN_SETTINGS

    return any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS)


class _Gunicorn:
    """gunicorn's command line for one worker class."""

    name = "gunicorn"
    worker_class = "sync"
    wsgi = True

    def app_target(self, settings: ServerSettings) -> str:
        """What gunicorn imports: the WSGI app itself (`module:factory()` for a factory), or,
        with the probe, `loopscope.server.gunicorn_wsgi:app`, which probes it."""
        if settings.probe:
            return "loopscope.server.gunicorn_wsgi:app"
        return f"{settings.app}()" if settings.factory else settings.app

    def worker_class_of(self, settings: ServerSettings) -> str:
        """gunicorn's `--worker-class`."""
        return self.worker_class

    def worker_options(self, settings: ServerSettings) -> list[str]:
        """Options of this worker class beyond `--worker-class`."""
        return []

    def command(self, settings: ServerSettings, port: int, workdir: Path) -> list[str]:
        """`python -m gunicorn APP --bind host:port --workers W --worker-class ...`."""
        s = settings
        command = [
            sys.executable, "-m", "gunicorn", self.app_target(s),
            "--bind", f"{s.host}:{port}", "--workers", str(s.workers),
            "--worker-class", self.worker_class_of(s), *self.worker_options(s),
            "--timeout", str(_SYNC_TIMEOUT_S),
            "--graceful-timeout", str(max(1, int(s.stop_grace_s) - 1)),
            "--error-logfile", "-", "--log-level", "info",
            "--worker-tmp-dir", str(workdir),
            # Each worker dies with the arbiter (PR_SET_PDEATHSIG), see `gunicorn_hooks`.
            "--config", "python:loopscope.server.gunicorn_hooks",
        ]  # fmt: skip
        if s.app_dir:
            command += ["--pythonpath", str(Path(s.app_dir).resolve())]
        if _supports_control_socket():
            command.append("--no-control-socket")
        return command

    def environment(self, settings: ServerSettings) -> dict[str, str]:
        """Nothing beyond the target's settings."""
        return {}

    def bound_port(self, workdir: Path) -> int | None:
        """The port of gunicorn's "Listening at" line, once it has been logged."""
        try:
            text = (workdir / SERVER_LOG).read_text(errors="replace")
        except OSError:
            return None
        found = _LISTENING.search(text)
        return int(found.group(1)) if found else None


class GunicornSync(_Gunicorn):
    """gunicorn's sync workers: each of W processes serves one request at a time."""

    name = "gunicorn-sync"


class GunicornThreads(_Gunicorn):
    """gunicorn's gthread workers: W processes × `settings.threads` threads (1 if unset)."""

    name = "gunicorn-gthread"
    worker_class = "gthread"

    def worker_options(self, settings: ServerSettings) -> list[str]:
        """`--threads T`."""
        return ["--threads", str(settings.threads or 1)]


class GunicornUvicorn(_Gunicorn):
    """gunicorn's arbiter over uvicorn workers, on loopscope's target app (ASGI, probe-able)."""

    name = "gunicorn"
    wsgi = False

    def app_target(self, settings: ServerSettings) -> str:
        """loopscope's target app, which imports the user's app (see `server.target`)."""
        return "loopscope.server.target:app"

    def worker_class_of(self, settings: ServerSettings) -> str:
        """The uvicorn worker class of the settings' loop and HTTP protocol."""
        name = worker_class_name(settings.loop, settings.http)
        return f"loopscope.server.gunicorn_worker.{name}"


def worker_class_name(loop: str, http: str) -> str:
    """The name of the uvicorn worker class in `gunicorn_worker` for a loop and HTTP protocol,
    e.g. `AsyncioH11Worker` (`AutoAutoWorker`: what uvicorn itself would pick)."""
    return f"{loop.capitalize()}{http.capitalize()}Worker"
