"""Run a test app under uvicorn with the probe installed, as `loopscope.server` will.

Usage: `python serve_probed.py '<json config>'`. Prints `PORT <n>` once the server listens,
serves until SIGTERM, then writes the probe's record to the config's `out` path.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import signal
import sys
from typing import Any

import anyio.to_thread
import uvicorn

from loopscope.probe import install


def main() -> None:
    config: dict[str, Any] = json.loads(sys.argv[1])
    probe = install(**config["probe"])
    # Imported after the probe is in place, as the server will do with the user's app.
    app = importlib.import_module(config["module"]).app
    server = uvicorn.Server(
        uvicorn.Config(
            probe.asgi(app),
            host="127.0.0.1",
            port=0,
            loop=config["loop"],
            log_level="warning",
            lifespan="on",
        )
    )
    # uvicorn re-raises a captured SIGTERM after its graceful shutdown; a Python handler keeps
    # this process alive long enough to write the record.
    signal.signal(signal.SIGTERM, lambda *_: None)

    async def serve() -> None:
        if config.get("threads"):
            anyio.to_thread.current_default_thread_limiter().total_tokens = config["threads"]
        task = asyncio.create_task(server.serve())
        # uvicorn has no "started" event to wait on; its own `startup` sets this flag.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if server.started:
            port = server.servers[0].sockets[0].getsockname()[1]
            print(f"PORT {port}", flush=True)
        await task

    if config["loop"] == "uvloop":
        import uvloop

        uvloop.run(serve())
    else:
        asyncio.run(serve())
    probe.dump(config["out"])
    probe.uninstall()


if __name__ == "__main__":
    main()
