"""The WSGI app that gunicorn's sync and gthread workers import when the probe is asked for:
the user's WSGI app, with `loopscope.probe.wsgi`'s middleware outermost.

The WSGI twin of `loopscope.server.target` (the ASGI one), read from the same environment
variables, which reach every gunicorn worker: `LOOPSCOPE_APP` (`module:attribute`),
`LOOPSCOPE_APP_FACTORY` (call it), `LOOPSCOPE_APP_DIR`, and `LOOPSCOPE_PROBE_OUT`, where each
worker writes `probe-<pid>.json` when it exits (gunicorn's `worker_exit` hook, see
`gunicorn_hooks`). The app is built on first access of `app`, in the worker (gunicorn without
`--preload` imports it after the fork), so the pid is the worker's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from uvicorn.importer import import_from_string

from loopscope.server.lifeline import die_with_parent
from loopscope.server.target import ENV_APP, ENV_APP_DIR, ENV_FACTORY, ENV_PROBE_OUT


def build_app() -> Any:
    """Import the user's WSGI app (calling it if it is a factory) and probe it if asked."""
    die_with_parent()
    app_dir = os.environ.get(ENV_APP_DIR)
    if app_dir:
        sys.path.insert(0, app_dir)
    # `module:attribute`, dotted attributes allowed: read as the ASGI target reads it.
    target: Any = import_from_string(os.environ[ENV_APP])
    if os.environ.get(ENV_FACTORY) == "1":
        target = target()
    out_dir = os.environ.get(ENV_PROBE_OUT)
    if not out_dir:
        return target
    from loopscope.probe.wsgi import install_wsgi

    return install_wsgi(target, Path(out_dir) / f"probe-{os.getpid()}.json")


_app: Any = None


def __getattr__(name: str) -> Any:
    # Built on first access (gunicorn asks for `app` in each worker), so importing this module
    # for its names never imports the user's app.
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = build_app()
    return _app
