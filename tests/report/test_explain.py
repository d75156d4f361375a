"""The explanation of each seed run, worded from the trace's own numbers."""

from __future__ import annotations

import dataclasses

from loopscope.report import explain
from loopscope.trace import LoopBlock, Trace


def text_of(trace: Trace) -> str:
    return " ".join(explain(trace))


def stretched(trace: Trace, factor: int) -> Trace:
    """The same run with every interval `factor` times as long, measured from the first send."""
    origin = min(r.client_send_ns for r in trace.requests)

    def move(t: int) -> int:
        return origin + (t - origin) * factor

    for request in trace.requests:
        request.client_send_ns = move(request.client_send_ns)
        request.client_done_ns = move(request.client_done_ns)
        for segment in request.segments:
            segment.start_ns, segment.end_ns = move(segment.start_ns), move(segment.end_ns)
    for segment in trace.lanes:
        segment.start_ns, segment.end_ns = move(segment.start_ns), move(segment.end_ns)
    trace.loop_blocks = [
        dataclasses.replace(b, start_ns=move(b.start_ns), end_ns=move(b.end_ns))
        for b in trace.loop_blocks
    ]
    return trace


def test_the_async_blocking_run_says_what_blocked_the_loop_where_and_who_queued(
    seed_traces: list[Trace],
) -> None:
    text = text_of(seed_traces[1])
    assert "The event loop was blocked 3 times for 3.0 s in total at demo/db.py:41" in text
    assert "waiting, not CPU" in text
    assert "2 requests waited in the accept queue" in text
    assert "they ran one after another and finished at 1.0 s, 2.0 s and 3.0 s" in text


def test_the_async_run_says_the_coroutines_took_turns_at_their_awaits(
    seed_traces: list[Trace],
) -> None:
    text = text_of(seed_traces[2])
    assert "All 3 requests overlapped: each coroutine gave the loop back at its await" in text
    assert "they all finished at 1.0 s" in text
    assert "blocked" not in text


def test_the_blocking_run_says_the_work_ran_in_worker_threads(
    seed_traces: list[Trace],
) -> None:
    text = text_of(seed_traces[0])
    assert "ran in worker threads of the thread pool (40 tokens)" in text
    assert "Up to 3 worker threads ran at once" in text
    assert "All 3 requests overlapped" in text


def test_a_simulated_run_is_labelled_simulated_and_names_the_token_waits(one_thread: Trace) -> None:
    sentences = explain(one_thread)
    assert sentences[0].startswith("Simulated:")
    text = " ".join(sentences)
    assert "Only 1 worker thread ran at a time" in text
    assert "2 requests waited for a thread-pool token, for up to 2.0 s" in text
    assert "finished at 1.0 s, 2.0 s and 3.0 s" in text


def test_measured_runs_are_not_called_simulated(seed_traces: list[Trace]) -> None:
    assert all("imulated" not in text_of(trace) for trace in seed_traces)


def test_a_run_without_server_data_is_explained_from_the_client_view(client_only: Trace) -> None:
    text = text_of(client_only)
    assert "client view only" in text
    assert "event loop" not in text


def test_the_numbers_come_from_the_trace_not_from_the_seed(seed_traces: list[Trace]) -> None:
    text = text_of(stretched(seed_traces[1], 2))
    assert "blocked 3 times for 6.0 s in total" in text
    assert "finished at 2.0 s, 4.0 s and 6.0 s" in text


def test_a_short_block_is_mentioned_without_taking_over_the_story(
    seed_traces: list[Trace],
) -> None:
    trace = seed_traces[2]
    first = trace.requests[0].segments[1]
    trace.loop_blocks.append(
        LoopBlock(first.start_ns, first.start_ns + 20_000_000, 18_000_000, "R1", "/srv/app/x.py:9")
    )
    text = text_of(trace)
    assert "All 3 requests overlapped" in text
    assert "The event loop was also blocked once, for 20 ms, at app/x.py:9 (CPU work" in text


def test_a_trace_without_requests_gets_one_sentence() -> None:
    from loopscope.trace import Run

    assert explain(Trace(run=Run(mode="empty", app="x"))) == [
        "No requests were recorded in this run."
    ]


def test_a_second_trip_through_a_one_token_pool_is_explained() -> None:
    from loopscope.report import explain
    from loopscope.trace.model import PoolCall, Request, Run, Segment, Trace

    ms = 1_000_000
    requests = [Request(f"R{i}", "POST", "/x", "/x", 200, 0, 900 * ms) for i in (1, 2)]
    for request, runs in zip(
        requests, [[(1, 300), (600, 601)], [(300, 600), (601, 602)]], strict=True
    ):
        request.segments = [
            Segment(f"request:{request.id}", "in-thread", a * ms, b * ms, 0, None, request.id)
            for a, b in runs
        ]
    pool = [
        PoolCall("R1", "endpoint", 0, 1 * ms, 300 * ms, "w #1"),
        PoolCall("R2", "endpoint", 1 * ms, 300 * ms, 600 * ms, "w #1"),
        PoolCall("R1", "validate", 300 * ms, 600 * ms, 601 * ms, "w #1"),
        PoolCall("R2", "validate", 600 * ms, 601 * ms, 602 * ms, "w #1"),
    ]
    trace = Trace(Run(mode="single-thread", app="a:b", threads=1), requests, pool=pool)
    text = " ".join(explain(trace))
    assert "up to 2 times" in text
    assert "R1's trip 2 waited 300 ms for a token" in text
