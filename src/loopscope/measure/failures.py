"""Why requests failed: statuses per route, and the app's exception from the server's log.

uvicorn logs an unhandled exception as "Exception in ASGI application" and its traceback, with
no request id or route, so each traceback is paired with a failed request in the order the
server finished them (the exception is logged as its 500 goes out). A failure is a 5xx answer
or no answer at all (a transport error); 4xx answers are the app's deliberate replies.

The `Failure`s live in the Trace (`Run.failures`, `loopscope.trace.model`), so that saved traces
keep the causes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from loopscope.trace.model import Failure as Failure
from loopscope.trace.model import Request

_MARKER = "Exception in ASGI application"
# uvicorn's default log lines start with the level name and padding: "ERROR:    ...".
_LOG_LINE = re.compile(r"^[A-Z]+:\s{2,}")
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+), in ')
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")
_NOT_EXCEPTIONS = ("Traceback", "During handling", "The above exception")
_LIBRARY_PARTS = ("site-packages", "dist-packages", "/lib/python3")


@dataclass(frozen=True, slots=True)
class ServerException:
    """One unhandled exception from the server's log: type, message, innermost app `path:line`."""

    error_type: str
    message: str
    where: str | None


def is_failed(request: Request) -> bool:
    """Whether `request` failed: a 5xx answer, or none at all."""
    return request.status is None or request.status >= 500


def parse_exceptions(log: str, app_root: str | None = None) -> list[ServerException]:
    """Every unhandled exception uvicorn logged in `log`, in order.

    `where` is the innermost frame under `app_root` (relative to it), else the innermost frame
    outside installed libraries and the standard library.
    """
    out: list[ServerException] = []
    lines = log.splitlines()
    for start, line in enumerate(lines):
        if _MARKER not in line:
            continue
        block: list[str] = []
        for following in lines[start + 1 :]:
            if _LOG_LINE.match(following):
                break
            block.append(following)
        out.append(_parse_block(block, app_root))
    return out


def _parse_block(block: list[str], app_root: str | None) -> ServerException:
    frames: list[tuple[str, str]] = []
    error_type, message = "Exception", ""
    for line in block:
        frame = _FRAME.match(line)
        if frame:
            frames.append((frame["path"], frame["line"]))
            continue
        if line[:1].isspace() or not line or line.startswith(_NOT_EXCEPTIONS):
            continue
        # The last unindented line of a chained traceback is the exception that escaped.
        found = _EXCEPTION.match(line)
        if found:
            error_type, message = found["type"], found["message"] or ""
    return ServerException(error_type, message, _innermost(frames, app_root))


def _innermost(frames: list[tuple[str, str]], app_root: str | None) -> str | None:
    root = Path(app_root).resolve() if app_root else None
    for path, line in reversed(frames):
        if root is not None and Path(path).is_relative_to(root):
            return f"{Path(path).relative_to(root)}:{line}"
    for path, line in reversed(frames):
        if not any(part in path for part in _LIBRARY_PARTS):
            return f"{path}:{line}"
    return None


def summarize_failures(
    requests: Iterable[Request], exceptions: list[ServerException] | None = None
) -> list[Failure]:
    """The failed `requests`, grouped by route, status and cause, most frequent first.

    `exceptions` (from `parse_exceptions`) are paired with the 500s in the order the server
    finished them; when the log holds more (a warm-up's, say) the last ones are used.
    """
    failed = [r for r in requests if is_failed(r)]
    causes: dict[str, tuple[str | None, str | None, str | None]] = {}
    for r in failed:
        if r.status is None and r.error:
            kind, _, text = r.error.partition(": ")
            causes[r.id] = (kind, text or None, None) if text else (None, r.error, None)
    five_hundreds = sorted(
        (r for r in failed if r.status == 500),
        key=lambda r: r.server_end_ns or r.client_first_byte_ns or r.done_ns,
    )
    logged = (exceptions or [])[-len(five_hundreds) :] if five_hundreds else []
    for r, exc in zip(five_hundreds[-len(logged) :] if logged else [], logged, strict=True):
        causes[r.id] = (exc.error_type, exc.message or None, exc.where)
    groups: Counter[tuple[str, int | None, str | None, str | None, str | None]] = Counter()
    for r in failed:
        groups[(r.endpoint, r.status, *causes.get(r.id, (None, None, None)))] += 1
    return [
        Failure(route, status, count, kind, text, where)
        for (route, status, kind, text, where), count in sorted(
            groups.items(), key=lambda item: (-item[1], item[0][0])
        )
    ]


def status_counts(requests: Iterable[Request], route: str) -> str:
    """`route`'s statuses with counts, e.g. `200×3, 500×6, no answer×1`."""
    counts = Counter(
        "no answer" if r.status is None else str(r.status) for r in requests if r.endpoint == route
    )
    return ", ".join(f"{status}×{n}" for status, n in sorted(counts.items()))


_NOT_ASGI_FACTORY = re.compile(
    r"TypeError: .*missing 3 required positional arguments: 'scope', 'receive',? and 'send'"
)


def is_not_a_factory(log_tail: str) -> bool:
    """Whether a server that failed to start with `--factory` died calling an ASGI app (which
    wants `scope, receive, send`) as if it were a factory."""
    return bool(_NOT_ASGI_FACTORY.search(log_tail))
