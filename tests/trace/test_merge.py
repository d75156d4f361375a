"""Joining client stamps with probe records: one worker, several, or no client at all.

Hand-made `ServerRecord`s and client `Request`s; times are milliseconds after an arbitrary `T`.
"""

from __future__ import annotations

import copy

from loopscope.trace.merge import build_trace
from loopscope.trace.model import (
    LoopBlock,
    PoolCall,
    ProbeFailure,
    Request,
    Run,
    Segment,
    request_lane,
)
from loopscope.trace.record import ProbeCounts, ServerRecord, ServerRequest

MS = 1_000_000
T = 9_000_000 * MS


def at(ms: float) -> int:
    return T + int(ms * MS)


def server_request(request_id: str, start: float, end: float, route: str = "/x") -> ServerRequest:
    lane = request_lane(request_id)
    return ServerRequest(
        id=request_id,
        method="GET",
        path=route,
        route=route,
        status=200,
        server_start_ns=at(start),
        server_end_ns=at(end),
        loop_steps=2,
        longest_step_ns=MS,
        pool_hops=0,
        segments=[
            Segment(lane, "on-loop", at(start), at(start + 1), request_id=request_id),
            Segment(lane, "awaiting", at(start + 1), at(end), request_id=request_id),
        ],
    )


def record(pid: int, *requests: ServerRequest, **fields: object) -> ServerRecord:
    return ServerRecord(pid=pid, loop="asyncio", precise=True, block_ms=20.0,
                        requests=list(requests), **fields)  # type: ignore[arg-type]  # fmt: skip


def client(request_id: str, send: float, done: float) -> Request:
    return Request(request_id, "GET", "/x", "/x", 200, at(send), at(done))


def test_a_server_only_trace_keeps_every_request_the_probe_saw() -> None:
    only = record(
        41,
        server_request("s41-1", 0, 10, "/items/{id}"),
        server_request("s41-2", 5, 30),
        loop_blocks=[LoopBlock(at(6), at(28), 20 * MS, "s41-2", "app.py:3")],
    )
    trace = build_trace(Run(mode="pytest", app="app:app"), records=[only])

    assert [r.id for r in trace.requests] == ["s41-1", "s41-2"]
    first = trace.requests[0]
    assert first.server_only and first.client_send_ns is None
    assert first.route == "/items/{id}" and first.worker == 41
    assert (first.sent_ns, first.done_ns, first.latency_ns) == (at(0), at(10), 10 * MS)
    assert [s.state for s in first.segments] == ["on-loop", "awaiting"]  # no `queued`: no send
    assert [b.request_id for b in trace.loop_blocks] == ["s41-2"]
    assert trace.run.notes == []  # a server-only trace is no anomaly


def test_two_workers_records_merge_into_one_trace_on_one_clock() -> None:
    first = record(
        101,
        server_request("R1", 2, 12),
        pool=[PoolCall("R1", "app.work", at(3), at(4), at(9), "AnyIO worker thread #1")],
        counts=ProbeCounts(steps=5, loops=1),
        failures=[ProbeFailure("watchdog", "OSError(5)")],
    )
    second = record(
        202,
        server_request("R2", 3, 20),
        counts=ProbeCounts(steps=7, loops=1, dropped_events=2),
        failures=[ProbeFailure("watchdog", "OSError(5)", count=2)],
    )
    second.loop = "uvloop"
    second.precise = False
    requests = [client("R1", 0, 13), client("R2", 0, 21)]

    trace = build_trace(Run(mode="trace", app="app:app"), requests, [first, second])

    assert [(r.id, r.worker) for r in trace.requests] == [("R1", 101), ("R2", 202)]
    queued = trace.requests[1].segments[0]
    assert (queued.state, queued.start_ns, queued.end_ns) == ("queued", at(0), at(3))
    assert [c.request_id for c in trace.pool] == ["R1"]
    assert trace.run.probe == {
        "dropped_events": 2,
        "probe_errors": 0,
        "unrecorded_events": 0,
        "steps": 12,
        "loops": 2,
        "unobserved_loops": 0,
        "unseen_blocks": 0,
        "unseen_block_ns": 0,
    }
    assert trace.run.probe_failures == [ProbeFailure("watchdog", "OSError(5)", count=3)]
    assert trace.run.loop == "mixed"
    assert trace.run.precise is False


def test_unmatched_server_requests_are_kept_and_warm_up_requests_are_not() -> None:
    probe = record(
        7,
        server_request("W1", 0, 1),  # the warm-up, before the run began
        server_request("R1", 10, 20),
        server_request("s7-3", 12, 18),  # a request no loopscope client tagged
    )
    trace = build_trace(
        Run(mode="trace", app="app:app"), [client("R1", 9, 21)], [probe], since_ns=at(5)
    )
    assert [r.id for r in trace.requests] == ["R1", "s7-3"]
    assert trace.requests[1].server_only
    assert any("1 requests reached the server without a loopscope id" in n for n in trace.run.notes)


def test_building_a_trace_changes_neither_the_run_nor_the_requests() -> None:
    run = Run(mode="trace", app="app:app", notes=["measured here"])
    requests = [client("R1", 0, 13)]
    before = (copy.deepcopy(run), copy.deepcopy(requests))

    trace = build_trace(run, requests, [record(5, server_request("R1", 2, 12))])

    assert (run, requests) == before
    assert trace.run is not run and trace.requests[0] is not requests[0]
    assert trace.requests[0].server_start_ns == at(2)
    assert trace.run.notes == ["measured here"]


def test_without_records_the_trace_is_the_clients_view() -> None:
    trace = build_trace(Run(mode="trace", app="app:app"), [client("R1", 0, 13)])
    (request,) = trace.requests
    assert request.segments == [] and request.server_start_ns is None
    assert trace.run.probe == {} and trace.run.precise is False
