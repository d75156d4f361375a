"""The ASGI app that uvicorn imports inside the server process: the user's app, wrapped.

`loopscope.server` starts uvicorn on `loopscope.server.target:app`, never on the user's app
directly, so that the probe is installed *before* the user's code is imported and the server's
own settings (the thread pool's tokens) apply without any change to that code. Everything is
passed in environment variables, which also reach every worker process when `workers > 1`.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.importer import import_from_string

from loopscope.server.lifeline import die_with_parent

ENV_APP = "LOOPSCOPE_APP"
ENV_APP_DIR = "LOOPSCOPE_APP_DIR"
ENV_FACTORY = "LOOPSCOPE_APP_FACTORY"
ENV_THREADS = "LOOPSCOPE_THREADS"
ENV_PROBE_OUT = "LOOPSCOPE_PROBE_OUT"
ENV_BLOCK_MS = "LOOPSCOPE_BLOCK_MS"
ENV_LOOP = "LOOPSCOPE_LOOP"
ENV_WORKERS_OUT = "LOOPSCOPE_WORKERS_OUT"


class ThreadTokens:
    """Sets the thread pool's token count on the first ASGI call, inside the server's loop.

    anyio creates its default `CapacityLimiter(40)` lazily, once per event loop, so it can only be
    changed from within that loop; the lifespan startup is the earliest such moment.
    """

    def __init__(self, app: ASGIApp, tokens: int) -> None:
        self.app = app
        self.tokens = tokens
        self._applied = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applied:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = self.tokens
            self._applied = True
        await self.app(scope, receive, send)


class OnceHook:
    """Runs `hook` once, from the app's lifespan shutdown or at exit, whichever comes first;
    its failure is printed, never raised into the server."""

    def __init__(self, hook: Callable[[], None]) -> None:
        self._hook = hook
        self._done = False
        atexit.register(self)

    def __call__(self) -> None:
        if not self._done:
            self._done = True
            try:
                self._hook()
            except Exception as exc:
                print(f"loopscope: could not save the probe's record: {exc}", file=sys.stderr)


def package_root(app: str) -> str | None:
    """The directory the app's top-level package is imported from, found without importing it,
    so that locations read `pkg/module.py:12` wherever the package is installed."""
    try:
        spec = importlib.util.find_spec(app.split(":")[0].split(".")[0])
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    origin = Path(spec.origin)
    return str(origin.parent.parent if origin.name == "__init__.py" else origin.parent)


def _install_probe(out_dir: str) -> Any:
    from loopscope.probe import install

    # Precise wherever the probe can be: it decides from the loop it finds running (every loop
    # step under asyncio, every task step under uvloop), which with `--loop auto` only the
    # server knows.
    probe = install(
        block_ms=float(os.environ.get(ENV_BLOCK_MS, "20")),
        precise=None,
        app_root=os.environ.get(ENV_APP_DIR) or package_root(os.environ[ENV_APP]),
    )
    return probe


def _saver(probe: Any, out_dir: str) -> Callable[[], None]:
    """Start the probe's checkpoints, and return what writes its final record at shutdown.

    Each worker process writes its own files, named by its pid: checkpoints while it runs (what
    is left of it if it crashes), then the final record, which replaces them.
    """
    from loopscope.probe.checkpoint import Checkpointer, period_from_env
    from loopscope.trace.record_files import checkpoint_path, final_path

    pid = os.getpid()
    checkpoints = Checkpointer(probe, checkpoint_path(out_dir, pid), period_from_env())
    checkpoints.start()

    def save() -> None:
        checkpoints.stop()
        if checkpoints.period_s > 0:
            # A last one first: should the final record be cut short (near the event cap it
            # takes seconds to write, and the server's stop grace may run out), little is lost.
            checkpoints.take()
        probe.dump(final_path(out_dir, pid))
        checkpoints.discard()

    return save


def build_app() -> ASGIApp:
    """Install the probe if asked, import the user's app, and wrap it."""
    # A worker of a multi-process server must not outlive its master, however the master ends.
    die_with_parent()
    app_dir = os.environ.get(ENV_APP_DIR)
    if app_dir:
        sys.path.insert(0, app_dir)
    out_dir = os.environ.get(ENV_PROBE_OUT)
    probe = _install_probe(out_dir) if out_dir else None

    target: Any = import_from_string(os.environ[ENV_APP])
    if os.environ.get(ENV_FACTORY) == "1":
        target = target()
    wrapped: ASGIApp = target
    if probe is not None and out_dir:
        wrapped = probe.asgi(target, on_shutdown=OnceHook(_saver(probe, out_dir)))
    tokens = os.environ.get(ENV_THREADS)
    if tokens:
        wrapped = ThreadTokens(wrapped, int(tokens))
    facts_dir = os.environ.get(ENV_WORKERS_OUT)
    if facts_dir:
        from loopscope.server.facts import WorkerFacts

        # Outermost, so that the server's own module is the caller it sees.
        wrapped = WorkerFacts(wrapped, facts_dir)
    return wrapped


_app: ASGIApp | None = None


def __getattr__(name: str) -> ASGIApp:
    # Built on first access (uvicorn's `import_from_string` asks for `app`), so importing this
    # module for its constants never imports the user's app.
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = build_app()
    return _app
