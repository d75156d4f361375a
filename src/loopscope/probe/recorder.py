"""Bounded storage for everything the probe's hooks observe.

The hooks run on the event loop's hot path, in worker threads and in the watchdog thread, so
they only append packed numbers, tuples and small objects here; turning them into segments and
blocks happens later, in `loopscope.probe.segments`, when somebody asks for the result. One budget
(`max_events`) covers every kind of record, so a long run cannot grow without bound (viztracer#308:
async traces reach gigabytes); past it records are counted in `dropped`, never stored.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Iterator
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
"""One request as the middleware hands it over: `(method, path, start_ns, first_step_ns)` while
it runs, then `(method, path, start_ns, first_step_ns, end_ns, status, route, last_step_ns)`.

The scope's own values, unchecked: the middleware leaves every conversion to collect time.
`RequestRecord.from_row` gives the readable form.
"""

# Positions in a `RequestRow`.
METHOD, PATH, START, FIRST_STEP, END, STATUS, ROUTE, LAST_STEP = range(8)

LOG_CHUNK = 1024
"""Items per sealed chunk of a `Log` (`_speedups.c` seals at the same size)."""

STEP = struct.Struct("=5q")
"""A packed loop step: `start_ns, end_ns, cpu_end_ns, request_ref, ready_ns` (see `Step`), as
int64s in native byte order, which is how `_speedups.c` writes them."""

FINISHED = struct.Struct("=6q")
"""A finished request's numbers, packed: `start_ns, first_step_ns, end_ns, status,
last_step_ns, texts_at`, with `NO_STATUS` for a status that was missing or not an int64, and
`texts_at` the position of its strings in `FinishedLog.texts`."""

NO_STATUS = -(2**63)


class Log:
    """An append-only list of objects that the garbage collector does not walk item by item.

    A full collection visits every item of every list it tracks, and the app's heap is collected
    in full every few thousand requests: a plain list of a hundred thousand records made each of
    those collections read a hundred thousand objects (`make bench` saw it cost 5% of a busy
    server's throughput). Here items go to `tail`, and every `LOG_CHUNK` of them are sealed into
    one tuple, which the collector stops tracking once its items are untracked (numbers, strings,
    tuples of those), so it visits one object per chunk. Every chunk holds exactly `LOG_CHUNK`
    items, so an item's position is quick to tell (`len`).
    """

    __slots__ = ("chunks", "tail")

    def __init__(self) -> None:
        self.chunks: list[tuple[Any, ...]] = []
        self.tail: list[Any] = []  # appended to in place by the hooks; never replaced

    def append(self, item: Any) -> None:
        """Add one item."""
        tail = self.tail
        tail.append(item)
        if len(tail) >= LOG_CHUNK:
            self.seal()

    def extend(self, items: Any) -> None:
        """Add items in order."""
        for item in items:
            self.append(item)

    def seal(self) -> None:
        """Move the tail's first `LOG_CHUNK` items into a sealed chunk."""
        tail = self.tail
        self.chunks.append(tuple(tail[:LOG_CHUNK]))
        del tail[:LOG_CHUNK]

    def __len__(self) -> int:
        return len(self.chunks) * LOG_CHUNK + len(self.tail)

    def __iter__(self) -> Iterator[Any]:
        for chunk in list(self.chunks):
            yield from chunk
        yield from list(self.tail)


class StepLog:
    """The loop's steps, packed: `STEP.size` bytes each in one `bytearray`.

    Steps are the probe's most numerous records (a few per request), so each costs no object at
    all: a tuple of boxed ints per step, even sealed in chunks, made the busy server of
    `make bench` 4-5% slower through allocation and garbage collection alone. A step's request
    is stored as its number in `refs` (the recorder's `request_ids`), 0 for none; iterating gives
    back `Step` tuples.
    """

    __slots__ = ("data", "refs")

    def __init__(self, refs: dict[str, int]) -> None:
        self.data = bytearray()  # appended to in place by the hooks; never replaced
        self.refs = refs

    def append(self, step: Step) -> None:
        """Add one step."""
        start, end, cpu_end, request_id, ready = step
        ref = 0 if request_id is None else request_ref(self.refs, request_id)
        self.data += STEP.pack(start, end, cpu_end, ref, ready)

    def extend(self, steps: Iterable[Step]) -> None:
        """Add steps in order."""
        for step in steps:
            self.append(step)

    def clear(self) -> None:
        """Forget every step."""
        self.data.clear()

    def __len__(self) -> int:
        return len(self.data) // STEP.size

    def __iter__(self) -> Iterator[Step]:
        # A copy first, then the ids: every id a copied step refers to was numbered before it.
        data = bytes(self.data)
        ids = id_of_ref(self.refs)
        for start, end, cpu_end, ref, ready in STEP.iter_unpack(data):
            yield start, end, cpu_end, ids.get(ref), ready


class FinishedLog:
    """The finished requests: their numbers packed in `numbers` (`FINISHED`), their strings in
    `texts`, four per request (`request_id, method, path, route`), for the reason `StepLog`
    gives. The strings go first and the numbers say where they are, so a request whose storing
    failed halfway leaves at most some strings that nothing refers to."""

    __slots__ = ("numbers", "texts")

    def __init__(self) -> None:
        self.numbers = bytearray()
        self.texts = Log()

    def append(self, request_id: str, row: RequestRow) -> None:
        """Add a request from its 8-field row."""
        status = row[STATUS]
        if type(status) is not int or not NO_STATUS < status < 2**63:
            status = NO_STATUS
        texts = self.texts
        at = len(texts)
        texts.extend((request_id, row[METHOD], row[PATH], row[ROUTE]))
        self.numbers += FINISHED.pack(
            row[START], row[FIRST_STEP], row[END], status, row[LAST_STEP], at
        )

    def __len__(self) -> int:
        return len(self.numbers) // FINISHED.size

    def __iter__(self) -> Iterator[tuple[str, RequestRow]]:
        """Each request's id and 8-field row, in the order they finished."""
        # The numbers first: the strings they point at were stored before them.
        numbers = bytes(self.numbers)
        texts = list(self.texts)
        for start, first, end, status, last, at in FINISHED.iter_unpack(numbers):
            request_id, method, path, route = texts[at : at + 4]
            status = None if status == NO_STATUS else status
            yield request_id, (method, path, start, first, end, status, route, last)


def request_ref(refs: dict[str, int], request_id: str) -> int:
    """The number of `request_id` in `refs`, given on first sight (1, 2, ...; never reused,
    as ids are never removed)."""
    ref = refs.get(request_id)
    if ref is None:
        ref = refs[request_id] = len(refs) + 1
    return ref


def id_of_ref(refs: dict[str, int]) -> dict[int, str]:
    """`refs` inverted."""
    return {ref: request_id for request_id, ref in list(refs.items())}


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
        # Requests: every id given out or seen in a step, with its number in the packed logs
        # (a dict of strings to ints, which the collector does not track; ids are never
        # removed, so numbers are never reused), the rows of those still running, and the
        # finished ones.
        self.request_ids: dict[str, int] = {}
        self.steps = StepLog(self.request_ids)
        self.live: dict[str, RequestRow] = {}
        self.finished = FinishedLog()
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
        ids = self.request_ids
        if request_id in ids:
            request_id = self.unique_id(request_id)
        ids[request_id] = len(ids) + 1
        self.live[request_id] = row
        return request_id

    def finish_request(self, request_id: str, row: RequestRow) -> None:
        """Note a request's end: its full 8-field row replaces the running one."""
        self.live.pop(request_id, None)
        self.finished.append(request_id, row)

    def store_request(self, request_id: str, record: RequestRecord) -> None:
        """Store a finished request built elsewhere (tests, tools), outside the budget."""
        request_ref(self.request_ids, request_id)
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
            request_id: RequestRecord.from_row(row, hops.get(request_id, 0))
            for request_id, row in self.finished
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
