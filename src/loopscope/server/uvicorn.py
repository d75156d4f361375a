"""uvicorn, one process or `--workers N`, on `loopscope.server.target:app`.

uvicorn says where it listens in one log line, "Uvicorn running on http://HOST:PORT", written
once the socket is bound (by the server with one process, by the parent before it starts its
workers). Its `uvicorn.error` logger is routed at INFO to a readiness log of our own, so that the
port comes from the server that bound it: a process that took the port after loopscope chose it
can never pass for ours. Warnings and errors still go to stderr (the server's log).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopscope.server.process import ServerSettings

READY_LOG = "uvicorn-ready.log"
_RUNNING = re.compile(r"Uvicorn running on https?://\[?[^\]\s]*\]?:(\d+)")


def log_config(ready_log: Path) -> dict[str, object]:
    """uvicorn's logging: INFO of `uvicorn.error` to `ready_log`, WARNING and up to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(process)d %(levelname)s %(message)s"}},
        "handlers": {
            "ready": {
                "class": "logging.FileHandler",
                "filename": str(ready_log),
                "formatter": "plain",
                "level": "INFO",
            },
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "plain",
                "level": "WARNING",
            },
        },
        "loggers": {
            "uvicorn.error": {"handlers": ["ready", "stderr"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class Uvicorn:
    """uvicorn's own command line (`python -m uvicorn`), with the loop, HTTP protocol and
    worker count of the settings."""

    name = "uvicorn"

    def command(self, settings: ServerSettings, port: int, workdir: Path) -> list[str]:
        """`python -m uvicorn loopscope.server.target:app ...` listening on `host:port`."""
        config = workdir / "uvicorn-logging.json"
        config.write_text(json.dumps(log_config(workdir / READY_LOG)))
        s = settings
        return [
            sys.executable, "-m", "uvicorn", "loopscope.server.target:app",
            "--host", s.host, "--port", str(port),
            "--loop", s.loop, "--http", s.http, "--workers", str(s.workers),
            "--log-config", str(config), "--no-access-log",
            "--timeout-graceful-shutdown", str(max(1, int(s.stop_grace_s) - 1)),
        ]  # fmt: skip

    def environment(self, settings: ServerSettings) -> dict[str, str]:
        """Nothing beyond the target's settings."""
        return {}

    def bound_port(self, workdir: Path) -> int | None:
        """The port of the "Uvicorn running on" line, once it has been logged."""
        try:
            text = (workdir / READY_LOG).read_text(errors="replace")
        except OSError:
            return None
        found = _RUNNING.search(text)
        return int(found.group(1)) if found else None
