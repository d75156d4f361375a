"""Pure analysis of a `Trace`: makespan, latencies, where the time went, what blocked the loop.

Every function takes a `Trace` and returns plain numbers or small frozen records; none does I/O,
so the console, the HTML report and tests all read the same figures. Times stay integer
nanoseconds; `format_duration` is the one place that turns them into words.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from loopscope.trace.model import STATES, BlockKind, LoopBlock, Segment, State, Trace

UNKNOWN_WHERE = "unknown"
"""The `where` of blocks whose source line was not caught."""
GC_WHERE = "garbage collection"
"""The `where` of garbage-collection pauses."""

CPU_BOUND_SHARE = 0.5
"""A block is CPU-bound when its thread CPU time is at least this share of its wall time."""


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Client-side latencies of one route, in ns (nearest-rank percentiles)."""

    count: int
    p50: int
    p90: int
    p99: int
    max: int


@dataclass(frozen=True, slots=True)
class BlockGroup:
    """The loop blocks at one source location, summed.

    `cpu_ns` and `wait_ns` are `None` when no block there had its CPU time measured; `routes` are
    the culprits' routes, `delayed` the number of other requests held up.
    """

    where: str
    kind: BlockKind
    count: int
    total_ns: int
    longest_ns: int
    cpu_ns: int | None
    wait_ns: int | None
    routes: tuple[str, ...]
    delayed: int

    @property
    def cpu_bound(self) -> bool | None:
        """Whether the blocks were mostly CPU work (`None` when CPU time is unknown)."""
        if self.cpu_ns is None or self.total_ns <= 0:
            return None
        return self.cpu_ns >= CPU_BOUND_SHARE * self.total_ns


def span_ns(trace: Trace) -> tuple[int, int] | None:
    """The run's span: first client send → last client done (or the segments' span without
    requests); `None` for an empty trace."""
    if trace.requests:
        return (
            min(r.client_send_ns for r in trace.requests),
            max(r.client_done_ns for r in trace.requests),
        )
    segments = list(all_segments(trace))
    if not segments:
        return None
    return min(s.start_ns for s in segments), max(s.end_ns for s in segments)


def makespan_ns(trace: Trace) -> int:
    """First client send → last client done, in ns (0 without requests)."""
    if not trace.requests:
        return 0
    start, end = span_ns(trace) or (0, 0)
    return end - start


def all_segments(trace: Trace) -> Iterable[Segment]:
    """Every segment of the trace: the requests' lanes, then the loop and thread lanes."""
    for request in trace.requests:
        yield from request.segments
    yield from trace.lanes


def percentile(sorted_values: list[int], p: float) -> int:
    """Nearest-rank percentile `p` (0–100) of an ascending, non-empty list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_percentiles(trace: Trace) -> dict[str, LatencyStats]:
    """Per route (in first-seen order): count, p50, p90, p99 and max client latency in ns."""
    by_route: dict[str, list[int]] = defaultdict(list)
    for request in trace.requests:
        by_route[request.route].append(request.latency_ns)
    stats: dict[str, LatencyStats] = {}
    for route, values in by_route.items():
        values.sort()
        stats[route] = LatencyStats(
            count=len(values),
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            max=values[-1],
        )
    return stats


def time_by_state(trace: Trace) -> dict[State, int]:
    """Wall time summed over all request segments, per state (every state present, in order)."""
    totals: dict[State, int] = dict.fromkeys(STATES, 0)
    for request in trace.requests:
        for segment in request.segments:
            totals[segment.state] += segment.duration_ns
    return totals


def has_server_data(trace: Trace) -> bool:
    """Whether anything beyond the client's view was recorded (a probe or a model ran)."""
    return bool(trace.lanes or trace.loop_blocks or trace.pool) or any(
        s.state != "queued" for r in trace.requests for s in r.segments
    )


def loop_utilisation(trace: Trace) -> float | None:
    """The share of the run's span the event loop lane(s) were busy, averaged over loops.

    `None` when the trace has no `loop:` lane segments.
    """
    by_lane: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for segment in trace.lanes:
        if segment.lane.startswith("loop:"):
            by_lane[segment.lane].append((segment.start_ns, segment.end_ns))
    span = span_ns(trace)
    if not by_lane or span is None or span[1] <= span[0]:
        return None
    start, end = span
    busy = [union_ns(intervals, start, end) for intervals in by_lane.values()]
    return sum(busy) / (len(busy) * (end - start))


