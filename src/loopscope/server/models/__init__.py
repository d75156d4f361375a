"""Server models for `loopscope bench`: a server kind, its workers (and threads), and the app.

A model is named as on the command line, `uvicorn:2`, `gunicorn-sync:4`, `gunicorn-gthread:2x8`,
`gunicorn-uvicorn:2`; each family is one module behind `MODELS` (the strategy table), which
knows the settings to run the demo in a mode, the route that mode serves, and the most it can
serve when every request waits `io_ms` (its capacity, from the model alone).

```
MODELS = {"uvicorn": "loopscope.server.models.uvicorn:UvicornModel", ...}
```
"""

from __future__ import annotations

import importlib
import re

from loopscope.errors import UsageError
from loopscope.server.models.base import Capacity, ServerModel

MODELS: dict[str, str] = {
    "uvicorn": "loopscope.server.models.uvicorn:UvicornModel",
    "gunicorn-uvicorn": "loopscope.server.models.gunicorn_uvicorn:GunicornUvicornModel",
    "gunicorn-sync": "loopscope.server.models.gunicorn_sync:GunicornSyncModel",
    "gunicorn-gthread": "loopscope.server.models.gunicorn_gthread:GunicornThreadsModel",
    "granian": "loopscope.server.models.granian:GranianModel",
}
"""Model family name → `module:class` of its `ServerModel`."""

_SPEC = re.compile(r"^(?P<family>[a-z-]+)(?::(?P<workers>\d+)(?:x(?P<threads>\d+))?)?$")
MAX_WORKERS = 64


def parse_model(spec: str) -> ServerModel:
    """The model named by `spec` (`family[:W[xT]]`, W = 1 and T = 1 if left out)."""
    found = _SPEC.match(spec.strip())
    if found is None or found["family"] not in MODELS:
        raise UsageError(
            f"Server model {spec!r} must look like NAME:W (or NAME:WxT for gunicorn-gthread),"
            f" with NAME one of {', '.join(MODELS)}."
        )
    workers = int(found["workers"] or 1)
    threads = int(found["threads"]) if found["threads"] else None
    if not 1 <= workers <= MAX_WORKERS or (threads is not None and not 1 <= threads <= 1024):
        raise UsageError(f"Server model {spec!r}: workers 1–{MAX_WORKERS}, threads 1–1024.")
    module, attribute = MODELS[found["family"]].split(":")
    model: ServerModel = getattr(importlib.import_module(module), attribute)(workers, threads)
    return model


def parse_models(text: str) -> list[ServerModel]:
    """The comma-separated models of `--servers`, in order."""
    models = [parse_model(spec) for spec in text.split(",") if spec.strip()]
    if not models:
        raise UsageError("Name at least one server model, e.g. --servers uvicorn:1.")
    return models


__all__ = ["MODELS", "Capacity", "ServerModel", "parse_model", "parse_models"]
