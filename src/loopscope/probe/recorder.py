"""Bounded storage for everything the probe's hooks observe.

The hooks run on the event loop's hot path, in worker threads and in the watchdog thread, so
they only append packed numbers, tuples and small objects here; turning them into segments and
blocks happens later, in `loopscope.probe.segments`, when somebody asks for the result. One budget
(`max_events`) covers every kind of record, so a long run cannot grow without bound (viztracer#308:
async traces reach gigabytes); past it records are counted in `dropped`, never stored.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loopscope.probe.packed import FinishedLog, StepLog
from loopscope.trace.model import LoopBlock, PoolCall, PoolSample, ProbeFailure

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
# The probe's own failures kept with their cause (the rest are counted): enough to tell one
# broken hook from several, and little enough that a failing hot path cannot grow memory.
FAILURES_KEPT = 5
_FAILURE_TEXT = 300
# A bound for a sum over threads scaled to an interval: any number of threads may wait at once.
_THREADS_MOST = 4096.0


LiveRow = tuple[Any, Any, int, int, int]
"""A running request's `RequestWatch.row`: `(method, path, start_ns, first_step_ns, serial)`,
the scope's own values unchecked."""


def live_row(entry: Any) -> LiveRow:
    """The `LiveRow` of a `Recorder.live` entry (a backend's `RequestWatch`)."""
    row: LiveRow = entry.row
    return row


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
    # The whole process's CPU clock at the first and last sample: a loop thread that waits
    # while other threads of the process compute (a C library's own threads) is not waiting on
    # I/O.
    process_first: tuple[int, int] | None = None
    process_last: tuple[int, int] | None = None
    # The run-queue delay of all the process's threads, summed, at the first and last sample:
    # threads a loop waits for that compute on a busy machine wait for a core too.
    process_runq_first: tuple[int, int] | None = None
    process_runq_last: tuple[int, int] | None = None
    count: int = 0
    lines: Counter[str | None] = field(default_factory=Counter)
    stacks: dict[str | None, list[str]] = field(default_factory=dict)
    inners: dict[str | None, str | None] = field(default_factory=dict)
    taken: list[tuple[int, str | None]] = field(default_factory=list)

    def add(
        self, where: str | None, stack: list[str], inner: str | None = None, t_ns: int = 0
    ) -> None:
        """Count one sample taken at `t_ns`: `where` is the frame to blame
        (`loopscope.probe.frames`), `stack` innermost last, `inner` the library line below."""
        if self.count >= SAMPLES_PER_STALL:
            return
        self.count += 1
        self.lines[where] += 1
        self.stacks[where] = stack
        self.inners[where] = inner
        self.taken.append((t_ns, where))

    def note_runq(self, t_ns: int, runq_ns: int | None) -> None:
        """Keep the run-queue delay read at `t_ns` (first and last reading)."""
        if runq_ns is None:
            return
        if self.runq_first is None:
            self.runq_first = (t_ns, runq_ns)
        self.runq_last = (t_ns, runq_ns)

    def note_process_cpu(self, t_ns: int, cpu_ns: int) -> None:
        """Keep the process's CPU clock read at `t_ns` (first and last reading)."""
        if self.process_first is None:
            self.process_first = (t_ns, cpu_ns)
        self.process_last = (t_ns, cpu_ns)

    def note_process_runq(self, t_ns: int, runq_ns: int | None) -> None:
        """Keep the process's summed run-queue delay read at `t_ns` (first and last reading)."""
        if runq_ns is None:
            return
        if self.process_runq_first is None:
            self.process_runq_first = (t_ns, runq_ns)
        self.process_runq_last = (t_ns, runq_ns)

    def process_runnable_ns(self, start_ns: int, end_ns: int) -> int | None:
        """The process's threads' run-queue time over `start_ns`→`end_ns`, summed, scaled from
        the readings taken within it."""
        return _scaled(
            self.process_runq_first, self.process_runq_last, start_ns, end_ns, _THREADS_MOST
        )

    def runnable_ns(self, start_ns: int, end_ns: int) -> int | None:
        """Run-queue time over `start_ns`→`end_ns`, scaled from the readings taken within it."""
        return _scaled(self.runq_first, self.runq_last, start_ns, end_ns, 1.0)

    def process_cpu_ns(self, start_ns: int, end_ns: int, cores: int) -> int | None:
        """The process's CPU time over `start_ns`→`end_ns` (all its threads), scaled from the
        readings taken within it; at most `cores` × the interval."""
        return _scaled(self.process_first, self.process_last, start_ns, end_ns, float(cores))

    def best(self, before_ns: int | None = None) -> tuple[str | None, list[str], str | None]:
        """The line seen most often (the first seen among equals), with the last stack and
        library line seen there; `None` when no sample named a line.

        A sample with no line counts too: one late sample of an innocent line must not outvote
        many that found no line to blame. With `before_ns`, samples taken from then on (which
        may have caught the loop after it got going again) do not count: no sample is no line,
        never a guess.
        """
        lines = self.lines
        if before_ns is not None:
            lines = Counter(where for t, where in self.taken if t < before_ns)
        if not lines:
            return None, [], None
        where = lines.most_common(1)[0][0]
        return where, list(self.stacks.get(where, [])), self.inners.get(where)


