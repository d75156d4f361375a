"""The request id: one context variable that follows a request wherever its code runs.

The middleware sets `REQUEST_ID` inside the request's task. asyncio copies the current context
into every `Handle` it schedules and anyio runs worker-thread calls in a copy of it, so a loop
step or a thread-pool call can be attributed to its request by reading the variable from the
context it runs in, without touching tasks or frames.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

from loopscope.trace.constants import REQUEST_HEADER as HEADER_NAME

REQUEST_HEADER = HEADER_NAME.encode()
"""The header a load driver sets so client and server agree on a request's id."""

MAX_REQUEST_ID_LENGTH = 64

REQUEST_ID: ContextVar[str | None] = ContextVar("loopscope_request_id", default=None)
"""The id of the request whose code is running, `None` outside any request."""

# Ids end up in lane names, file names and HTML; anything outside this set is dropped.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def sanitize_request_id(raw: str) -> str | None:
    """`raw` with every character outside `[A-Za-z0-9._-]` removed, cut to 64; `None` if empty."""
    cleaned = _UNSAFE.sub("", raw)[:MAX_REQUEST_ID_LENGTH]
    return cleaned or None


def client_request_id(headers: Any, header: bytes = REQUEST_HEADER) -> str | None:
    """The sanitized id in the `header` (`x-loopscope-request`) of ASGI `headers`, `None` where
    there is none (the recorder then generates one)."""
    try:
        for name, value in headers:
            if name == header:
                return sanitize_request_id(bytes(value).decode("latin-1"))
    except (TypeError, ValueError):
        pass  # not a list of pairs: the request still gets an id
    return None
