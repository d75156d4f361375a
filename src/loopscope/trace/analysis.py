"""Pure analysis of a `Trace`: makespan, latencies, where the time went, what blocked the loop.

The thread pool's figures are in `loopscope.trace.saturation`, per-route verdicts in
`loopscope.trace.verdicts`.

Every function takes a `Trace` and returns plain numbers or small frozen records; none does I/O,
so the console, the HTML report and tests all read the same figures. Times stay integer
nanoseconds; `loopscope.report.words` turns them into words.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

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

    `cpu_ns` and `wait_ns` are `None` when no block there had its CPU time measured; `runnable_ns`
    is the time the loop thread waited for a CPU on a busy machine (0 where not measured), which
    is neither the code's CPU work nor its waiting; `routes` are the culprits' routes, `delayed`
    the number of other requests held up; `inner` the library line below `where` seen most.
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
    runnable_ns: int = 0
    inner: str | None = None
    process_cpu_ns: int | None = None
    process_runnable_ns: int | None = None

    @property
    def other_threads_cpu_ns(self) -> int | None:
        """CPU time other threads of the process spent while the loop was stuck here."""
        if self.process_cpu_ns is None or self.cpu_ns is None:
            return None
        return max(0, self.process_cpu_ns - self.cpu_ns)

    @property
    def waits_on_threads(self) -> bool:
        """Whether the loop thread mostly waited while other threads of the process computed
        (a library's own worker threads): CPU work, done elsewhere, not I/O. On a busy machine
        those threads also wait for a core, which is their work too: their run-queue time
        (where measured) counts with their CPU time."""
        other = self.other_threads_cpu_ns
        if other is not None and self.process_runnable_ns is not None:
            other += max(0, self.process_runnable_ns - self.runnable_ns)
        stuck = self.total_ns - self.runnable_ns
        return bool(self.cpu_bound is False and other and other >= CPU_BOUND_SHARE * stuck)

    @property
    def cpu_bound(self) -> bool | None:
        """Whether the blocks were mostly CPU work (`None` when CPU time is unknown).

        Time spent runnable but not running is left out: on a busy machine it would otherwise
        make CPU work look like waiting (NOTES: wall-clock thresholds mislead on busy CI)."""
        if self.cpu_ns is None or self.total_ns - self.runnable_ns <= 0:
            return None
        return self.cpu_ns >= CPU_BOUND_SHARE * (self.total_ns - self.runnable_ns)


def span_ns(trace: Trace) -> tuple[int, int] | None:
    """The run's span: first client send → last client done (or the segments' span without
    requests); `None` for an empty trace."""
    if trace.requests:
        return (
            min(r.sent_ns for r in trace.requests),
            max(r.done_ns for r in trace.requests),
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
        by_route[request.endpoint].append(request.latency_ns)
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

    `None` when the trace has no `loop:` lane segments, or when they hold only the blocks a
    watchdog saw (a measured run that was not precise, e.g. under uvloop).
    """
    if trace.run.source == "measured" and not trace.run.precise:
        return None
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
    routes = {r.id: r.endpoint for r in trace.requests}
    groups: dict[str, list[LoopBlock]] = defaultdict(list)
    for block in loop_blocks(trace):
        groups[block.where or (GC_WHERE if block.kind == "gc" else UNKNOWN_WHERE)].append(block)
    result = [group_blocks(where, blocks, routes) for where, blocks in groups.items()]
    result.sort(key=lambda g: (-g.total_ns, g.where))
    return result[:n]


def group_blocks(where: str, blocks: list[LoopBlock], routes: dict[str, str]) -> BlockGroup:
    """The blocks at `where`, summed; `routes` maps request ids to routes to name the culprits."""
    total = sum(b.duration_ns for b in blocks)
    cpus = [b.cpu_ns for b in blocks if b.cpu_ns is not None]
    cpu = sum(cpus) if cpus else None
    runnable = sum(b.runnable_ns or 0 for b in blocks)
    culprits = {routes[b.request_id] for b in blocks if b.request_id in routes}
    delayed = {d for b in blocks for d in b.delayed}
    inners = Counter(b.inner for b in blocks if b.inner is not None)
    processes = [b.process_cpu_ns for b in blocks if b.process_cpu_ns is not None]
    queued = [b.process_runnable_ns for b in blocks if b.process_runnable_ns is not None]
    return BlockGroup(
        where=where,
        kind="gc" if all(b.kind == "gc" for b in blocks) else "code",
        count=len(blocks),
        total_ns=total,
        longest_ns=max(b.duration_ns for b in blocks),
        cpu_ns=cpu,
        wait_ns=None if cpu is None else max(0, total - cpu - runnable),
        routes=tuple(sorted(culprits)),
        delayed=len(delayed),
        runnable_ns=runnable,
        inner=inners.most_common(1)[0][0] if inners else None,
        process_cpu_ns=sum(processes) if len(processes) == len(blocks) else None,
        process_runnable_ns=sum(queued) if len(queued) == len(blocks) else None,
    )
