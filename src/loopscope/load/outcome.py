"""What a fixed-rate load measured, merged over its driver processes, and whether to trust it.

A point is only reported when the driver kept to its schedule: if it issued requests late (its
own CPU, too many connections to open) the latencies would measure the driver, not the server,
so `fell_behind` is set and the percentiles are withheld (`latency` is `None`).

Two waits are kept apart. The driver's *lateness* is how long after its intended time the driver
got to a request (`send_lag_p99_ms`): that is the driver failing, and it is what `fell_behind`
judges. A request's *wait for a connection* is how long it then queued in the driver because
every connection was busy with the server (`queued`, `queue_wait_p99_ms`): that is the server
saturated, as a user's request would queue, so it is charged to the request's latency (counted
from its intended time) and never makes the driver "behind".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loopscope.load.fixed_rate import DriverReport, RatePlan
from loopscope.load.histogram import LatencyHistogram, Percentiles

MAX_SEND_LAG_P99_MS = 100.0
"""The driver fell behind when the 99th percentile of (actual - intended) send times is over
this: far above a busy machine's scheduling hiccups, far below what a saturated driver shows."""
MIN_SEND_SHARE = 0.9
"""...or when it sent fewer than this share of the requests the schedule asked for in time."""


@dataclass(slots=True)
class LoadOutcome:
    """One (server, rate) point as the driver saw it. Rates are per second, times in ms.

    `achieved_rps` is answered-OK requests over the time from the first intended send to the
    last answer: at saturation, the rate the server really serves. `driver_cpu` is the driver
    processes' CPU time over their wall time, in cores. `in_flight` is the time-averaged
    number of requests due and unanswered, sampled; `littles_in_flight` is what Little's law
    predicts from throughput × mean latency (answered requests only). `queued` requests waited
    in the driver for a free connection (the server saturated; the wait is in their latency),
    at most `backlog_max` at once; `queue_wait_p99_ms` is the 99th percentile of that wait
    among them (the largest over the driver processes).
    """

    intended_rate: float
    duration_s: float
    closed_loop: bool
    processes: int
    intended: int
    sent: int
    answered: int
    ok: int
    errors: int
    timeouts: int
    error_kinds: dict[str, int]
    achieved_rps: float
    send_rate: float
    send_lag_p99_ms: float
    driver_cpu: float
    in_flight: float
    littles_in_flight: float | None
    fell_behind: bool
    measured: Percentiles | None
    start_ns: int
    end_ns: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    queued: int = 0
    queue_wait_p99_ms: float = 0.0
    backlog_max: int = 0

    @property
    def latency(self) -> Percentiles | None:
        """The percentiles, unless the driver fell behind (then they measure the driver)."""
        return None if self.fell_behind else self.measured


def merge_reports(plan: RatePlan, reports: list[DriverReport], processes: int) -> LoadOutcome:
    """One outcome from the reports of every driver process of `plan`."""
    histogram = LatencyHistogram()
    kinds: Counter[str] = Counter()
    for report in reports:
        histogram.merge(report.histogram)
        kinds.update(report.error_kinds)
    start = min(r.start_ns for r in reports)
    end = max(max(r.last_done_ns, r.start_ns) for r in reports)
    span_s = max(1e-9, (end - start) / 1e9)
    intended = sum(r.intended for r in reports)
    sent = sum(r.sent for r in reports)
    ok = sum(r.ok for r in reports)
    last_send_s = max(0.0, (max(r.last_send_ns for r in reports) - start) / 1e9)
    send_rate = sent / max(plan.duration_s, last_send_s)
    wall = max(r.wall_s for r in reports)
    measured = histogram.percentiles()
    answered = sum(r.answered for r in reports)
    lag = max(r.send_lag_p99_ms for r in reports)
    behind = not plan.closed_loop and (
        lag > MAX_SEND_LAG_P99_MS or sent < MIN_SEND_SHARE * intended
    )
    return LoadOutcome(
        intended_rate=plan.rate,
        duration_s=plan.duration_s,
        closed_loop=plan.closed_loop,
        processes=processes,
        intended=intended,
        sent=sent,
        answered=answered,
        ok=ok,
        errors=sum(r.errors for r in reports),
        timeouts=sum(r.timeouts for r in reports),
        error_kinds=dict(kinds),
        achieved_rps=ok / span_s,
        send_rate=send_rate,
        send_lag_p99_ms=lag,
        driver_cpu=sum(r.cpu_s for r in reports) / max(1e-9, wall),
        in_flight=sum(r.in_flight_mean for r in reports),
        littles_in_flight=(
            answered / span_s * measured.mean_ms / 1000 if measured is not None else None
        ),
        fell_behind=behind,
        measured=measured,
        start_ns=start,
        end_ns=end,
        requests=[request for r in reports for request in r.requests],
        queued=sum(r.queued for r in reports),
        queue_wait_p99_ms=max(r.queue_wait_p99_ms for r in reports),
        backlog_max=sum(r.backlog_max for r in reports),
    )
