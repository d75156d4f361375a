"""`bench --probe` with several workers and with WSGI servers: each point's Trace merges every
worker's probe record with the client's kept requests, and shows which worker (and thread)
served each one and how long it queued before.

Bounded loads (a few seconds at small rates); the margins hold beside a CPU hog: the servers
sleep through their I/O, so a busy machine moves times by milliseconds, and the queue asserted
past capacity is hundreds of milliseconds.
"""

from __future__ import annotations

import pytest

from loopscope.measure import bench
from loopscope.measure.bench import BenchOptions, BenchPoint, measure_point
from loopscope.server.models import parse_model
from loopscope.trace.model import Request, Trace
from loopscope.trace.record import WSGI_LOOP

pytestmark = pytest.mark.slow


def probed(spec: str, mode: str, rate: float, duration_s: float, io_ms: float) -> BenchPoint:
    options = BenchOptions(rates=(rate,), duration_s=duration_s, io_ms=io_ms, probe=True)
    point = measure_point(parse_model(spec), mode, rate, options)
    assert point.outcome.errors == point.outcome.timeouts == 0
    assert point.trace is not None
    return point


def queued_ms(request: Request) -> float:
    return sum(s.duration_ns for s in request.segments if s.state == "queued") / 1e6


def check_joined(trace: Trace, sent: int) -> None:
    """Every request the client kept is in the trace, joined with the server's view, and the
    server's times lie inside the client's send → done."""
    assert len(trace.requests) == sent
    for r in trace.requests:
        assert r.client_send_ns is not None and r.client_done_ns is not None, r.id
        assert r.server_start_ns is not None and r.server_end_ns is not None, r.id
        assert r.client_send_ns <= r.server_start_ns <= r.server_end_ns <= r.client_done_ns
        assert r.worker is not None and r.status == 200


def workers_of(trace: Trace) -> set[int]:
    return {r.worker for r in trace.requests if r.worker is not None}


def test_gunicorn_sync_2_trace_shows_both_workers_and_the_queue_past_capacity() -> None:
    # 2 sync workers, 50 ms each: 40 req/s at most. At 10 req/s nothing waits; at 70 the
    # accept queue grows by ~30 requests a second.
    below = probed("gunicorn-sync:2", "blocking", 10, 2.0, 50)
    past = probed("gunicorn-sync:2", "blocking", 70, 2.0, 50)
    for point in (below, past):
        trace = point.trace
        assert trace is not None
        check_joined(trace, point.outcome.sent)
        assert trace.run.loop == WSGI_LOOP and trace.run.workers == 2
        assert len(workers_of(trace)) == 2, "a sync worker at a time cannot serve them all"
        assert {w.pid for w in trace.workers} == workers_of(trace)
        for r in trace.requests:
            # The thread that served it: the worker's main thread, its lane named by pid.
            (held,) = [s for s in r.segments if s.state == "in-thread"]
            assert (held.start_ns, held.end_ns) == (r.server_start_ns, r.server_end_ns)
        lanes = {s.lane for s in trace.lanes}
        assert lanes == {f"thread:{pid}/MainThread" for pid in workers_of(trace)}
        assert not trace.loop_blocks and not trace.pool
    assert below.trace is not None and past.trace is not None
    calm = sorted(queued_ms(r) for r in below.trace.requests)
    assert calm[len(calm) // 2] < 50, "below capacity a request waits less than its I/O"
    # Past capacity the last requests wait for the backlog: ~0.75 s by the model.
    last = max(queued_ms(r) for r in past.trace.requests)
    assert last > 300 and last > 5 * calm[len(calm) // 2]
    assert max(q.depth for q in past.trace.accept_queue) >= 5, "the kernel's queue, sampled"


def test_uvicorn_2_async_trace_merges_both_workers_loops() -> None:
    # 300 ms of awaited I/O at 50 req/s: ~15 connections open at once, spread over both
    # workers' accept.
    point = probed("uvicorn:2", "async", 50, 2.0, 300)
    trace = point.trace
    assert trace is not None
    check_joined(trace, point.outcome.sent)
    pids = workers_of(trace)
    assert len(pids) == 2
    loops = {s.lane for s in trace.lanes if s.lane.startswith("loop:")}
    assert loops == {f"loop:{pid}" for pid in pids}
    # Each worker's threads are its own lanes: the same names recur in both workers.
    threads = {s.lane for s in trace.lanes if s.lane.startswith("thread:")}
    assert all(lane.split("/", 1)[0] in {f"thread:{pid}" for pid in pids} for lane in threads)
    assert trace.run.precise and {w.pid for w in trace.workers} == pids


def test_gunicorn_uvicorn_2_trace_merges_both_workers() -> None:
    point = probed("gunicorn-uvicorn:2", "async", 50, 1.5, 300)
    trace = point.trace
    assert trace is not None
    check_joined(trace, point.outcome.sent)
    assert len(workers_of(trace)) == 2


def test_a_sampled_trace_keeps_only_the_requests_the_client_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench, "MAX_KEPT_REQUESTS", 10)
    point = probed("gunicorn-sync:2", "blocking", 20, 2.0, 20)
    trace = point.trace
    assert trace is not None
    assert point.outcome.sent == 40
    # Every 4th request kept (40 / 10); the server's view of the others is left out.
    check_joined(trace, 10)
    assert {r.id for r in trace.requests} == {f"B{n}" for n in range(1, 41, 4)}
    # The workers' threads are shown busy for every request up to the last one kept (B37),
    # those not kept for no request.
    assert 37 <= len(trace.lanes) <= 40
    assert {s.request_id for s in trace.lanes} == {r.id for r in trace.requests} | {None}
    assert sum(s.request_id is None for s in trace.lanes) == len(trace.lanes) - 10
    assert any("kept 10 of the 40 requests" in note for note in trace.run.notes)
