"""uvicorn's worker class for gunicorn, one per (loop, HTTP protocol).

`uvicorn-worker`'s `UvicornWorker` picks `--loop auto --http auto`; the way to choose them is a
subclass with its own `CONFIG_KWARGS` (its documented extension point), so loopscope runs the
loop and protocol it was asked for, the same as under plain uvicorn. Imported only inside the
gunicorn worker process.
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class AsyncioH11Worker(UvicornWorker):  # type: ignore[misc]
    """asyncio's loop, h11."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "asyncio", "http": "h11"}


class AsyncioHttptoolsWorker(UvicornWorker):  # type: ignore[misc]
    """asyncio's loop, httptools."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "asyncio", "http": "httptools"}


class UvloopH11Worker(UvicornWorker):  # type: ignore[misc]
    """uvloop, h11."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "uvloop", "http": "h11"}


class UvloopHttptoolsWorker(UvicornWorker):  # type: ignore[misc]
    """uvloop, httptools."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "uvloop", "http": "httptools"}
