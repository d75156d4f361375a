"""What the WSGI probe costs each request: a trivial WSGI app called as a WSGI server calls it
(call, iterate the body, close), with and without `loopscope.probe.wsgi`'s middleware, every
request tagged with an `x-loopscope-request` id; the best of 7 rounds of 20,000 requests each.

    python benchmarks/wsgi_probe_cost.py
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from loopscope.probe.wsgi import WsgiApp, WsgiProbe

REQUESTS = 20_000
ROUNDS = 7


def trivial(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"ok"]


def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    return None


def microseconds_per_request(app: WsgiApp) -> float:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_LOOPSCOPE_REQUEST": "B1"}
    started = time.perf_counter_ns()
    for _ in range(REQUESTS):
        body = app(dict(environ), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter_ns() - started) / REQUESTS / 1000


def main() -> None:
    plain = min(microseconds_per_request(trivial) for _ in range(ROUNDS))
    probe = WsgiProbe(max_requests=REQUESTS * ROUNDS)
    probed = min(microseconds_per_request(probe.wsgi(trivial)) for _ in range(ROUNDS))
    print(f"without the probe: {plain:.2f} µs per request")
    print(f"with the probe:    {probed:.2f} µs per request (+{probed - plain:.2f} µs)")


if __name__ == "__main__":
    main()