def union_ns(intervals: Iterable[tuple[int, int]], lo: int, hi: int) -> int:
    """Total length of the union of `intervals`, clipped to `[lo, hi]`."""
    total = 0
    cursor = lo
    for start, end in sorted(intervals):
        start, end = max(start, cursor), min(end, hi)
        if end > start:
            total += end - start
            cursor = end
    return total


def loop_blocks(trace: Trace) -> list[LoopBlock]:
    """The loop's blocks: `trace.loop_blocks`, or, for traces that only carry segments (a model,
    an older probe), one block per `loop-blocked` request segment."""
    if trace.loop_blocks:
        return list(trace.loop_blocks)
    return [
        LoopBlock(
            start_ns=s.start_ns,
            end_ns=s.end_ns,
            cpu_ns=s.cpu_ns,
            request_id=s.request_id or r.id,
            where=s.where,
        )
        for r in trace.requests
        for s in r.segments
        if s.state == "loop-blocked"
    ]


def top_loop_blocks(trace: Trace, n: int = 10) -> list[BlockGroup]:
    """The `n` source locations that held the loop longest, blocks grouped by `where`."""
    routes = {r.id: r.route for r in trace.requests}
    groups: dict[str, list[LoopBlock]] = defaultdict(list)
    for block in loop_blocks(trace):
        groups[block.where or (GC_WHERE if block.kind == "gc" else UNKNOWN_WHERE)].append(block)
    result = [_group(where, blocks, routes) for where, blocks in groups.items()]
    result.sort(key=lambda g: (-g.total_ns, g.where))
    return result[:n]


def _group(where: str, blocks: list[LoopBlock], routes: dict[str, str]) -> BlockGroup:
    total = sum(b.duration_ns for b in blocks)
    cpus = [b.cpu_ns for b in blocks if b.cpu_ns is not None]
    cpu = sum(cpus) if cpus else None
    culprits = {routes[b.request_id] for b in blocks if b.request_id in routes}
    delayed = {d for b in blocks for d in b.delayed}
    return BlockGroup(
        where=where,
        kind="gc" if all(b.kind == "gc" for b in blocks) else "code",
        count=len(blocks),
        total_ns=total,
        longest_ns=max(b.duration_ns for b in blocks),
        cpu_ns=cpu,
        wait_ns=None if cpu is None else max(0, total - cpu),
        routes=tuple(sorted(culprits)),
        delayed=len(delayed),
    )


@dataclass(frozen=True, slots=True)
class PoolWaits:
    """One request's trips through the thread pool and its waits for a token, in ns."""

    request_id: str
    route: str
    calls: int
    waits: int
    total_wait_ns: int
    max_wait_ns: int


@dataclass(frozen=True, slots=True)
class PoolSaturation:
    """How full the thread pool got.

    `total_tokens` comes from the limiter samples, else from `Run.threads`; `full_ns` is the time
    every token was borrowed; `per_request` lists the requests that used the pool.
    """

    total_tokens: int | None
    peak_borrowed: int
    peak_waiting: int
    full_ns: int
    calls: int
    per_request: tuple[PoolWaits, ...]

    @property
    def used(self) -> bool:
        """Whether anything ran in the thread pool at all."""
        return self.calls > 0 or self.peak_borrowed > 0


def pool_saturation(trace: Trace) -> PoolSaturation:
    """Peak borrowed tokens, peak waiters, time at full tokens and each request's token waits.

    Uses the limiter samples when there are any, else replays `trace.pool` (and, without that,
    the requests' `pool-wait`/`in-thread` segments).
    """
    span = span_ns(trace) or (0, 0)
    running, waiting = _pool_intervals(trace, span[1])
    total = max((s.total for s in trace.pool_samples), default=None) or trace.run.threads
    if trace.pool_samples:
        samples = sorted(trace.pool_samples, key=lambda s: s.t_ns)
        peak_borrowed = max(s.borrowed for s in samples)
        peak_waiting = max(s.waiting for s in samples)
        full = sum(
            b.t_ns - a.t_ns
            for a, b in itertools.pairwise(samples)
            if a.total > 0 and a.borrowed >= a.total
        )
    else:
        peak_borrowed = _peak(running)
        peak_waiting = _peak(waiting)
        full = _time_at_least(running, total) if total else 0
    return PoolSaturation(
        total_tokens=total,
        peak_borrowed=peak_borrowed,
        peak_waiting=peak_waiting,
        full_ns=full,
        calls=len(running),
        per_request=_pool_waits(trace),
    )


