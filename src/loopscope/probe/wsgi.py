"""The WSGI probe: what each request did in a WSGI server's worker (gunicorn sync or gthread).

A WSGI worker has no event loop: each request holds one thread of one process from the moment
the server hands it to the app until the server closes the app's response. So the probe is one
middleware, outermost, that stamps (`time.monotonic_ns()`, the load driver's clock) every
request's start and end, and records its status, its route, the process and the thread that
served it, and that thread's CPU time in between:

```python
probe = WsgiProbe()
app = probe.wsgi(flask_app)          # what gunicorn serves
...
probe.dump("probe-<pid>.json")       # a `ServerRecord`, written atomically
```

`loopscope.server.gunicorn_wsgi` installs it in each gunicorn worker when the server runs with
`probe=True` (the environment the ASGI probe uses), and gunicorn's `worker_exit` hook writes
the record (`save_all`).

The record is the ASGI probe's `ServerRecord` with `loop = "wsgi"` and `precise = false`:

- `requests`: `id` from the `x-loopscope-request` header (sanitized as the ASGI probe does; a
  repeated id gets `.2`, `.3`...) or a generated `s<pid>-<n>`; `route` is the matched rule's
  template where the app says it (Flask and any werkzeug app: `request.url_rule.rule`, read
  when the app starts its response), else the path; `server_start_ns` when the app was
  called, `server_end_ns` when its last chunk of body was handed to the server (before the
  server writes it, as the ASGI probe's end; the response's close for an empty body);
  `status` from `start_response`, `None` if the app raised. One segment, `in-thread`, covers
  start→end with the thread's CPU time.
- `lanes`: `thread:<pid>/<thread name>`, one `in-thread` segment per request it served.

What it does NOT see: there is no event loop, so no loop steps, no loop blocks and no thread
pool; the time a request waited before a worker took it (the kernel's accept queue, and in a
gthread worker its own queue of accepted connections) is outside every worker. That wait shows
only as the gap between the client's send and `server_start_ns` (the trace's `queued`
segment), and as the accept queue's depth where loopscope samples it from outside.

Bounded: at most `max_requests` requests are recorded (the rest counted as dropped events; a
few more where threads finish at once);
the probe never raises into the app (its own failures are counted, the first few kept).
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from loopscope.probe.context import sanitize_request_id
from loopscope.trace.io import dump_record
from loopscope.trace.model import ProbeFailure, Segment, request_lane
from loopscope.trace.record import WSGI_LOOP, ProbeCounts, ServerRecord, ServerRequest

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
"""A WSGI application: `app(environ, start_response)` → the response body's chunks."""

REQUEST_HEADER_KEY = "HTTP_X_LOOPSCOPE_REQUEST"
"""The `x-loopscope-request` header as WSGI's environ names it."""
MAX_REQUESTS = 200_000
_KEPT_FAILURES = 5
_FAILURE_TEXT = 200

RequestRow = tuple[str, str, str, str | None, int | None, int, int, int, str]
"""One finished request as the probe keeps it until `collect`: id, method, path, route (None:
unmatched), status, start, end, thread CPU time, the thread's name."""

_installed: list[tuple[WsgiProbe, Path]] = []


def thread_lane(pid: int, thread: str) -> str:
    """The lane of one thread of one worker process: `thread:<pid>/<name>`."""
    return f"thread:{pid}/{thread}"


def route_of(environ: dict[str, Any]) -> str | None:
    """The matched rule's template of a werkzeug app (Flask), read from the request object it
    keeps in `environ` while it serves the request (the probe reads it when the app starts its
    response); `None` where there is none (no match, another framework)."""
    request = environ.get("werkzeug.request")
    rule = getattr(request, "url_rule", None)
    template = getattr(rule, "rule", None)
    return template if isinstance(template, str) else None


