"""One plain-words verdict per route: does it block the loop, wait for the pool, or neither?"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from loopscope.trace.analysis import (
    GC_WHERE,
    UNKNOWN_WHERE,
    format_duration,
    group_blocks,
    loop_blocks,
    short_where,
)
from loopscope.trace.fixes import FIX_CPU, FIX_IO_WAIT, FIX_UNKNOWN
from loopscope.trace.model import LoopBlock, Trace
from loopscope.trace.saturation import PoolWaits, pool_saturation

VerdictKind = Literal[
    "cpu-bound", "io-wait", "blocks-loop", "pool-wait", "thread-pool", "event-loop", "client-only"
]

POOL_WAIT_HEAVY_SHARE = 0.1
"""Token waits are worth a verdict when they add up to this share of the route's latency."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One route's verdict: `kind` for machines and styling, `text` in plain words for people."""

    route: str
    kind: VerdictKind
    text: str
    where: str | None = None


def verdicts(trace: Trace) -> list[Verdict]:
    """One plain-words verdict per route, in first-seen order.

    Loop blocks come first (they hold up every request), then heavy waits for a thread-pool
    token; a route with neither gets "no loop blocks over the threshold".
    """
    route_of = {r.id: r.route for r in trace.requests}
    blocks: dict[str, list[LoopBlock]] = defaultdict(list)
    for block in loop_blocks(trace):
        if block.request_id in route_of:
            blocks[route_of[block.request_id]].append(block)
    pool: dict[str, list[PoolWaits]] = defaultdict(list)
    for waits in pool_saturation(trace).per_request:
        pool[waits.route].append(waits)
    latency: dict[str, int] = defaultdict(int)
    served: set[str] = set()
    for request in trace.requests:
        latency[request.route] += request.latency_ns
        if request.server_start_ns is not None or any(
            s.state != "queued" for s in request.segments
        ):
            served.add(request.route)
    threshold = f" ({trace.run.block_ms:g} ms)" if trace.run.block_ms else ""
    result = []
    for route in dict.fromkeys(route_of.values()):
        if blocks[route]:
            result.append(_block_verdict(route, blocks[route]))
        elif pool[route]:
            result.append(_pool_verdict(route, pool[route], latency[route], threshold))
        elif route in served:
            text = f"runs on the event loop; no loop blocks over the threshold{threshold}"
            result.append(Verdict(route, "event-loop", text))
        else:
            text = "client view only: no server-side data was recorded for this route"
            result.append(Verdict(route, "client-only", text))
    return result


def _block_verdict(route: str, blocks: list[LoopBlock]) -> Verdict:
    by_where: dict[str, list[LoopBlock]] = defaultdict(list)
    for block in blocks:
        by_where[block.where or (GC_WHERE if block.kind == "gc" else UNKNOWN_WHERE)].append(block)
    worst = max((group_blocks(w, bs, {}) for w, bs in by_where.items()), key=lambda g: g.total_ns)
    total = format_duration(sum(b.duration_ns for b in blocks))
    how = f"1 time, {total}" if len(blocks) == 1 else f"{len(blocks)} times, {total} in total"
    where = None if worst.where in (UNKNOWN_WHERE, GC_WHERE) else worst.where
    at = "an unknown line" if worst.where == UNKNOWN_WHERE else short_where(worst.where)
    if worst.kind == "gc":
        text = f"held the loop in garbage collection ({how}) — allocate less per request"
        return Verdict(route, "blocks-loop", text)
    if worst.cpu_bound:
        text = f"CPU-bound at {at} ({how}) — {FIX_CPU}"
        return Verdict(route, "cpu-bound", text, where)
    if worst.cpu_bound is False:
        text = f"blocks the event loop at {at} ({how}) — {FIX_IO_WAIT}"
        return Verdict(route, "io-wait", text, where)
    text = f"blocks the event loop at {at} ({how}) — {FIX_UNKNOWN}"
    return Verdict(route, "blocks-loop", text, where)


def _pool_verdict(route: str, waits: list[PoolWaits], latency_ns: int, threshold: str) -> Verdict:
    count = sum(w.waits for w in waits)
    total = sum(w.total_wait_ns for w in waits)
    if count and total >= POOL_WAIT_HEAVY_SHARE * latency_ns:
        longest = format_duration(max(w.max_wait_ns for w in waits))
        times = "once" if count == 1 else f"{count} times"
        text = (
            f"runs in the thread pool; waited for a token {times} (up to {longest}): "
            "raise the limiter or make it async"
        )
        return Verdict(route, "pool-wait", text)
    text = f"runs in the thread pool; no loop blocks over the threshold{threshold}"
    return Verdict(route, "thread-pool", text)
