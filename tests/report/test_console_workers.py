"""The console at any width, ratios as measured, and the workers and accept queue in the
summary and the timeline (hand-built traces; the real servers are in tests/measure)."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from loopscope.report.console import trace_summary, what_happened
from loopscope.report.explain import explain
from loopscope.report.timeline import render_timeline
from loopscope.report.words import accept_queue_sentence, times, worker_sentences
from loopscope.trace.chrome import to_chrome
from loopscope.trace.model import QueueSample, Trace, WorkerLife
from loopscope.trace.processes import accept_queue_stats, worker_spread

from .conftest import MS, T0, async_blocking_trace

LONG_WHERE = "/srv/app/prod/inventory_store_backend_with_a_long_name.py:1234"
SHOWN = "prod/inventory_store_backend_with_a_long_name.py:1234"


def _rendered(trace: Trace, width: int) -> str:
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    for part in trace_summary(trace):
        console.print(part)
    return console.export_text()


@pytest.mark.parametrize("width", [60, 80, 120])
def test_a_path_and_line_is_never_cut_at_any_terminal_width(width: int) -> None:
    trace = async_blocking_trace()
    for block in trace.loop_blocks:
        block.where = LONG_WHERE
    text = _rendered(trace, width)

    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    # In the loop-block table and in the verdict, whole, on one line.
    assert sum(SHOWN in line for line in lines) >= 2, text
    assert "…" not in text


def test_what_happened_states_the_ratio_to_the_io_time_as_measured() -> None:
    trace = async_blocking_trace()
    trace.run.io_ms = 1000.0
    said = what_happened(trace)
    span_s = max(r.done_ns for r in trace.requests) - min(r.sent_ns for r in trace.requests)
    assert f"the last at {span_s / 1e9:.1f}× the I/O time" in said
    assert "≈" not in said


@pytest.mark.parametrize(
    ("ratio", "said"),
    [(1.0042, "1.00×"), (1.4, "1.4×"), (2.96, "3.0×"), (0.5, "0.50×"), (14.2, "14×")],
)
def test_ratios_are_said_with_their_measured_digits(ratio: float, said: str) -> None:
    assert times(ratio) == said


def _two_workers(trace: Trace, died_at_ms: float | None = None) -> Trace:
    """`trace` served by pid 4242 (the builder's), with an idle second worker, pid 4343; with
    `died_at_ms`, 4343 died then and pid 4444 replaced it."""
    trace.run.started_ns = T0
    trace.run.workers = 2
    for request in trace.requests:
        request.worker = 4242
    trace.workers = [
        WorkerLife(4242, T0 - 500 * MS, loop="asyncio", http="h11", recorded=True),
        WorkerLife(4343, T0 - 400 * MS, loop="asyncio", http="h11", recorded=died_at_ms is None),
    ]
    if died_at_ms is not None:
        trace.workers[1].ended_ns = T0 + round(died_at_ms * MS)
        trace.workers.append(WorkerLife(4444, T0 + round((died_at_ms + 700) * MS), recorded=True))
    return trace


def test_an_idle_worker_gets_its_loop_lane_and_the_uneven_spread_is_said() -> None:
    trace = _two_workers(async_blocking_trace())
    spread = worker_spread(trace)
    assert spread is not None and spread.busiest_ratio == pytest.approx(2.0)
    said = " ".join(worker_sentences(spread))
    assert "pid 4242: 3, pid 4343: 0" in said
    assert "Uneven spread: pid 4242 served 3 of 3 (2.0× an even share)" in said
    svg = render_timeline(trace)
    assert 'data-lane="loop:4242"' in svg and 'data-lane="loop:4343"' in svg


def test_a_dead_worker_and_its_replacement_are_said_and_marked_on_the_timeline() -> None:
    trace = _two_workers(async_blocking_trace(), died_at_ms=500)
    spread = worker_spread(trace)
    assert spread is not None
    said = " ".join(worker_sentences(spread))
    assert "Worker pid 4343 died at 0.50 s; its probe record was lost with it" in said
    assert "Worker pid 4444 started at 1.20 s, after the run began (a replacement)" in said
    assert "Uneven" not in said  # one worker up from start to end: nothing to compare
    svg = render_timeline(trace)
    assert re.search(r'class="worker-died"[^>]*data-pid="4343"', svg)
    assert re.search(r'class="worker-started"[^>]*data-pid="4444"', svg)
    assert "event loop (pid 4343, died)" in svg


def test_the_accept_queue_is_a_lane_and_its_peak_is_said() -> None:
    trace = async_blocking_trace()
    trace.run.started_ns = T0
    trace.run.queue_sample_ms = 2.0
    trace.accept_queue = [
        QueueSample(T0, 0, 2048),
        QueueSample(T0 + 10 * MS, 2, 2048),
        QueueSample(T0 + 30 * MS, 1, 2048),
        QueueSample(T0 + 60 * MS, 0, 2048),
        QueueSample(T0 + 900 * MS, 0, 2048),
    ]
    stats = accept_queue_stats(trace)
    assert stats is not None
    assert (stats.peak, stats.peak_at_ns, stats.nonempty_ns) == (2, 10 * MS, 50 * MS)
    said = accept_queue_sentence(stats)
    assert "peak 2 connections waiting at 0.01 s (backlog 2048); not empty for 50 ms" in said
    svg = render_timeline(trace)
    depths = re.findall(r'class="queue"[^>]*data-depth="(\d+)"', svg)
    assert depths == ["2", "1"]
    assert "accept queue (peak 2)" in svg


def test_an_empty_accept_queue_is_said_to_have_stayed_empty() -> None:
    trace = async_blocking_trace()
    trace.accept_queue = [QueueSample(T0, 0, 2048), QueueSample(T0 + 5 * MS, 0, 2048)]
    stats = accept_queue_stats(trace)
    assert stats is not None and stats.peak == 0
    assert "always empty" in accept_queue_sentence(stats)


def test_requests_held_up_by_a_block_are_said_to_wait_where_the_kernel_says_they_did() -> None:
    unsampled = async_blocking_trace()
    assert "2 requests waited in the accept queue:" in " ".join(explain(unsampled))

    empty = async_blocking_trace()
    empty.accept_queue = [QueueSample(T0, 0, 2048), QueueSample(T0 + 4000 * MS, 0, 2048)]
    said = " ".join(explain(empty))
    assert "2 requests waited unread on connections the server had already accepted" in said

    filled = async_blocking_trace()
    filled.accept_queue = [
        QueueSample(T0, 0, 2048),
        QueueSample(T0 + 100 * MS, 2, 2048),
        QueueSample(T0 + 4000 * MS, 0, 2048),
    ]
    said = " ".join(explain(filled))
    assert "2 requests waited in the accept queue (up to 2 connections there, measured)" in said


def test_the_chrome_export_carries_the_accept_queue_as_a_counter_track() -> None:
    trace = async_blocking_trace()
    trace.accept_queue = [QueueSample(T0, 0, 2048), QueueSample(T0 + 10 * MS, 3, 2048)]
    counters = [
        e["args"]["connections"]
        for e in to_chrome([trace])["traceEvents"]
        if e.get("name") == "accept queue (kernel)"
    ]
    assert counters == [0, 3]
