"""Send a scenario over HTTP and stamp every request on the shared clock.

The driver must never be the bottleneck: aiohttp with no connection cap (httpx's default pool of
100 once made 200 concurrent requests look twice as slow as the server really was), all users
released together by one event, and nothing but stamping between a request's send and its answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from loopscope.errors import LoadError
from loopscope.load.scenarios import Hit, Scenario
from loopscope.trace.constants import REQUEST_HEADER
from loopscope.trace.model import Request

REQUEST_ID_HEADER = REQUEST_HEADER

Progress = Callable[[int, int], None]


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


async def _send(
    session: aiohttp.ClientSession, base_url: str, slot: _Slot, timeout_s: float
) -> Request:
    hit = slot.hit
    send_ns = time.monotonic_ns()
    first_byte_ns: int | None = None
    status: int | None = None
    size: int | None = None
    error: str | None = None
    try:
        async with session.request(
            hit.method,
            base_url + hit.path,
            json=hit.json_body,
            headers={REQUEST_ID_HEADER: slot.id},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            first_byte_ns = time.monotonic_ns()
            status = response.status
            size = len(await response.read())
    except TimeoutError:
        error = f"no answer within {timeout_s:g} s"
    except aiohttp.ClientError as exc:
        error = f"{type(exc).__name__}: {exc}"
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
            results.append(await _send(session, base_url, slot, scenario.request_timeout_s))
            if progress is not None:
                progress(len(results), total)

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(user_loop(slots)) for slots in plan]
        # Let every user reach the barrier before any of them sends.
        await asyncio.sleep(0)
        start.set()
        await asyncio.gather(*tasks)

    if results and all(r.status is None for r in results):
        raise LoadError(
            f"None of the {len(results)} requests to {base_url} got an answer; the first "
            f"failed with: {results[0].error}."
        )
    return sorted(results, key=lambda r: int(r.id[len(id_prefix) :]))
