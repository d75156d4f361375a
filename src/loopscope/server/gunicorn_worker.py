"""uvicorn's worker class for gunicorn, one per (loop, HTTP protocol), and gunicorn's hooks.

`uvicorn-worker`'s `UvicornWorker` picks `--loop auto --http auto`; the way to choose them is a
subclass with its own `CONFIG_KWARGS` (its documented extension point), so loopscope runs the
loop and protocol it was asked for, the same as under plain uvicorn: `AsyncioH11Worker`,
`UvloopHttptoolsWorker`, `AutoAutoWorker` (what uvicorn itself would pick), and so on. Imported
only inside the gunicorn worker process.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker

from loopscope.server.gunicorn import worker_class_name

LOOPS = ("auto", "asyncio", "uvloop")
HTTPS = ("auto", "h11", "httptools")


def _worker(loop: str, http: str) -> type[Any]:
    return type(
        worker_class_name(loop, http),
        (UvicornWorker,),
        {
            "CONFIG_KWARGS": {"loop": loop, "http": http},
            "__doc__": f"uvicorn's worker with loop {loop!r} and HTTP {http!r}.",
            "__module__": __name__,
        },
    )


# gunicorn loads a worker class by its dotted name, so each must be a module attribute.
globals().update(
    {worker_class_name(loop, http): _worker(loop, http) for loop in LOOPS for http in HTTPS}
)
