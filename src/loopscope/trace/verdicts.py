"""One verdict per route, as a kind and numbers: does it block the loop, wait for the pool, or
neither? `loopscope.report.words.verdict_text` says it in plain words."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Literal

from loopscope.trace.analysis import (
    GC_WHERE,
    UNKNOWN_WHERE,
    group_blocks,
    loop_blocks,
)
from loopscope.trace.executors import ThreadWork, thread_work
from loopscope.trace.model import LoopBlock, Trace
from loopscope.trace.saturation import PoolWaits, pool_saturation

VerdictKind = Literal[
    "cpu-bound",
    "cpu-in-threads",
    "io-wait",
    "blocks-loop",
    "gc",
    "pool-wait",
    "thread-pool",
    "offloaded",
    "event-loop",
    "client-only",
]

POOL_WAIT_HEAVY_SHARE = 0.1
"""Token waits are worth a verdict when they add up to this share of the route's latency."""


@dataclass(frozen=True, slots=True)
class PoolPart:
    """One function of a route that ran in the thread pool: its qualified name, where it is
    defined, and how often it ran (a `def` endpoint, a `def` dependency, an offloaded call, or
    FastAPI's response validation of a `def` endpoint)."""

    func: str
    where: str | None
    count: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """One route's verdict.

    `kind` says what happened; for the loop-block kinds `count` and `total_ns` are the route's
    blocks and `where` the location that held the loop longest (`None`: not caught); for
    `pool-wait` they are its waits for a token and `longest_ns` the longest one; `inner` is the
    installed library's line below `where` that did the work. `block_ms` is the
    run's loop-block threshold, where one was set. `in_pool` names which parts of the route ran
    in the thread pool (the rest ran on the event loop). `threads` is what the route waited on
    in executors and drivers' threads (`asyncio.to_thread`, an app's own executor, aiosqlite);
    `offloaded` is the kind of a route that did so with no loop block and no anyio pool trip.
    """

    route: str
    kind: VerdictKind
    where: str | None = None
    count: int = 0
    total_ns: int = 0
    longest_ns: int = 0
    block_ms: float | None = None
    inner: str | None = None
    in_pool: tuple[PoolPart, ...] = ()
    threads: tuple[ThreadWork, ...] = ()


def verdicts(trace: Trace) -> list[Verdict]:
    """One verdict per route, in first-seen order.

    Loop blocks come first (they hold up every request), then heavy waits for a thread-pool
    token; a route with neither ran on the loop or in the pool with no block over the threshold.
    """
    route_of = {r.id: r.endpoint for r in trace.requests}
    blocks: dict[str, list[LoopBlock]] = defaultdict(list)
    for block in loop_blocks(trace):
        if block.request_id in route_of:
            blocks[route_of[block.request_id]].append(block)
    pool: dict[str, list[PoolWaits]] = defaultdict(list)
    saturation = pool_saturation(trace)
    for waits in saturation.per_request:
        pool[waits.route].append(waits)
    # Where the limiter was sampled and never had a waiter, a wait before a thread started was
    # the hand-off to the thread, not a wait for a token.
    handoff_only = bool(trace.pool_samples) and saturation.peak_waiting == 0
    latency: dict[str, int] = defaultdict(int)
    served: set[str] = set()
    for request in trace.requests:
        latency[request.endpoint] += request.latency_ns
        if request.server_start_ns is not None or any(
            s.state != "queued" for s in request.segments
        ):
            served.add(request.endpoint)
    block_ms = trace.run.block_ms
    parts = _pool_parts(trace, route_of)
    work = thread_work(trace)
    result = []
    for route in dict.fromkeys(route_of.values()):
        if blocks[route]:
            verdict = _block_verdict(route, blocks[route], block_ms)
        elif work.get(route) and not parts.get(route):
            verdict = Verdict(route, "offloaded", block_ms=block_ms)
        elif pool[route] and handoff_only:
            verdict = Verdict(route, "thread-pool", block_ms=block_ms)
        elif pool[route]:
            verdict = _pool_verdict(route, pool[route], latency[route], block_ms)
        elif route in served:
            verdict = Verdict(route, "event-loop", block_ms=block_ms)
        else:
            verdict = Verdict(route, "client-only")
        result.append(
            dataclasses.replace(verdict, in_pool=parts.get(route, ()), threads=work.get(route, ()))
        )
    return result


def _pool_parts(trace: Trace, route_of: dict[str, str]) -> dict[str, tuple[PoolPart, ...]]:
    counts: dict[str, Counter[tuple[str, str | None]]] = defaultdict(Counter)
    for call in trace.pool:
        if call.executor is not None:  # an executor's, not anyio's pool
            continue
        route = route_of.get(call.request_id or "")
        if route is not None:
            counts[route][(call.func, call.where)] += 1
    return {
        route: tuple(PoolPart(func, where, n) for (func, where), n in parts.items())
        for route, parts in counts.items()
    }


def _block_verdict(route: str, blocks: list[LoopBlock], block_ms: float | None) -> Verdict:
    by_where: dict[str, list[LoopBlock]] = defaultdict(list)
    for block in blocks:
        by_where[block.where or (GC_WHERE if block.kind == "gc" else UNKNOWN_WHERE)].append(block)
    worst = max((group_blocks(w, bs, {}) for w, bs in by_where.items()), key=lambda g: g.total_ns)
    where = None if worst.where in (UNKNOWN_WHERE, GC_WHERE) else worst.where
    kind: VerdictKind = "blocks-loop"
    if worst.kind == "gc":
        kind = "gc"
    elif worst.cpu_bound:
        kind = "cpu-bound"
    elif worst.waits_on_threads:
        kind = "cpu-in-threads"
    elif worst.cpu_bound is False:
        kind = "io-wait"
    return Verdict(
        route,
        kind,
        where,
        count=len(blocks),
        total_ns=sum(b.duration_ns for b in blocks),
        longest_ns=max(b.duration_ns for b in blocks),
        block_ms=block_ms,
        inner=worst.inner if where is not None else None,
    )


def _pool_verdict(
    route: str, waits: list[PoolWaits], latency_ns: int, block_ms: float | None
) -> Verdict:
    count = sum(w.waits for w in waits)
    total = sum(w.total_wait_ns for w in waits)
    if count and total >= POOL_WAIT_HEAVY_SHARE * latency_ns:
        longest = max(w.max_wait_ns for w in waits)
        return Verdict(
            route, "pool-wait", count=count, total_ns=total, longest_ns=longest, block_ms=block_ms
        )
    return Verdict(route, "thread-pool", block_ms=block_ms)
