"""Executors and drivers' threads in a trace: numbers per executor and per route, and the words
that say which thread a route waited in (hand-built traces, no server)."""

from __future__ import annotations

from loopscope.report.explain import explain
from loopscope.report.views import run_view
from loopscope.report.words import unseen_note, verdict_text
from loopscope.trace import PoolCall, Request, Run, Segment, Trace
from loopscope.trace.executors import executors, thread_work
from loopscope.trace.model import request_lane
from loopscope.trace.saturation import pool_saturation
from loopscope.trace.verdicts import verdicts

MS = 1_000_000


def _request(rid: str, path: str, start: int, end: int) -> Request:
    lane = request_lane(rid)
    segments = [
        Segment(lane, "on-loop", start, start + MS),
        Segment(lane, "in-thread", start + MS, end),
    ]
    return Request(
        rid, "GET", path, path, 200, start, end, server_start_ns=start, server_end_ns=end,
        segments=segments,
    )  # fmt: skip


def _call(
    rid: str,
    at: tuple[int, int, int],
    thread: str,
    executor: str | None = None,
    capacity: int | None = None,
) -> PoolCall:
    submitted, started, finished = (t * MS for t in at)
    return PoolCall(
        rid, "app.export", submitted, started, finished, thread,
        executor=executor, capacity=capacity,
    )  # fmt: skip


def _trace() -> Trace:
    connection = "Thread-7 (_connection_worker_thread)"
    return Trace(
        run=Run(mode="trace", app="app:app", block_ms=20, precise=True, loop="uvloop",
                probe={"unseen_blocks": 2, "unseen_block_ns": 70 * MS}),
        requests=[
            _request("A", "/pdf", 0, 130 * MS),
            _request("B", "/pdf", 0, 130 * MS),
            _request("C", "/pdf", 0, 250 * MS),
            _request("D", "/count", 0, 60 * MS),
            _request("E", "/sync", 0, 60 * MS),
        ],
        pool=[
            _call("A", (0, 1, 121), "reports_0", "reports", 2),
            _call("B", (0, 1, 121), "reports_1", "reports", 2),
            # Two threads for three calls: the third waited 120 ms for a free one.
            _call("C", (0, 121, 241), "reports_0", "reports", 2),
            _call("D", (1, 2, 50), connection, "aiosqlite", 1),
            _call("E", (1, 2, 50), "AnyIO worker thread #1"),
        ],
    )  # fmt: skip


def test_each_executor_is_listed_with_capacity_peak_and_waits() -> None:
    used = {u.name: u for u in executors(_trace())}
    assert set(used) == {"reports", "aiosqlite"}  # anyio's pool is not an executor here
    reports = used["reports"]
    assert (reports.capacity, reports.calls, reports.peak_busy) == (2, 3, 2)
    assert reports.threads == ("reports_0", "reports_1")
    assert (reports.waits, reports.longest_wait_ns) == (1, 121 * MS)


def test_anyios_pool_counts_only_its_own_calls() -> None:
    pool = pool_saturation(_trace())
    assert (pool.calls, pool.peak_borrowed) == (1, 1)


def test_a_route_that_offloads_to_an_executor_says_which_thread_it_waited_in() -> None:
    trace = _trace()
    work = thread_work(trace)["GET /pdf"]
    (reports,) = work
    assert (reports.requests, reports.calls, reports.per_request_ns) == (3, 3, 120 * MS)
    judged = {v.route: v for v in verdicts(trace)}
    assert judged["GET /pdf"].kind == "offloaded"
    said = verdict_text(judged["GET /pdf"])
    assert said.startswith("waits 120 ms in threads `reports_0`, `reports_1` (executor `reports`)")
    assert "after up to 121 ms waiting for a free thread" in said
    assert "runs on the event loop" not in said
    assert "(executor `aiosqlite`)" in verdict_text(judged["GET /count"])
    assert judged["GET /sync"].kind == "thread-pool"  # anyio's, worded as before


def test_the_report_lists_executors_and_what_uvloop_left_unseen() -> None:
    trace = _trace()
    note = unseen_note(trace.run)
    assert note is not None and "2 loop blocks (70 ms) lay outside every task step" in note
    view = run_view(trace, svg="")
    pool = dict(view.pool)
    assert pool["executor `reports`"].startswith("2 threads, 3 calls, peak 2 busy, 1 waited")
    assert "1 thread per connection" in pool["executor `aiosqlite`"]
    assert ("not seen", note) in view.facts
    assert any("Executor `reports`" in sentence for sentence in explain(trace))
