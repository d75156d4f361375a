"""The thread pool in words: a wait for a token is told apart from the hand-off to a thread."""

from __future__ import annotations

from rich.console import Console

from loopscope.report.console import trace_summary
from loopscope.report.explain import explain
from loopscope.trace import PoolCall, PoolSample, Request, Run, Segment, Trace
from loopscope.trace.model import request_lane

MS = 1_000_000


def _trace(waiting: int) -> Trace:
    lane = request_lane("R1")
    request = Request(
        "R1", "GET", "/heroes/", "/heroes/", 200, 0, 100 * MS, server_start_ns=1 * MS,
        server_end_ns=99 * MS,
        segments=[
            Segment(lane, "on-loop", 1 * MS, 2 * MS),
            Segment(lane, "pool-wait", 2 * MS, 40 * MS),
            Segment(lane, "in-thread", 40 * MS, 90 * MS),
            Segment(lane, "on-loop", 90 * MS, 99 * MS),
        ],
    )  # fmt: skip
    run = Run(mode="trace", app="heroes:app", block_ms=20, precise=True, probe={"steps": 9})
    return Trace(
        run=run,
        requests=[request],
        pool=[PoolCall("R1", "heroes.get_session", 2 * MS, 40 * MS, 90 * MS, "W #1")],
        pool_samples=[
            PoolSample(2 * MS, 1, 40, waiting),
            PoolSample(40 * MS, 1, 40, 0),
            PoolSample(90 * MS, 0, 40, 0),
        ],
    )


def _console(trace: Trace) -> str:
    console = Console(width=200, record=True)
    for part in trace_summary(trace):
        console.print(part)
    return console.export_text()


def test_with_no_task_waiting_the_wait_is_called_a_hand_off_not_a_token_wait() -> None:
    trace = _trace(waiting=0)
    text, story = _console(trace), " ".join(explain(trace))
    assert "no task waited for a token" in text
    assert "for a worker thread to pick their call up" in text
    assert "request waited for a thread-pool token" not in story
    assert "No task waited for a thread-pool token" in story


def test_with_a_task_waiting_it_is_a_token_wait() -> None:
    trace = _trace(waiting=1)
    assert "requests waited over 5.0 ms for a token" in _console(trace)
    assert "1 request waited for a thread-pool token" in " ".join(explain(trace))
