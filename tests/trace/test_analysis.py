"""The pure analysis functions, on small hand-built Traces with round numbers."""

from __future__ import annotations

import pytest

from loopscope.report.words import format_duration, short_where, verdict_text
from loopscope.trace import (
    STATES,
    LoopBlock,
    PoolCall,
    PoolSample,
    Request,
    Run,
    Segment,
    State,
    Trace,
)
from loopscope.trace.analysis import (
    latency_percentiles,
    loop_blocks,
    loop_utilisation,
    makespan_ns,
    time_by_state,
    top_loop_blocks,
)
from loopscope.trace.saturation import (
    peak_concurrency,
    pool_saturation,
)
from loopscope.trace.verdicts import (
    verdicts,
)

MS = 1_000_000
T0 = 50_000 * MS


def request(rid: str, route: str, send_ms: float, done_ms: float, *parts: Segment) -> Request:
    return Request(
        id=rid,
        method="GET",
        path=route,
        route=route,
        status=200,
        client_send_ns=T0 + round(send_ms * MS),
        client_done_ns=T0 + round(done_ms * MS),
        segments=list(parts),
    )


def seg(
    state: State,
    start_ms: float,
    end_ms: float,
    lane: str = "request:x",
    cpu_ms: float | None = None,
    where: str | None = None,
    rid: str | None = None,
) -> Segment:
    return Segment(
        lane=lane,
        state=state,
        start_ns=T0 + round(start_ms * MS),
        end_ns=T0 + round(end_ms * MS),
        cpu_ns=None if cpu_ms is None else round(cpu_ms * MS),
        where=where,
        request_id=rid,
    )


def block(
    start_ms: float,
    end_ms: float,
    rid: str | None,
    where: str | None,
    cpu_ms: float | None = None,
    delayed: tuple[str, ...] = (),
) -> LoopBlock:
    return LoopBlock(
        start_ns=T0 + round(start_ms * MS),
        end_ns=T0 + round(end_ms * MS),
        cpu_ns=None if cpu_ms is None else round(cpu_ms * MS),
        request_id=rid,
        where=where,
        delayed=list(delayed),
    )


def trace(*requests: Request, threads: int | None = 40, block_ms: float | None = None) -> Trace:
    return Trace(
        run=Run(mode="test", app="app", threads=threads, block_ms=block_ms),
        requests=list(requests),
    )


def test_makespan_runs_from_the_first_send_to_the_last_done() -> None:
    t = trace(request("a", "/a", 5, 100), request("b", "/b", 0, 60), request("c", "/c", 1, 250))
    assert makespan_ns(t) == 250 * MS


def test_makespan_of_a_trace_without_requests_is_zero() -> None:
    assert makespan_ns(trace()) == 0


def test_latency_percentiles_are_nearest_rank_per_route_in_first_seen_order() -> None:
    slow = [request(f"s{i}", "/slow", 0, i) for i in range(1, 11)]
    t = trace(request("f", "/fast", 0, 2), *slow)
    stats = latency_percentiles(t)
    assert list(stats) == ["GET /fast", "GET /slow"]
    assert stats["GET /fast"].count == 1 and stats["GET /fast"].p99 == 2 * MS
    slow_stats = stats["GET /slow"]
    assert slow_stats.count == 10
    assert (slow_stats.p50, slow_stats.p90, slow_stats.p99, slow_stats.max) == (
        5 * MS,
        9 * MS,
        10 * MS,
        10 * MS,
    )


def test_time_by_state_sums_request_segments_and_lists_every_state() -> None:
    t = trace(
        request("a", "/a", 0, 30, seg("queued", 0, 10), seg("on-loop", 10, 12)),
        request("b", "/b", 0, 30, seg("queued", 0, 5), seg("awaiting", 5, 25)),
    )
    t.lanes.append(seg("on-loop", 10, 12, lane="loop:1"))
    totals = time_by_state(t)
    assert list(totals) == list(STATES)
    assert totals["queued"] == 15 * MS
    assert totals["on-loop"] == 2 * MS  # the loop lane's copy is not counted twice
    assert totals["awaiting"] == 20 * MS
    assert totals["in-thread"] == 0


