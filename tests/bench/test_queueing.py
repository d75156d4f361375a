"""Queueing truths, measured: what each server model serves when every request waits 100 ms,
below and past its capacity (the issue's "must show"). Open-loop load at fixed rates, latency
from the intended send time, a fresh server per point.

Margins hold on a busy 2-core machine: the servers wait (sleep) rather than compute, so a CPU
hog beside them shifts latencies by milliseconds, not by the hundreds these bounds allow.
"""

from __future__ import annotations

import pytest

from loopscope.measure.bench import BenchOptions, BenchPoint, measure_point
from loopscope.server.models import parse_model

pytestmark = pytest.mark.slow

IO_MS = 100.0


def point(spec: str, mode: str, rate: float, duration_s: float) -> BenchPoint:
    options = BenchOptions(rates=(rate,), duration_s=duration_s, io_ms=IO_MS, timeout_s=30)
    measured = measure_point(parse_model(spec), mode, rate, options)
    assert not measured.outcome.fell_behind, "the driver must keep its schedule"
    assert measured.outcome.errors == measured.outcome.timeouts == 0
    return measured


def test_gunicorn_sync_2_below_capacity_answers_in_about_the_io_time() -> None:
    below = point("gunicorn-sync:2", "blocking", 10, 3.0)
    latency = below.outcome.latency
    assert latency is not None
    assert IO_MS * 0.95 <= latency.p50_ms <= IO_MS * 2
    assert below.outcome.achieved_rps == pytest.approx(10, rel=0.15)
    assert not below.saturated


def test_gunicorn_sync_2_past_capacity_serves_20_per_second_and_the_queue_shows() -> None:
    past = point("gunicorn-sync:2", "blocking", 40, 5.0)
    latency = past.outcome.latency
    assert latency is not None
    # The model's bound: 2 workers / 0.1 s = 20 req/s, whatever is offered.
    assert past.capacity.max_rps(IO_MS) == 20
    assert 15 <= past.outcome.achieved_rps <= 21
    assert past.saturated
    # 200 requests offered in 5 s, 20 served per s: the last waits ~5 s in the accept queue.
    assert latency.p99_ms >= 500
    # ...and so does the median request: it waited for many others, not just its own I/O.
    assert latency.p50_ms >= 5 * IO_MS


def test_uvicorn_1_async_keeps_up_with_40_per_second_at_the_io_time() -> None:
    measured = point("uvicorn:1", "async", 40, 3.0)
    latency = measured.outcome.latency
    assert latency is not None
    assert IO_MS * 0.95 <= latency.p50_ms <= IO_MS * 2
    assert measured.outcome.achieved_rps >= 36
    assert not measured.saturated


def test_uvicorn_1_async_blocking_serves_about_10_per_second() -> None:
    measured = point("uvicorn:1", "async-blocking", 20, 2.0)
    # One loop, blocked 100 ms by each request: 10 req/s at most, whatever is offered.
    assert 7 <= measured.outcome.achieved_rps <= 10.5
    assert measured.saturated


def test_littles_law_holds_at_a_saturated_point() -> None:
    measured = point("gunicorn-sync:2", "blocking", 30, 2.0)
    o = measured.outcome
    assert o.littles_in_flight is not None
    assert o.in_flight == pytest.approx(o.littles_in_flight, rel=0.15)
