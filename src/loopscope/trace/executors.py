"""Executors and drivers' threads in a `Trace`: what each one ran, how busy it got, who waited.

anyio's thread pool (the `PoolCall`s with no `executor`) is `loopscope.trace.saturation`'s. The
others — `asyncio.to_thread` and `run_in_executor` on the loop's default executor or an app's
own (`reports`), aiosqlite's thread per connection — are here: pure functions over
`trace.pool`, returning numbers, never sentences.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from loopscope.trace.model import PoolCall, Trace
from loopscope.trace.saturation import POOL_WAIT_NOTICE_NS, peak_concurrency


@dataclass(frozen=True, slots=True)
class ExecutorUse:
    """One executor over the run: its `capacity` (threads; for aiosqlite, 1 per connection),
    the calls it ran, the threads that ran them, the most calls running at once, and the calls
    that waited at least `POOL_WAIT_NOTICE_NS` for a free thread (`waits`, the longest)."""

    name: str
    capacity: int | None
    calls: int
    threads: tuple[str, ...]
    peak_busy: int
    waits: int
    longest_wait_ns: int


@dataclass(frozen=True, slots=True)
class ThreadWork:
    """What one route's requests waited on in one executor: `requests` of them sent work there,
    which ran `in_thread_ns` in all (on `threads`) after waiting up to `longest_wait_ns` for a
    free thread."""

    executor: str
    threads: tuple[str, ...]
    requests: int
    calls: int
    in_thread_ns: int
    longest_wait_ns: int

    @property
    def per_request_ns(self) -> int:
        """The mean time in the executor's threads of a request that used it."""
        return self.in_thread_ns // max(1, self.requests)


def executor_calls(trace: Trace) -> list[PoolCall]:
    """The calls that ran in an executor or a driver's thread, not in anyio's thread pool."""
    return [call for call in trace.pool if call.executor is not None]


def _end(trace: Trace) -> int:
    return max((r.done_ns for r in trace.requests), default=0)


def _wait(call: PoolCall, end_ns: int) -> int:
    started = call.started_ns if call.started_ns is not None else max(end_ns, call.submitted_ns)
    return started - call.submitted_ns


def _threads(calls: list[PoolCall]) -> tuple[str, ...]:
    return tuple(sorted({c.thread for c in calls if c.thread is not None}))


def executors(trace: Trace) -> list[ExecutorUse]:
    """Each executor seen in the run, in order of first use."""
    by_name: dict[str, list[PoolCall]] = defaultdict(list)
    for call in sorted(executor_calls(trace), key=lambda c: c.submitted_ns):
        by_name[call.executor or ""].append(call)
    end = _end(trace)
    result = []
    for name, calls in by_name.items():
        running = [
            (c.started_ns, c.finished_ns or max(end, c.started_ns))
            for c in calls
            if c.started_ns is not None
        ]
        waits = [_wait(c, end) for c in calls]
        capacities = {c.capacity for c in calls if c.capacity is not None}
        result.append(
            ExecutorUse(
                name=name,
                capacity=max(capacities) if capacities else None,
                calls=len(calls),
                threads=_threads(calls),
                peak_busy=peak_concurrency(running),
                waits=sum(1 for w in waits if w >= POOL_WAIT_NOTICE_NS),
                longest_wait_ns=max(waits, default=0),
            )
        )
    return result


def thread_work(trace: Trace) -> dict[str, tuple[ThreadWork, ...]]:
    """For each route (`GET /reports/{id}`), what its requests ran in each executor."""
    route_of = {r.id: r.endpoint for r in trace.requests}
    grouped: dict[tuple[str, str], list[PoolCall]] = defaultdict(list)
    for call in executor_calls(trace):
        route = route_of.get(call.request_id or "")
        if route is not None:
            grouped[(route, call.executor or "")].append(call)
    end = _end(trace)
    out: dict[str, list[ThreadWork]] = defaultdict(list)
    for (route, name), calls in grouped.items():
        out[route].append(
            ThreadWork(
                executor=name,
                threads=_threads(calls),
                requests=len({c.request_id for c in calls}),
                calls=len(calls),
                in_thread_ns=sum(
                    (c.finished_ns or end) - c.started_ns for c in calls if c.started_ns is not None
                ),
                longest_wait_ns=max((_wait(c, end) for c in calls), default=0),
            )
        )
    return {route: tuple(work) for route, work in out.items()}
