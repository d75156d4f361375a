"""The thread pool in a `Trace`: tokens in use, who waited for one, and for how long.

Pure functions over the trace's limiter samples, its pool calls, or failing those the requests'
`pool-wait`/`in-thread` segments; no I/O. This is anyio's thread pool (the calls with no
`executor`); executors and drivers' threads are `loopscope.trace.executors`'.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

from loopscope.trace.analysis import span_ns
from loopscope.trace.model import PoolCall, State, Trace


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


POOL_WAIT_NOTICE_NS = 5_000_000
"""Token waits shorter than this are bookkeeping and a new worker thread starting (a millisecond
or two here), not contention."""


def _pool_intervals(
    trace: Trace, end_ns: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(running, waiting) intervals of every pool call; unfinished ones run to `end_ns`."""
    if trace.pool:
        calls = _anyio_calls(trace)
        running = [
            (c.started_ns, c.finished_ns or end_ns) for c in calls if c.started_ns is not None
        ]
        waiting = [(c.submitted_ns, c.started_ns or end_ns) for c in calls]
        return running, waiting
    by_state: dict[State, list[tuple[int, int]]] = defaultdict(list)
    for request in trace.requests:
        for s in request.segments:
            by_state[s.state].append((s.start_ns, s.end_ns))
    return by_state["in-thread"], by_state["pool-wait"]


def _anyio_calls(trace: Trace) -> list[PoolCall]:
    return [c for c in trace.pool if c.executor is None]


def _pool_waits(trace: Trace) -> tuple[PoolWaits, ...]:
    waits: dict[str, list[int]] = defaultdict(list)
    calls: dict[str, int] = defaultdict(int)
    # The segments, where painted, are the better witness: the probe has already told a wait for
    # a token from a wait for a blocked loop (`ready`), which the raw calls cannot.
    painted = any(s.state in ("pool-wait", "in-thread") for r in trace.requests for s in r.segments)
    for call in _anyio_calls(trace):
        if call.request_id is not None:
            calls[call.request_id] += 1
            if not painted and call.started_ns is not None:
                waits[call.request_id].append(call.started_ns - call.submitted_ns)
    for request in trace.requests if painted else ():
        for s in request.segments:
            if s.state == "in-thread" and not trace.pool:
                calls[request.id] += 1
            elif s.state == "pool-wait":
                waits[request.id].append(s.duration_ns)
    routes = {r.id: r.endpoint for r in trace.requests}
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