def test_loop_utilisation_is_the_busy_share_of_the_span_with_overlaps_counted_once() -> None:
    t = trace(request("a", "/a", 0, 1000))
    t.lanes += [
        seg("on-loop", 0, 100, lane="loop:1"),
        seg("loop-blocked", 50, 200, lane="loop:1"),
        seg("on-loop", 900, 950, lane="loop:1"),
        seg("in-thread", 0, 1000, lane="thread:w1"),
    ]
    t.run.precise = True
    assert loop_utilisation(t) == pytest.approx(0.25)


def test_loop_utilisation_is_unknown_when_only_a_watchdog_ran() -> None:
    t = trace(request("a", "/a", 0, 1000))
    t.lanes.append(seg("loop-blocked", 50, 200, lane="loop:1"))
    t.run.precise = False  # e.g. uvloop: the loop lane holds only the blocks
    assert loop_utilisation(t) is None


def test_loop_utilisation_is_none_without_loop_lane_segments() -> None:
    t = trace(request("a", "/a", 0, 1000, seg("on-loop", 0, 10)))
    assert loop_utilisation(t) is None


def test_top_loop_blocks_groups_by_location_longest_total_first() -> None:
    t = trace(request("r1", "/login", 0, 3000), request("r2", "/report", 0, 3000))
    t.loop_blocks = [
        block(0, 1000, "r1", "repo.py:7", cpu_ms=10, delayed=("r2",)),
        block(1000, 2000, "r1", "repo.py:7", cpu_ms=10),
        block(2000, 2500, "r2", "reports.py:3", cpu_ms=480),
        block(2600, 2620, None, None),
    ]
    t.loop_blocks[3].kind = "gc"
    groups = top_loop_blocks(t)
    assert [g.where for g in groups] == ["repo.py:7", "reports.py:3", "garbage collection"]
    io = groups[0]
    assert (io.count, io.total_ns, io.longest_ns) == (2, 2000 * MS, 1000 * MS)
    assert (io.cpu_ns, io.wait_ns) == (20 * MS, 1980 * MS)
    assert io.routes == ("GET /login",) and io.delayed == 1
    assert io.cpu_bound is False and io.kind == "code"
    assert groups[1].cpu_bound is True
    assert groups[2].kind == "gc" and groups[2].cpu_ns is None and groups[2].cpu_bound is None
    assert len(top_loop_blocks(t, n=1)) == 1


def test_loop_blocks_fall_back_to_loop_blocked_segments_when_none_were_recorded() -> None:
    t = trace(
        request("r1", "/a", 0, 100, seg("loop-blocked", 10, 90, cpu_ms=1, where="a.py:1", rid="r1"))
    )
    (derived,) = loop_blocks(t)
    assert (derived.request_id, derived.where, derived.duration_ns) == ("r1", "a.py:1", 80 * MS)


def test_pool_saturation_reads_the_limiter_samples() -> None:
    t = trace(request("a", "/a", 0, 100))
    t.pool_samples = [
        PoolSample(T0, 1, 2, 0),
        PoolSample(T0 + 10 * MS, 2, 2, 3),
        PoolSample(T0 + 40 * MS, 1, 2, 0),
        PoolSample(T0 + 50 * MS, 0, 2, 0),
    ]
    pool = pool_saturation(t)
    assert (pool.total_tokens, pool.peak_borrowed, pool.peak_waiting) == (2, 2, 3)
    assert pool.full_ns == 30 * MS


def test_pool_saturation_replays_pool_calls_when_there_are_no_samples() -> None:
    t = trace(
        request("r1", "/sync", 0, 110),
        request("r2", "/sync", 0, 110),
        request("r3", "/sync", 0, 210),
        threads=2,
    )
    t.pool = [
        PoolCall("r1", "f", T0, T0, T0 + 100 * MS, "w1"),
        PoolCall("r2", "f", T0, T0, T0 + 100 * MS, "w2"),
        PoolCall("r3", "f", T0, T0 + 100 * MS, T0 + 200 * MS, "w1"),
    ]
    pool = pool_saturation(t)
    assert (pool.total_tokens, pool.peak_borrowed, pool.peak_waiting) == (2, 2, 1)
    assert pool.full_ns == 100 * MS
    assert pool.calls == 3 and pool.used
    waits = {w.request_id: w for w in pool.per_request}
    assert waits["r3"].waits == 1 and waits["r3"].max_wait_ns == 100 * MS
    assert waits["r1"].waits == 0


def test_pool_saturation_of_a_run_without_the_pool_is_unused() -> None:
    assert not pool_saturation(trace(request("a", "/a", 0, 10))).used


