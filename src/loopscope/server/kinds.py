"""The server kinds loopscope can run, chosen by name from a table (uvicorn's `LOOP_FACTORIES`
style): one module per kind, each building its command line and environment and reading, from
what the server itself logged, the port it bound.

```
SERVER_KINDS = {"uvicorn": "loopscope.server.uvicorn:Uvicorn", ...}
```
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loopscope.errors import UsageError

if TYPE_CHECKING:
    from loopscope.server.process import ServerSettings

SERVER_KINDS: dict[str, str] = {
    "uvicorn": "loopscope.server.uvicorn:Uvicorn",
    "gunicorn": "loopscope.server.gunicorn:GunicornUvicorn",
    "gunicorn-sync": "loopscope.server.gunicorn:GunicornSync",
    "gunicorn-gthread": "loopscope.server.gunicorn:GunicornThreads",
    "granian": "loopscope.server.granian:Granian",
}
"""Server kind name → `module:class` of its `ServerKind`."""

SERVER_LOG = "server.log"
"""The server's stdout and stderr, as `ServerProcess` keeps them in the server's working
directory (the kinds whose servers log their port there read it back)."""


class ServerKind(Protocol):
    """How to run one kind of server. `ServerProcess` runs any of them the same way."""

    name: str

    def command(self, settings: ServerSettings, port: int, workdir: Path) -> list[str]:
        """The server's command line, listening on `settings.host:port` (0: any free port).
        `workdir` is a private directory for files the server writes (its readiness log)."""
        ...

    def environment(self, settings: ServerSettings) -> dict[str, str]:
        """Variables the server needs beyond the target app's settings."""
        ...

    def bound_port(self, workdir: Path) -> int | None:
        """The port the server says it bound, once it is serving; `None` until then."""
        ...


def server_kind(name: str) -> ServerKind:
    """The `ServerKind` called `name`; an unknown name is a `UsageError`."""
    target = SERVER_KINDS.get(name)
    if target is None:
        raise UsageError(f"Unknown server {name!r}; use one of {', '.join(SERVER_KINDS)}.")
    module, attribute = target.split(":")
    kind: ServerKind = getattr(importlib.import_module(module), attribute)()
    return kind
