"""granian (a Rust HTTP server for Python apps), ASGI interface, on `loopscope.server.target:app`.

granian logs "Listening at: http://HOST:PORT" with the port it was given, and a port of 0 stays
"0" in that line: it never says which port the kernel picked. So loopscope picks a free port
itself (when none is set), and takes the server as ready once granian has logged both that it
listens on that port and that a worker started; the `is_listening` check that follows makes sure
something answers there.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from loopscope.server.kinds import SERVER_LOG
from loopscope.server.ports import free_port

if TYPE_CHECKING:
    from loopscope.server.process import ServerSettings

_PORT_FILE = "granian-port"
_LISTENING = re.compile(r"Listening at: https?://\[?[^\]\s]*\]?:(\d+)")
_STARTED = "Started worker"


class Granian:
    """`python -m granian --interface asgi` with the settings' workers and loop."""

    name = "granian"

    def command(self, settings: ServerSettings, port: int, workdir: Path) -> list[str]:
        """granian on `host:port` (a free port of our choosing when `port` is 0)."""
        s = settings
        chosen = port or free_port(s.host)
        (workdir / _PORT_FILE).write_text(str(chosen))
        return [
            sys.executable, "-m", "granian", "--interface", "asgi",
            "--host", s.host, "--port", str(chosen), "--workers", str(s.workers),
            "--loop", s.loop, "--no-ws", "loopscope.server.target:app",
        ]  # fmt: skip

    def environment(self, settings: ServerSettings) -> dict[str, str]:
        """Nothing beyond the target's settings."""
        return {}

    def bound_port(self, workdir: Path) -> int | None:
        """The port granian said it listens on, once a worker has started."""
        try:
            text = (workdir / SERVER_LOG).read_text(errors="replace")
            chosen = int((workdir / _PORT_FILE).read_text())
        except (OSError, ValueError):
            return None
        found = _LISTENING.search(text)
        if found is None or int(found.group(1)) != chosen or _STARTED not in text:
            return None
        return chosen
