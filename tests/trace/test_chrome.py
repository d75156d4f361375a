"""Chrome trace-event export: the structure Perfetto and chrome://tracing expect."""

from __future__ import annotations

import json

import pytest

from loopscope.trace import LoopBlock, PoolSample, Request, Run, Segment, Trace
from loopscope.trace.chrome import to_chrome

MS = 1_000_000
T0 = 9_000 * MS


def run_trace(mode: str) -> Trace:
    """R1 blocks the loop for 100 ms while R2 waits in the accept queue."""
    r1 = Request("R1", "GET", "/a", "/a", 200, T0, T0 + 120 * MS)
    r1.segments = [
        Segment("request:R1", "on-loop", T0 + 1 * MS, T0 + 2 * MS, request_id="R1"),
        Segment("request:R1", "loop-blocked", T0 + 2 * MS, T0 + 102 * MS, 3 * MS, "a.py:7", "R1"),
    ]
    r2 = Request("R2", "GET", "/b", "/b", 200, T0 + 1 * MS, T0 + 130 * MS)
    r2.segments = [Segment("request:R2", "queued", T0 + 1 * MS, T0 + 102 * MS, request_id="R2")]
    trace = Trace(run=Run(mode=mode, app="demo"), requests=[r1, r2])
    trace.lanes = [
        Segment("loop:77", "loop-blocked", T0 + 2 * MS, T0 + 102 * MS, 3 * MS, "a.py:7", "R1"),
        Segment("thread:W", "in-thread", T0 + 5 * MS, T0 + 6 * MS, request_id="R2"),
    ]
    trace.loop_blocks = [LoopBlock(T0 + 2 * MS, T0 + 102 * MS, 3 * MS, "R1", "a.py:7")]
    trace.pool_samples = [PoolSample(T0 + 5 * MS, 1, 40, 0)]
    return trace


def by_phase(document: dict[str, object], phase: str) -> list[dict[str, object]]:
    events = document["traceEvents"]
    assert isinstance(events, list)
    return [e for e in events if e["ph"] == phase]


def test_each_run_is_a_process_named_after_its_mode() -> None:
    document = to_chrome([run_trace("async-blocking"), run_trace("async")])
    names = {
        e["pid"]: e["args"]["name"]  # type: ignore[index]
        for e in by_phase(document, "M")
        if e["name"] == "process_name"
    }
    assert names == {1: "async-blocking — measured (demo)", 2: "async — measured (demo)"}


def test_each_lane_is_a_named_thread() -> None:
    document = to_chrome([run_trace("async-blocking")])
    threads = {
        e["args"]["name"]  # type: ignore[index]
        for e in by_phase(document, "M")
        if e["name"] == "thread_name"
    }
    assert threads == {"event loop (pid 77)", "thread W", "loop blocks", "R1 GET /a", "R2 GET /b"}


def test_segments_are_complete_events_in_microseconds_from_the_first_send() -> None:
    document = to_chrome([run_trace("async-blocking")])
    blocked = [
        e
        for e in by_phase(document, "X")
        if e["cat"] == "loop-blocked" and e["args"]["request"] == "R1"  # type: ignore[index]
    ]
    assert len(blocked) == 2  # on R1's own lane and on the loop's
    event = blocked[0]
    assert event["ts"] == pytest.approx(2_000.0)
    assert event["dur"] == pytest.approx(100_000.0)
    assert event["args"] == {
        "request": "R1",
        "route": "/a",
        "state": "loop-blocked",
        "cpu_ms": 3.0,
        "where": "a.py:7",
    }


def test_requests_loop_blocks_and_the_pool_have_their_own_events() -> None:
    document = to_chrome([run_trace("async-blocking")])
    cats = [e["cat"] for e in by_phase(document, "X")]
    assert cats.count("request") == 2
    assert cats.count("loop-block") == 1
    (counter,) = by_phase(document, "C")
    assert counter["args"] == {"borrowed": 1, "waiting": 0}


def test_the_document_survives_a_json_round_trip() -> None:
    document = to_chrome([run_trace("async-blocking"), run_trace("async")])
    assert json.loads(json.dumps(document)) == document
    assert document["displayTimeUnit"] == "ms"


def test_work_before_the_first_send_shifts_every_run_alike_to_keep_times_positive() -> None:
    early = run_trace("async-blocking")
    early.lanes.append(Segment("thread:W", "in-thread", T0 - 5 * MS, T0 - 4 * MS))
    document = to_chrome([early, run_trace("async")])
    xs = by_phase(document, "X")
    assert min(float(e["ts"]) for e in xs) == 0.0  # type: ignore[arg-type]
    firsts = [
        e["ts"]
        for e in xs
        if e["cat"] == "request" and e["args"]["request"] == "R1"  # type: ignore[index]
    ]
    assert firsts == [5_000.0, 5_000.0]


def test_an_empty_list_of_runs_is_an_empty_trace() -> None:
    assert to_chrome([]) == {"traceEvents": [], "displayTimeUnit": "ms"}
