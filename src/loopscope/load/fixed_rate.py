"""Send one request shape at a fixed rate for a duration, inside the driver process.

Open loop (the default): every request is issued at its intended time from `arrivals`,
whatever the server is doing, and its latency is counted from that *intended* time, not from
when it actually left (wrk2's correction for coordinated omission): a request that had to wait
for a connection, or for a stalled driver, is charged for the wait. A queue or a stall in the
server therefore shows in the percentiles, as it does for real users.

Issuing never waits: a request due while all `connections` are busy with the server queues in
the driver (`wire.Pool`'s FIFO backlog) and goes out on the first connection to free up, so a
saturated server is kept saturated. Only the driver's own lateness in *issuing* (how long after
its intended time the schedule got to a request: `send_lag_*`) says the driver fell behind; the
wait for a connection (`queued`, `queue_wait_*`) is the server's queue, seen from the client.

Closed loop (`closed_loop=True`), for comparison: `connections` users each send at `rate /
connections`, but never before the answer to their last request, and count from the actual
send, as most load tools do; a late answer pushes every later send of its user back, so a
stalled server is simply sent less.

Answered requests (any status) go into the latency histogram; errors (status ≥ 400 or a failed
connection) and timeouts are counted, never dropped. The driver samples how many requests are
due and unanswered every `IN_FLIGHT_SAMPLE_S`, so Little's law can be checked against it.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import json
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from loopscope.load.arrivals import schedule
from loopscope.load.histogram import LatencyHistogram
from loopscope.load.wire import Exchange, Pool, Target

IN_FLIGHT_SAMPLE_S = 0.01
LEAD_S = 0.05
"""Time between planning the first send and making it, so it is not late by construction."""
_YIELD_EVERY = 32
_TIMER_STEP_S = 0.001


@dataclass(frozen=True, slots=True)
class RatePlan:
    """What one driver process sends: `method url` with `body` at `rate` per second."""

    url: str
    rate: float
    duration_s: float
    method: str = "GET"
    body: Any = None
    arrivals: str = "constant"
    seed: int = 0
    phase: float = 0.0
    timeout_s: float = 30.0
    connections: int = 512
    closed_loop: bool = False
    keep_requests: int = 0
    id_prefix: str = "B"


@dataclass(slots=True)
class DriverReport:
    """What one driver process measured (JSON-able: it crosses a pipe)."""

    intended: int = 0
    sent: int = 0
    answered: int = 0
    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    histogram: str = ""
    start_ns: int = 0
    last_send_ns: int = 0
    last_done_ns: int = 0
    send_lag_p99_ms: float = 0.0
    send_lag_max_ms: float = 0.0
    queued: int = 0
    queue_wait_p99_ms: float = 0.0
    queue_wait_max_ms: float = 0.0
    backlog_max: int = 0
    connections_opened: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    in_flight_mean: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        """This report as one line of JSON."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DriverReport:
        """A report from `to_json`'s output."""
        return cls(**json.loads(text))


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _p99(values: list[int]) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class _Run:
    """The state of one run: counters, histogram, and the sample of requests kept."""

    def __init__(self, plan: RatePlan, offsets: list[int]) -> None:
        self.plan = plan
        self.offsets = offsets
        self.report = DriverReport(intended=len(offsets))
        self.histogram = LatencyHistogram()
        self.lags: list[int] = []
        self.waits: list[int] = []
        self.kinds: Counter[str] = Counter()
        self.done = 0
        self.keep_every = (
            max(1, -(-len(offsets) // plan.keep_requests)) if plan.keep_requests else 0
        )
        self.timeout_ns = int(plan.timeout_s * 1e9)
        self.timeout_text = f"no answer within {plan.timeout_s:g} s"
        self.all_issued = False
        self.all_done = asyncio.get_running_loop().create_future()

    def issue(self, pool: Pool, index: int, intended_ns: int) -> Exchange:
        """Hand request `index`, due at `intended_ns`, to the pool now; note how late it is."""
        issued_ns = time.monotonic_ns()
        exchange = Exchange(index, intended_ns, issued_ns, self.timeout_ns)
        self.lags.append(issued_ns - intended_ns)
        report = self.report
        report.sent += 1
        report.last_send_ns = issued_ns
        pool.issue(exchange)
        return exchange

    def finished(self, exchange: Exchange) -> None:
        """Count one request's outcome (the pool calls this exactly once per request)."""
        report = self.report
        done_ns = exchange.done_ns
        self.done += 1
        report.last_done_ns = max(report.last_done_ns, done_ns)
        if exchange.waited:
            report.queued += 1
            self.waits.append((exchange.sent_ns or done_ns) - exchange.issued_ns)
        error = exchange.error
        status = exchange.status
        if exchange.timed_out:
            report.timeouts += 1
            error = self.timeout_text
        elif error is not None:
            report.errors += 1
            self.kinds[error] += 1
        elif status is not None:
            report.answered += 1
            if status < 400:
                report.ok += 1
            else:
                report.errors += 1
                self.kinds[f"HTTP {status}"] += 1
            # Open loop: from the intended send time (wrk2's correction), a wait for a
            # connection included; closed loop: from the send.
            since = exchange.issued_ns if self.plan.closed_loop else exchange.intended_ns
            self.histogram.record_ns(done_ns - since)
        if self.keep_every and exchange.index % self.keep_every == 0:
            report.requests.append(
                {
                    "id": f"{self.plan.id_prefix}{exchange.index + 1}",
                    "status": status,
                    "intended_ns": exchange.intended_ns,
                    "issued_ns": exchange.issued_ns,
                    "send_ns": exchange.sent_ns or exchange.issued_ns,
                    "first_byte_ns": exchange.first_byte_ns,
                    "done_ns": done_ns,
                    "error": error,
                }
            )
        if exchange.waiter is not None:
            exchange.waiter.set_result(None)
        if self.all_issued and self.done == report.sent and not self.all_done.done():
            self.all_done.set_result(None)

    def issued_all(self) -> None:
        """No more requests will be issued: `all_done` resolves once every one has finished."""
        self.all_issued = True
        if self.done == self.report.sent and not self.all_done.done():
            self.all_done.set_result(None)

    def due(self, now_ns: int) -> int:
        return bisect.bisect_right(self.offsets, now_ns - self.report.start_ns)


async def _open_loop(run: _Run, pool: Pool) -> None:
    # Issuing is all the schedule does: a request due while every connection is busy waits in
    # the pool's backlog (the server is saturated), and the schedule goes on, never waiting.
    start_ns = run.report.start_ns
    for index, offset in enumerate(run.offsets):
        intended = start_ns + offset
        delay = intended - time.monotonic_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
            # uvloop's timers count whole ms from a cached clock and may wake early. A request
            # is never issued before its time (its latency would start after its send), and a
            # shorter sleep would spin: at least one more step, the lateness counted.
            # (A clock, not an event, is awaited: hence a sleep in a loop.)
            while (delay := intended - time.monotonic_ns()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(max(delay / 1e9, _TIMER_STEP_S))
        elif index % _YIELD_EVERY == 0:
            # Behind: let the answers that came in meanwhile be read, in turn with the sends.
            await asyncio.sleep(0)
        run.issue(pool, index, intended)
    run.issued_all()
    await run.all_done


async def _closed_loop(run: _Run, pool: Pool) -> None:
    users = max(1, min(run.plan.connections, len(run.offsets)))
    interval_ns = int(users / run.plan.rate * 1e9)
    end_ns = run.report.start_ns + int(run.plan.duration_s * 1e9)
    loop = asyncio.get_running_loop()

    async def user(first: int) -> None:
        # Each user keeps its own pace: one send every `interval`, but never before the answer
        # to the last one. A late answer pushes every later send back; nothing catches up.
        next_ns = run.report.start_ns + run.offsets[first]
        for index in range(first, len(run.offsets), users):
            delay = next_ns - time.monotonic_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            sent_ns = time.monotonic_ns()
            if sent_ns >= end_ns:
                return
            waiter = loop.create_future()
            exchange = run.issue(pool, index, max(next_ns, sent_ns))
            if not exchange.finished:
                exchange.waiter = waiter
                await waiter
            next_ns = max(next_ns, sent_ns) + interval_ns

    await asyncio.gather(*(user(u) for u in range(users)))
    run.issued_all()
    await run.all_done


async def _sample_in_flight(run: _Run, samples: list[int]) -> None:
    await asyncio.sleep(max(0, run.report.start_ns - time.monotonic_ns()) / 1e9)
    while True:
        samples.append(run.due(time.monotonic_ns()) - run.done)
        await asyncio.sleep(IN_FLIGHT_SAMPLE_S)


Progress = Callable[[int, int], None]


StartClock = Callable[[], int]
"""Called once the driver is ready to send; returns the `monotonic_ns` at which to start."""


def _soon() -> int:
    return time.monotonic_ns() + int(LEAD_S * 1e9)


async def drive(
    plan: RatePlan, progress: Progress | None = None, start_at: StartClock = _soon
) -> DriverReport:
    """Send `plan` and return what was measured. Bounded: every request has `timeout_s`, so the
    run lasts at most `duration_s + timeout_s` (plus the connection set-up).

    `start_at` is asked for the start time once everything is set up; several driver processes
    are given one start time so their interleaved schedules line up (the clock is system-wide).
    """
    offsets = schedule(plan.arrivals, plan.rate, plan.duration_s, plan.seed, plan.phase)
    run = _Run(plan, offsets)
    data = None if plan.body is None else json.dumps(plan.body).encode()
    headers = {"content-type": "application/json"} if data is not None else {}
    target = Target(plan.url, plan.method, data, headers)
    pool = Pool(target, plan.connections, run.finished, plan.id_prefix)
    samples: list[int] = []
    # Past a server's capacity thousands of requests wait at once, and their objects trigger
    # full collections, which would walk every module the driver imported, mid-schedule. The
    # heap made so far (imports, the plan) is left out of collections until the run is over.
    gc.collect()
    gc.freeze()
    run.report.start_ns = start_at()
    reporter = asyncio.create_task(_report_progress(run, progress)) if progress else None
    cpu_before, wall_before = _cpu_s(), time.monotonic_ns()
    sampler = asyncio.create_task(_sample_in_flight(run, samples))
    try:
        await (_closed_loop if plan.closed_loop else _open_loop)(run, pool)
    finally:
        sampler.cancel()
        if reporter is not None:
            reporter.cancel()
        await pool.close()
        gc.unfreeze()
    report = run.report
    report.cpu_s = _cpu_s() - cpu_before
    report.wall_s = (time.monotonic_ns() - wall_before) / 1e9
    report.backlog_max = pool.backlog_max
    report.connections_opened = pool.opened
    report.histogram = run.histogram.encode()
    report.error_kinds = dict(run.kinds)
    report.send_lag_p99_ms = _p99(run.lags) / 1e6
    report.send_lag_max_ms = max(run.lags, default=0) / 1e6
    report.queue_wait_p99_ms = _p99(run.waits) / 1e6
    report.queue_wait_max_ms = max(run.waits, default=0) / 1e6
    report.in_flight_mean = sum(samples) / len(samples) if samples else 0.0
    if progress:
        progress(run.done, len(offsets))
    return report


async def _report_progress(run: _Run, progress: Progress) -> None:
    while True:
        progress(run.done, len(run.offsets))
        await asyncio.sleep(0.2)