def test_peak_concurrency_does_not_count_back_to_back_intervals_as_overlapping() -> None:
    assert peak_concurrency([(0, 10), (10, 20), (15, 30)]) == 2
    assert peak_concurrency([]) == 0


def test_verdicts_name_the_line_and_the_fix_for_each_kind_of_problem() -> None:
    t = trace(
        request("r1", "/io", 0, 1000),
        request("r2", "/cpu", 0, 1000),
        request("r3", "/sync", 0, 1000, seg("pool-wait", 0, 400), seg("in-thread", 400, 1000)),
        request("r4", "/fast", 0, 10, seg("on-loop", 0, 1), seg("awaiting", 1, 10)),
        request("r5", "/unprobed", 0, 10),
        block_ms=50,
    )
    t.loop_blocks = [
        block(0, 900, "r1", "repo.py:7", cpu_ms=3),
        block(0, 800, "r2", "reports.py:3", cpu_ms=790),
    ]
    by_route = {v.route: v for v in verdicts(t)}
    assert list(by_route) == ["GET /io", "GET /cpu", "GET /sync", "GET /fast", "GET /unprobed"]
    assert by_route["GET /io"].kind == "io-wait"
    assert verdict_text(by_route["GET /io"]).startswith("blocks the event loop at repo.py:7")
    assert "I/O wait: await an async driver or offload it" in verdict_text(by_route["GET /io"])
    assert by_route["GET /cpu"].kind == "cpu-bound"
    assert verdict_text(by_route["GET /cpu"]).startswith("CPU-bound at reports.py:3")
    assert "offload to a process pool" in verdict_text(by_route["GET /cpu"])
    assert by_route["GET /sync"].kind == "pool-wait"
    assert verdict_text(by_route["GET /sync"]) == (
        "runs in the thread pool; waited for a token once (up to 400 ms): "
        "raise the limiter or make it async"
    )
    assert (
        verdict_text(by_route["GET /fast"])
        == "runs on the event loop; no loop blocks over the threshold (50 ms)"
    )
    assert by_route["GET /unprobed"].kind == "client-only"


def test_a_route_that_blocks_the_loop_gets_the_block_verdict_even_if_it_also_waited() -> None:
    t = trace(request("r1", "/both", 0, 1000, seg("pool-wait", 0, 500), seg("in-thread", 500, 600)))
    t.loop_blocks = [block(600, 1000, "r1", "x.py:1")]
    (verdict,) = verdicts(t)
    assert verdict.kind == "blocks-loop" and verdict.where == "x.py:1"


def test_short_token_waits_do_not_make_a_pool_wait_verdict() -> None:
    t = trace(request("r1", "/sync", 0, 1000, seg("pool-wait", 0, 0.2), seg("in-thread", 0.2, 999)))
    (verdict,) = verdicts(t)
    assert verdict.kind == "thread-pool"


def test_verdicts_shorten_absolute_paths_and_name_unknown_lines() -> None:
    t = trace(request("r1", "/a", 0, 1000), request("r2", "/b", 0, 1000))
    t.loop_blocks = [
        block(0, 500, "r1", "/srv/app/shop/repo.py:7", cpu_ms=1),
        block(500, 900, "r2", None, cpu_ms=390),
    ]
    first, second = verdicts(t)
    assert verdict_text(first).startswith(
        "blocks the event loop at shop/repo.py:7 (1 time, 500 ms)"
    )
    assert first.where == "/srv/app/shop/repo.py:7"
    assert verdict_text(second).startswith("CPU-bound at a line not sampled")
    assert second.where is None


@pytest.mark.parametrize(
    ("where", "short"),
    [
        ("/srv/app/shop/repo.py:7", "shop/repo.py:7"),
        ("shop/repo.py:7", "shop/repo.py:7"),
        ("<frozen genericpath>:19", "<frozen genericpath>:19"),
        (None, "unknown"),
    ],
)
def test_short_where_keeps_the_last_directory_and_file(where: str | None, short: str) -> None:
    assert short_where(where) == short


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0 ms"),
        (350_000, "0.35 ms"),
        (4_200_000, "4.2 ms"),
        (850 * MS, "850 ms"),
        (999_700_000, "1.0 s"),
        (2_940 * MS, "2.9 s"),
    ],
)
def test_format_duration_picks_the_unit_a_reader_expects(ns: int, text: str) -> None:
    assert format_duration(ns) == text