def _scaled(
    first: tuple[int, int] | None,
    last: tuple[int, int] | None,
    start_ns: int,
    end_ns: int,
    most: float,
) -> int | None:
    """A clock's rate between two readings, applied to `start_ns`→`end_ns`."""
    if first is None or last is None or last[0] <= first[0]:
        return None
    share = min(most, (last[1] - first[1]) / (last[0] - first[0]))
    return int(max(0.0, share) * (end_ns - start_ns))


class Recorder:
    """The probe's memory: packed logs, lists, counters and one event budget.

    Attributes are public because the hooks touch them directly (the C ones at their slots);
    every other reader goes through `loopscope.probe.collect`.

    Requests are numbered by `serial` in order of arrival. A finished request is kept as packed
    bytes only, plus, for a request the client tagged, its id as a key of `named` (one `str`
    each: a client may reuse an id, and the copy must get a new one). Generated ids need no
    such set: a generated id is `<id_prefix><serial>`, so a client's id is checked against
    `named`, the running requests (`live`) and the serials handed out so far.
    """

    __slots__ = (
        "capacity",
        "current_step",
        "dropped",
        "errors",
        "failures",
        "finished",
        "gc_pauses",
        "id_prefix",
        "late",
        "live",
        "named",
        "pool",
        "pool_hops",
        "pool_samples",
        "samples",
        "serial",
        "steps",
        "unrecorded",
        "used",
        "watch_blocks",
    )

    def __init__(self, max_events: int, id_prefix: str | None = None) -> None:
        self.capacity = max_events
        self.used = 0
        self.dropped = 0
        # Events a hook could not record after one of the probe's failures (not the budget's).
        self.unrecorded = 0
        self.errors = 0
        self.failures: dict[tuple[str, str], ProbeFailure] = {}
        self.current_step = 0  # always 0: the clock when no step hook is in place
        # The pid keeps ids from several worker processes of one run apart.
        self.id_prefix = id_prefix if id_prefix is not None else f"s{os.getpid()}-"
        self.serial = 0  # requests numbered so far
        self.live: dict[str, Any] = {}  # running requests: their `RequestWatch`
        self.named: dict[str, None] = {}  # the clients' ids given out
        self.late: dict[str, int] = {}  # ids seen in steps with no running request: -1, -2...
        self.steps = StepLog()
        self.finished = FinishedLog()
        self.pool_hops: dict[str, int] = {}
        self.pool: list[PoolCall] = []
        self.pool_samples: list[PoolSample] = []
        self.gc_pauses: list[GcPause] = []
        self.samples: dict[int, StackSamples] = {}
        self.watch_blocks: list[LoopBlock] = []

    def fail(self, hook: str, exc: BaseException) -> None:
        """Count one of the probe's own failures, in `hook`; the first few distinct ones are
        kept with their cause (`repr` of the exception). Never raises."""
        self.errors += 1
        try:
            key = (hook, repr(exc)[:_FAILURE_TEXT])
            kept = self.failures.get(key)
            if kept is not None:
                kept.count += 1
            elif len(self.failures) < FAILURES_KEPT:
                self.failures[key] = ProbeFailure(hook=key[0], error=key[1])
        except Exception:  # a repr that raises: the count stands
            pass

    def failure_list(self) -> list[ProbeFailure]:
        """The failures kept, in the order first seen."""
        return list(self.failures.values())

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

    def id_taken(self, request_id: str) -> bool:
        """Whether a request already has (or had) `request_id`."""
        if request_id in self.named or request_id in self.live:
            return True
        prefix = self.id_prefix
        number = request_id[len(prefix) :]
        # A generated id: only serials handed out so far are taken.
        return (
            request_id.startswith(prefix)
            and number.isascii()
            and number.isdigit()
            and int(number) <= self.serial
        )

    def unique_id(self, request_id: str) -> str:
        """`request_id` with the first free `.2`, `.3`... suffix: a client reusing an id must not
        overwrite the earlier request."""
        suffix = 2
        while self.id_taken(f"{request_id}.{suffix}"):
            suffix += 1
        return f"{request_id}.{suffix}"

    def ref_of(self, request_id: str) -> int:
        """What a step of `request_id` stores: the serial of the running request with that id,
        else the id's number in `late` (given on first sight)."""
        row = self.live.get(request_id)
        if row is not None:
            return int(live_row(row)[4])
        late = self.late
        ref = late.get(request_id)
        if ref is None:
            ref = late[request_id] = -len(late) - 1
        return ref

    def store_request(self, request_id: str, record: RequestRecord) -> None:
        """Store a finished request built elsewhere (tests, tools), outside the budget."""
        self.serial += 1
        self.named[request_id] = None
        self.finished.append(
            self.serial,
            (request_id, record.method, record.path, record.route),
            (record.start_ns, record.first_step_ns, record.end_ns or 0, record.last_step_ns),
            record.status,
        )

    def store_steps(self, steps: Iterable[Step]) -> None:
        """Store loop steps given with request ids (tests, tools), outside the budget."""
        refs = {request_id: ref for ref, request_id in self.ids_by_ref().items()}
        for start, end, cpu_end, request_id, ready in steps:
            ref = 0
            if request_id is not None:
                ref = refs.get(request_id) or self.ref_of(request_id)
            self.steps.append(start, end, cpu_end, ref, ready)

    def ids_by_ref(self) -> dict[int, str]:
        """The request id behind each step `ref`."""
        ids = {serial: texts[0] or "" for serial, texts, _, _ in self.finished}
        for request_id, row in list(self.live.items()):
            ids[live_row(row)[4]] = request_id
        for request_id, ref in list(self.late.items()):
            ids[ref] = request_id
        return ids

    def loop_steps(self) -> list[Step]:
        """Every loop step recorded, with its request id."""
        ids = self.ids_by_ref()
        return [
            (start, end, cpu_end, ids.get(ref) if ref else None, ready)
            for start, end, cpu_end, ref, ready in self.steps
        ]

    def request_records(self) -> dict[str, RequestRecord]:
        """Every request seen so far (finished or running), readable, in order of arrival."""
        hops = self.pool_hops
        records: dict[str, RequestRecord] = {}
        for _, (request_id, method, path, route), times, status in self.finished:
            start, first_step, end, last_step = times
            key = request_id or ""
            records[key] = RequestRecord(
                method=method or "",
                path=path or "",
                start_ns=start,
                route=route,
                status=status,
                end_ns=end or None,
                pool_hops=hops.get(key, 0),
                first_step_ns=first_step,
                last_step_ns=last_step,
            )
        for request_id, row in list(self.live.items()):
            method, path, start, first_step, _ = live_row(row)
            records[request_id] = RequestRecord(
                method=method if isinstance(method, str) else "",
                path=path if isinstance(path, str) else "",
                start_ns=start,
                pool_hops=hops.get(request_id, 0),
                first_step_ns=first_step,
            )
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