class WsgiProbe:
    """Records every request of one WSGI worker process (see the module's docstring)."""

    def __init__(self, max_requests: int = MAX_REQUESTS) -> None:
        self.max_requests = max_requests
        self._rows: list[RequestRow] = []
        self.dropped = 0
        self.errors = 0
        self.failures: dict[tuple[str, str], ProbeFailure] = {}
        self._lock = threading.Lock()  # gthread workers serve from several threads
        self._serial = itertools.count(1)
        self._named: dict[str, int] = {}

    def wsgi(self, app: WsgiApp) -> WsgiApp:
        """`app` with every request recorded."""
        return ProbedApp(app, self)

    def fail(self, hook: str, exc: BaseException) -> None:
        """Count one of the probe's own failures; the first few distinct ones are kept."""
        with self._lock:
            self.errors += 1
            key = (hook, repr(exc)[:_FAILURE_TEXT])
            kept = self.failures.get(key)
            if kept is not None:
                kept.count += 1
            elif len(self.failures) < _KEPT_FAILURES:
                self.failures[key] = ProbeFailure(hook=key[0], error=key[1])

    def request_id(self, environ: dict[str, Any]) -> str:
        """The client's id (sanitized, made unique) or a generated `s<pid>-<n>`."""
        raw = environ.get(REQUEST_HEADER_KEY)
        given = sanitize_request_id(raw) if isinstance(raw, str) else None
        if given is None:
            return f"s{os.getpid()}-{next(self._serial)}"
        with self._lock:
            seen = self._named.get(given, 0) + 1
            self._named[given] = seen
        return given if seen == 1 else f"{given}.{seen}"

    def record(self, row: RequestRow) -> None:
        """Keep one finished request (or count it dropped, past the budget). A tuple, turned
        into the record's types only by `collect`: the request's thread pays for no more."""
        if len(self._rows) < self.max_requests:
            self._rows.append(row)  # atomic under the GIL: no lock on the way
        else:
            with self._lock:
                self.dropped += 1

    def collect(self) -> ServerRecord:
        """What was recorded so far, as this process's `ServerRecord`."""
        pid = os.getpid()
        rows = sorted(self._rows, key=lambda row: row[5])
        requests = []
        lanes = []
        for rid, method, path, route, status, start, end, cpu, thread in rows:
            segment = Segment(request_lane(rid), "in-thread", start, end, cpu, None, rid)
            requests.append(
                ServerRequest(
                    id=rid,
                    method=method,
                    path=path,
                    route=route or path,
                    status=status,
                    server_start_ns=start,
                    server_end_ns=end,
                    loop_steps=None,
                    longest_step_ns=None,
                    pool_hops=0,
                    segments=[segment],
                )
            )
            lanes.append(Segment(thread_lane(pid, thread), "in-thread", start, end, cpu, None, rid))
        lanes.sort(key=lambda lane: (lane.lane, lane.start_ns))
        with self._lock:
            return ServerRecord(
                pid=pid,
                loop=WSGI_LOOP,
                precise=False,
                block_ms=0.0,
                requests=requests,
                lanes=lanes,
                counts=ProbeCounts(dropped_events=self.dropped, probe_errors=self.errors),
                failures=list(self.failures.values()),
            )

    def dump(self, path: str | Path) -> Path:
        """Write `collect()` to `path` as JSON (atomically) and return the path."""
        return dump_record(self.collect(), path)


class ProbedApp:
    """The middleware: calls the app, stamps the request, and records it when the server closes
    the response (or when the app raises)."""

    def __init__(self, app: WsgiApp, probe: WsgiProbe) -> None:
        self.app = app
        self.probe = probe

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        start_ns = time.monotonic_ns()
        cpu_start = time.thread_time_ns()
        try:
            request = _Pending(self.probe, environ, start_ns, cpu_start)
        except Exception as exc:  # the app is served whatever the probe does
            self.probe.fail("wsgi start", exc)
            return self.app(environ, start_response)

        def starting(status: str, headers: Any, exc_info: Any = None) -> Any:
            request.status_line = status
            # Read now: Flask clears its request from the environ once the app returns.
            request.route = route_of(environ)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, starting)
        except BaseException:
            request.status_line = None
            request.finish()
            raise
        return _Response(body, request)


class _Pending:
    """One request between the app's call and the response's close."""

    def __init__(
        self, probe: WsgiProbe, environ: dict[str, Any], start_ns: int, cpu_start: int
    ) -> None:
        self.probe = probe
        self.environ = environ
        self.start_ns = start_ns
        self.cpu_start = cpu_start
        self.id = probe.request_id(environ)
        self.status_line: str | None = None
        self.route: str | None = None
        self.handed: tuple[int, int] | None = None  # (monotonic, thread CPU) at the last chunk
        self._done = False

    def finish(self) -> None:
        if self._done:
            return
        self._done = True
        # The end is when the last chunk was handed to the server (the ASGI probe's end: the
        # last message handed over), not the close, which comes after the server wrote it and
        # may come after the client has read it. The CPU clock is read inside the wall
        # interval at both ends, so the CPU time fits in it (to within the two clocks'
        # resolution, which the `min` absorbs).
        if self.handed is not None:
            end_ns, cpu_end = self.handed
        else:
            cpu_end = time.thread_time_ns()
            end_ns = time.monotonic_ns()
        try:
            cpu_ns = min(cpu_end - self.cpu_start, end_ns - self.start_ns)
            env = self.environ
            path = f"{env.get('SCRIPT_NAME', '')}{env.get('PATH_INFO', '')}" or "/"
            status = int(self.status_line.split(" ", 1)[0]) if self.status_line else None
            method = str(env.get("REQUEST_METHOD", "GET"))
            thread = threading.current_thread().name
            row = (self.id, method, path, self.route, status, self.start_ns, end_ns, cpu_ns, thread)
            self.probe.record(row)
        except Exception as exc:
            self.probe.fail("wsgi finish", exc)


class _Response:
    """The app's response body, passed through, each chunk's hand-over stamped; its `close()`
    (which the server calls once the body is written, PEP 3333) records the request."""

    def __init__(self, body: Iterable[bytes], request: _Pending) -> None:
        self._body = body
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        request = self._request
        for chunk in self._body:
            request.handed = (time.monotonic_ns(), time.thread_time_ns())
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._request.finish()


def install_wsgi(app: WsgiApp, out_path: str | Path) -> WsgiApp:
    """`app` probed in this process, its record to be written to `out_path` by `save_all`."""
    probe = WsgiProbe()
    if not _installed:
        # gunicorn's `worker_exit` hook saves first; this catches a server without the hook.
        atexit.register(save_all)
    _installed.append((probe, Path(out_path)))
    return probe.wsgi(app)


def save_all() -> None:
    """Write the record of every probe `install_wsgi` made in this process (gunicorn's
    `worker_exit` hook, and at exit); a failure is printed, never raised."""
    import sys

    while _installed:
        probe, path = _installed.pop()
        try:
            probe.dump(path)
        except Exception as exc:
            print(f"loopscope: could not save the WSGI probe's record: {exc}", file=sys.stderr)
