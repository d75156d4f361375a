"""Bounded storage for everything the probe's hooks observe.

The hooks run on the event loop's hot path, in worker threads and in the watchdog thread, so
they only append tuples and small objects here; turning them into segments and blocks happens
later, in `loopscope.probe.segments`, when somebody asks for the result. One budget
(`max_events`) covers every kind of record, so a long run cannot grow without bound (viztracer#308:
async traces reach gigabytes); past it records are counted in `dropped`, never stored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loopscope.trace.model import LoopBlock, PoolCall, PoolSample

Step = tuple[int, int, int, str | None, int]
"""One loop step: `(start_ns, end_ns, cpu_end_ns, request_id, ready_ns)`.

`cpu_end_ns` is the loop thread's CPU clock at the end of a long step and 0 for short ones
(reading the thread CPU clock is a system call, too dear for every step); `ready_ns` is when the
handle became runnable, 0 where unknown.
"""

GcPause = tuple[int, int]
"""One garbage collection on the loop thread: `(start_ns, end_ns)`."""

# Handles stamped as runnable but never run (cancelled ones) would pile up; past this many the
# stamps are dropped wholesale, which only costs a few `ready` segments.
STAMP_LIMIT = 10_000
# The stack samples kept for one stuck step: enough to find the most frequent line.
SAMPLES_PER_STALL = 64


RequestRow = tuple[Any, ...]
"""One request as the middleware stores it: `(method, path, start_ns, first_step_ns)` while it
runs, then `(method, path, start_ns, first_step_ns, end_ns, status, route, last_step_ns)`.

