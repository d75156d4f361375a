"""Send a scenario over HTTP and stamp every request on the shared clock.

The driver must never be the bottleneck: aiohttp with no connection cap (httpx's default pool of
100 once made 200 concurrent requests look twice as slow as the server really was), all users
released together by one event, and nothing but stamping between a request's send and its answer.

A request's recorded error must be its own. After an unhandled exception Starlette answers 500
itself and uvicorn then closes the socket, without a `Connection: close` on that response; a
client that pools the connection sends the user's next request into a closed socket and gets
"connection reset". So a connection that answered 5xx is never reused, and a request that fails
on a reused connection before any byte of its answer is sent once more on a fresh one.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp

from loopscope.errors import LoadError
from loopscope.load.scenarios import Hit, Scenario
from loopscope.trace.constants import REQUEST_HEADER
from loopscope.trace.model import Request

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class _Attempt:
    """Per-request tracing context: whether aiohttp sent it on a pooled connection."""

    reused: bool = False


async def _on_reuse(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceConnectionReuseconnParams,
) -> None:
    context.trace_request_ctx.reused = True


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_connection_reuseconn.append(_on_reuse)
    return config


def _is_stale_connection(exc: aiohttp.ClientError, attempt: _Attempt) -> bool:
    """Whether `exc` says the pooled connection was already closed by the server, so the request
    never reached the app: a disconnect or reset on a reused connection, before any answer.
    (A failure to connect at all is the server's, and is never retried.)"""
    if not attempt.reused or isinstance(exc, aiohttp.ClientConnectorError):
        return False
    return isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)


def _retire_after_error(response: aiohttp.ClientResponse) -> None:
    # Must run before the body is read: reading it to the end hands the connection back to
    # the pool.
    connection = response.connection
    if response.status >= 500 and connection is not None and connection.protocol is not None:
        connection.protocol.force_close()


@dataclass(slots=True)
class _Slot:
    """Where one request's result goes; ids are given out in send order within a user."""

    id: str
    user: int
    hit: Hit


def _plan(scenario: Scenario, id_prefix: str) -> list[list[_Slot]]:
    # R1, R2, ... in the order the seed numbers them: the first request of every user, then the
    # second, and so on.
    plan: list[list[_Slot]] = [[] for _ in range(scenario.users)]
    number = 0
    for _ in range(scenario.rounds):
        width = max(len(hits) for hits in scenario.hits_by_user)
        for k in range(width):
            for user, hits in enumerate(scenario.hits_by_user):
                if k < len(hits):
                    number += 1
                    plan[user].append(_Slot(f"{id_prefix}{number}", user, hits[k]))
    return plan


@dataclass(slots=True)
class _Sessions:
    """The pooled session every request starts on, and a no-pool one for retries."""

    pooled: aiohttp.ClientSession
    fresh: aiohttp.ClientSession


async def _send(sessions: _Sessions, base_url: str, slot: _Slot, timeout_s: float) -> Request:
    hit = slot.hit
    first_byte_ns: int | None = None
    status: int | None = None
    size: int | None = None
    error: str | None = None
    session = sessions.pooled
    while True:
        attempt = _Attempt()
        send_ns = time.monotonic_ns()
        try:
            async with session.request(
                hit.method,
                base_url + hit.path,
                json=hit.json_body,
                headers={REQUEST_HEADER: slot.id},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                trace_request_ctx=attempt,
            ) as response:
                first_byte_ns = time.monotonic_ns()
                status = response.status
                _retire_after_error(response)
                size = len(await response.read())
        except TimeoutError:
            error = f"no answer within {timeout_s:g} s"
        except aiohttp.ClientError as exc:
            retry = session is sessions.pooled and first_byte_ns is None
            if retry and _is_stale_connection(exc, attempt):
                # The failed attempt never reached the app; the retry is the request, and its
                # own send stamp starts its latency.
                session = sessions.fresh
                continue
            error = f"{type(exc).__name__}: {exc}"
        break
    return Request(
        id=slot.id,
        method=hit.method,
        path=hit.path,
        route=hit.path.split("?", 1)[0],
        status=status,
        client_send_ns=send_ns,
        client_first_byte_ns=first_byte_ns,
        client_done_ns=time.monotonic_ns(),
        size=size,
        user=slot.user,
        error=error,
    )


async def run_load(
    base_url: str, scenario: Scenario, progress: Progress | None = None, id_prefix: str = "R"
) -> list[Request]:
    """Send `scenario` to `base_url`; return every request, in id order, answered or not.

    Requests are numbered in the seed's way, `R1`, `R2`, ... (`id_prefix` replaces the `R`).

    Raises `LoadError` only when no request got an answer at all (the server is unreachable).
    """
    plan = _plan(scenario, id_prefix)
    total = scenario.total_requests
    results: list[Request] = []
    start = asyncio.Event()

    async def user_loop(slots: list[_Slot]) -> None:
        await start.wait()
        for slot in slots:
            results.append(await _send(sessions, base_url, slot, scenario.request_timeout_s))
            if progress is not None:
                progress(len(results), total)

    pooled = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    fresh = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=True)
    tracing = [_trace_config()]
    async with (
        aiohttp.ClientSession(connector=pooled, trace_configs=tracing) as pooled_session,
        aiohttp.ClientSession(connector=fresh) as fresh_session,
    ):
        sessions = _Sessions(pooled_session, fresh_session)
        tasks = [asyncio.create_task(user_loop(slots)) for slots in plan]
        # Let every user reach the barrier before any of them sends.
        await asyncio.sleep(0)
        # The process the driver runs in may hold a large heap (a test suite, an analysis): a
        # full collection of it would stall the driver's loop mid-run and delay every send.
        # Frozen objects are left out of collections until the run is over.
        gc.freeze()
        try:
            start.set()
            await asyncio.gather(*tasks)
        finally:
            gc.unfreeze()

    if results and all(r.status is None for r in results):
        raise LoadError(
            f"None of the {len(results)} requests to {base_url} got an answer; the first "
            f"failed with: {results[0].error}."
        )
    return sorted(results, key=lambda r: int(r.id[len(id_prefix) :]))