POOL_WAIT_NOTICE_NS = 1_000_000
"""Token waits shorter than this are the limiter's bookkeeping, not contention."""


def _pool_intervals(
    trace: Trace, end_ns: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(running, waiting) intervals of every pool call; unfinished ones run to `end_ns`."""
    if trace.pool:
        running = [
            (c.started_ns, c.finished_ns or end_ns) for c in trace.pool if c.started_ns is not None
        ]
        waiting = [(c.submitted_ns, c.started_ns or end_ns) for c in trace.pool]
        return running, waiting
    by_state: dict[State, list[tuple[int, int]]] = defaultdict(list)
    for request in trace.requests:
        for s in request.segments:
            by_state[s.state].append((s.start_ns, s.end_ns))
    return by_state["in-thread"], by_state["pool-wait"]


def _pool_waits(trace: Trace) -> tuple[PoolWaits, ...]:
    waits: dict[str, list[int]] = defaultdict(list)
    calls: dict[str, int] = defaultdict(int)
    if trace.pool:
        for call in trace.pool:
            if call.request_id is None:
                continue
            calls[call.request_id] += 1
            if call.started_ns is not None:
                waits[call.request_id].append(call.started_ns - call.submitted_ns)
    else:
        for request in trace.requests:
            for s in request.segments:
                if s.state == "in-thread":
                    calls[request.id] += 1
                elif s.state == "pool-wait":
                    waits[request.id].append(s.duration_ns)
    routes = {r.id: r.route for r in trace.requests}
    return tuple(
        PoolWaits(
            request_id=rid,
            route=routes.get(rid, "?"),
            calls=calls[rid],
            waits=sum(1 for w in waits[rid] if w >= POOL_WAIT_NOTICE_NS),
            total_wait_ns=sum(waits[rid]),
            max_wait_ns=max(waits[rid], default=0),
        )
        for rid in calls
    )


def _levels(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(time, level) after each change of the number of open intervals."""
    # Ends sort before starts at the same instant: back-to-back intervals do not overlap.
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    levels: list[tuple[int, int]] = []
    level = 0
    for t, delta in events:
        level += delta
        levels.append((t, level))
    return levels


def _peak(intervals: list[tuple[int, int]]) -> int:
    return max((level for _, level in _levels(intervals)), default=0)


def _time_at_least(intervals: list[tuple[int, int]], threshold: int) -> int:
    levels = _levels(intervals)
    return sum(b[0] - a[0] for a, b in itertools.pairwise(levels) if a[1] >= threshold)


def peak_concurrency(intervals: list[tuple[int, int]]) -> int:
    """The largest number of `intervals` open at one instant (touching ends do not overlap)."""
    return _peak(intervals)


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
    worst = max((_group(w, bs, {}) for w, bs in by_where.items()), key=lambda g: g.total_ns)
    total = format_duration(sum(b.duration_ns for b in blocks))
    how = f"1 time, {total}" if len(blocks) == 1 else f"{len(blocks)} times, {total} in total"
    where = None if worst.where in (UNKNOWN_WHERE, GC_WHERE) else worst.where
    at = "an unknown line" if worst.where == UNKNOWN_WHERE else short_where(worst.where)
    if worst.kind == "gc":
        text = f"held the loop in garbage collection ({how}) — allocate less per request"
        return Verdict(route, "blocks-loop", text)
    if worst.cpu_bound:
        text = f"CPU-bound at {at} ({how}) — offload to a process pool"
        return Verdict(route, "cpu-bound", text, where)
    if worst.cpu_bound is False:
        text = (
            f"blocks the event loop at {at} ({how}) — I/O wait: await an async driver or offload it"
        )
        return Verdict(route, "io-wait", text, where)
    text = f"blocks the event loop at {at} ({how}) — offload it or use an async API"
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


def short_where(where: str | None) -> str:
    """`where` for people: an absolute path cut to its last directory and file
    (`/srv/app/shop/repo.py:7` → `shop/repo.py:7`); other values unchanged."""
    if not where or not (where.startswith("/") or where[1:3] in (":\\", ":/")):
        return where or UNKNOWN_WHERE
    parts = where.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def format_duration(ns: int) -> str:
    """`ns` in words a reader takes in at a glance: `0.35 ms`, `4.2 ms`, `850 ms`, `2.9 s`."""
    ms = ns / 1e6
    if ns == 0:
        return "0 ms"
    # 999.7 ms reads as "1.0 s", not "1000 ms": the unit switches where the rounding would.
    if ms >= 999.5:
        return f"{ms / 1000:.1f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"