A tuple of strings, ints and `None`, not an object: one is made for every request, and the
garbage collector stops tracking such tuples at its next pass (see `Log`).
`RequestRecord.from_row` gives the readable form.
"""

# Positions in a `RequestRow`.
METHOD, PATH, START, FIRST_STEP, END, STATUS, ROUTE, LAST_STEP = range(8)

LOG_CHUNK = 1024
"""Records per sealed chunk of a `Log` (`_speedups.c` seals at the same size)."""


class Log:
    """An append-only list of records that the garbage collector does not walk record by record.

    A full collection visits every item of every list it tracks, and the app's heap is collected
    in full every few thousand requests: a plain list of a hundred thousand records made each of
    those collections read a hundred thousand objects (`make bench` saw it cost 5% of a busy
    server's throughput). Here records go to `tail`, and every `LOG_CHUNK` of them are sealed into
    one tuple, which the collector stops tracking once its records are untracked (tuples of
    numbers and strings), so it visits one object per chunk.
    """

    __slots__ = ("chunks", "tail")

    def __init__(self) -> None:
        self.chunks: list[tuple[Any, ...]] = []
        self.tail: list[Any] = []  # appended to in place by the hooks; never replaced

    def append(self, record: Any) -> None:
        """Add one record."""
        tail = self.tail
        tail.append(record)
        if len(tail) >= LOG_CHUNK:
            self.seal()

    def extend(self, records: Any) -> None:
        """Add records in order."""
        for record in records:
            self.append(record)

    def seal(self) -> None:
        """Move the tail into a sealed chunk."""
        self.chunks.append(tuple(self.tail))
        self.tail.clear()

    def __len__(self) -> int:
        return sum(map(len, self.chunks)) + len(self.tail)

    def __iter__(self) -> Any:
        for chunk in list(self.chunks):
            yield from chunk
        yield from list(self.tail)


@dataclass(slots=True)
class RequestRecord:
    """What the middleware saw of one HTTP request."""

    method: str
    path: str
    start_ns: int
    route: str | None = None
    status: int | None = None
    end_ns: int | None = None
    pool_hops: int = 0
    # The loop steps the request's id was set and reset in: read at a step's start, the id
    # misses the first, and a request served in one step would be missed entirely.
    first_step_ns: int = 0
    last_step_ns: int = 0

    @classmethod
    def from_row(cls, row: RequestRow, pool_hops: int = 0) -> RequestRecord:
        """The record of a middleware row; values of unexpected types are dropped or coerced.

        The row holds the scope's own values, unchecked: the middleware leaves every conversion
        to this moment, off the request's path.
        """
        finished = len(row) > LAST_STEP
        status = row[STATUS] if finished else None
        route = row[ROUTE] if finished else None
        return cls(
            method=str(row[METHOD] or ""),
            path=str(row[PATH] or ""),
            start_ns=row[START],
            route=route if isinstance(route, str) else None,
            status=int(status) if isinstance(status, int) else None,
            end_ns=row[END] if finished else None,
            pool_hops=pool_hops,
            first_step_ns=row[FIRST_STEP],
            last_step_ns=row[LAST_STEP] if finished else 0,
        )

    def to_row(self) -> RequestRow:
        """The row this record would come from (for tests and tools that build records)."""
        return (
            self.method,
            self.path,
            self.start_ns,
            self.first_step_ns,
            self.end_ns,
            self.status,
            self.route,
            self.last_step_ns,
        )


@dataclass(slots=True)
class StackSamples:
    """The watchdog's stack samples of one stall of the loop (a long step or a missed heartbeat).

    `cpu_start_ns` is the loop thread's CPU clock estimated at the stall's start, `request_id`
    the culprit where the watchdog could tell it (heartbeat mode).
    """

    cpu_start_ns: int | None = None
    request_id: str | None = None
    # The loop thread's run-queue delay (schedstat) at the first and last sample: while the
    # loop is stuck, how long it was runnable but not running tells CPU work from waiting on a
    # busy machine.
    runq_first: tuple[int, int] | None = None
    runq_last: tuple[int, int] | None = None
    count: int = 0
    lines: Counter[str | None] = field(default_factory=Counter)
    stacks: dict[str | None, list[str]] = field(default_factory=dict)

    def add(self, where: str | None, stack: list[str]) -> None:
        """Count one sample: `where` is the innermost user frame, `stack` innermost last."""
        if self.count >= SAMPLES_PER_STALL:
            return
        self.count += 1
        self.lines[where] += 1
        self.stacks[where] = stack

    def note_runq(self, t_ns: int, runq_ns: int | None) -> None:
        """Keep the run-queue delay read at `t_ns` (first and last reading)."""
        if runq_ns is None:
            return
        if self.runq_first is None:
            self.runq_first = (t_ns, runq_ns)
        self.runq_last = (t_ns, runq_ns)

    def runnable_ns(self, start_ns: int, end_ns: int) -> int | None:
        """Run-queue time over `start_ns`→`end_ns`, scaled from the readings taken within it."""
        if self.runq_first is None or self.runq_last is None:
            return None
        (t0, r0), (t1, r1) = self.runq_first, self.runq_last
        if t1 <= t0:
            return None
        share = min(1.0, (r1 - r0) / (t1 - t0))
        return int(share * (end_ns - start_ns))

    def best(self) -> tuple[str | None, list[str]]:
        """The user line seen most often, with the last stack seen there."""
        ranked = [line for line, _ in self.lines.most_common() if line is not None]
        where = ranked[0] if ranked else None
        return where, list(self.stacks.get(where, []))


class Recorder:
    """The probe's memory: append-only lists, counters and one event budget.

    Attributes are public because the hooks are closures that touch them directly; every other
    reader goes through `loopscope.probe.segments`.
    """

    __slots__ = (
        "capacity",
        "current_step",
        "dropped",
        "errors",
        "finished",
        "gc_pauses",
        "live",
        "pool",
        "pool_hops",
        "pool_samples",
        "request_ids",
        "samples",
        "stamps",
        "steps",
        "used",
        "watch_blocks",
    )

    def __init__(self, max_events: int) -> None:
        self.capacity = max_events
        self.used = 0
        self.dropped = 0
        self.errors = 0
        self.current_step = 0  # start of the loop step now running, 0 between steps
        self.steps = Log()  # of `Step`
        # Requests: the ids given out (a dict of strings to None, which the collector does not
        # track), the rows of those still running, and the log of finished ones, each row
        # there prefixed with its id.
        self.request_ids: dict[str, None] = {}
        self.live: dict[str, RequestRow] = {}
        self.finished = Log()
        self.pool_hops: dict[str, int] = {}  # apart from the rows, which are immutable
        self.pool: list[PoolCall] = []
        self.pool_samples: list[PoolSample] = []
        self.gc_pauses: list[GcPause] = []
        self.samples: dict[int, StackSamples] = {}
        self.watch_blocks: list[LoopBlock] = []
        self.stamps: dict[int, tuple[int, object]] = {}

    def admit(self) -> bool:
        """Take one event from the budget; `False` (and one more dropped event) when it is spent."""
        if self.used < self.capacity:
            self.used += 1
            return True
        self.dropped += 1
        return False

    def take(self, wanted: int) -> int:
        """Take up to `wanted` events from the budget at once and return how many were taken."""
        granted = max(0, min(wanted, self.capacity - self.used))
        self.used += granted
        return granted

    def add_request(self, request_id: str, row: RequestRow) -> str | None:
        """Note a request starting (`row` is its 4-field running row) under `request_id` (made
        unique) and return the id used, or `None` when the budget is spent."""
        # `admit()` inlined: this runs for every request.
        if self.used >= self.capacity:
            self.dropped += 1
            return None
        self.used += 1
        if request_id in self.request_ids:
            request_id = self.unique_id(request_id)
        self.request_ids[request_id] = None
        self.live[request_id] = row
        return request_id

    def finish_request(self, request_id: str, row: RequestRow) -> None:
        """Note a request's end: its full 8-field row replaces the running one."""
        self.live.pop(request_id, None)
        self.finished.append((request_id, *row))

    def store_request(self, request_id: str, record: RequestRecord) -> None:
        """Store a finished request built elsewhere (tests, tools), outside the budget."""
        self.request_ids[request_id] = None
        self.finish_request(request_id, record.to_row())

    def unique_id(self, request_id: str) -> str:
        """`request_id` with the first free `.2`, `.3`... suffix: a client reusing an id must not
        overwrite the earlier request."""
        serial = 2
        while f"{request_id}.{serial}" in self.request_ids:
            serial += 1
        return f"{request_id}.{serial}"

    def request_records(self) -> dict[str, RequestRecord]:
        """Every request seen so far (finished or running), readable, in order of arrival."""
        hops = self.pool_hops
        records = {
            row[0]: RequestRecord.from_row(row[1:], hops.get(row[0], 0)) for row in self.finished
        }
        for request_id, row in list(self.live.items()):
            records[request_id] = RequestRecord.from_row(row, hops.get(request_id, 0))
        return dict(sorted(records.items(), key=lambda item: item[1].start_ns))

    def add_pool_sample(self, sample: PoolSample) -> None:
        """Store one thread-pool limiter sample if the budget allows."""
        if self.admit():
            self.pool_samples.append(sample)

    def stall(self, key: int) -> StackSamples | None:
        """The samples of the stall that started at `key`, created on first use."""
        found = self.samples.get(key)
        if found is None and self.admit():
            found = self.samples[key] = StackSamples()
        return found
