"""The guard's rule on hand-built traces: which blocks fail a test, which the marker allows, and
how the suite adds them up (pure functions, no pytest run)."""

from __future__ import annotations

import sysconfig

import pytest

from loopscope.pytest_plugin.judge import Allowance, judge
from loopscope.pytest_plugin.summary import SuiteSummary
from loopscope.report import words
from loopscope.trace.model import LoopBlock, Request, Run, Segment, Trace

MS = 1_000_000


def _request(request_id: str, route: str, start_ms: int, ready_ms: int = 0) -> Request:
    segments = []
    if ready_ms:
        segments.append(
            Segment(f"request:{request_id}", "ready", start_ms * MS, (start_ms + ready_ms) * MS)
        )
    return Request(
        id=request_id,
        method="GET",
        path=route,
        route=route,
        status=200,
        client_send_ns=None,
        client_done_ns=None,
        server_start_ns=start_ms * MS,
        server_end_ns=(start_ms + 200) * MS,
        segments=segments,
    )


def _block(
    request_id: str | None,
    ms: int,
    where: str | None = "app/shop.py:12",
    cpu_ms: int | None = 1,
    runnable_ms: int | None = None,
    stack: tuple[str, ...] = ("app/shop.py:30 in route", "app/shop.py:12 in lookup"),
) -> LoopBlock:
    return LoopBlock(
        start_ns=10 * MS,
        end_ns=(10 + ms) * MS,
        cpu_ns=None if cpu_ms is None else cpu_ms * MS,
        request_id=request_id,
        where=where,
        stack=list(stack),
        runnable_ns=None if runnable_ms is None else runnable_ms * MS,
    )


def _trace(*blocks: LoopBlock) -> Trace:
    run = Run(mode="pytest", app="test_shop.py::test_x", block_ms=20.0)
    requests = [_request("s1-1", "/orders", 0), _request("s1-2", "/stock", 300, ready_ms=45)]
    return Trace(run=run, requests=requests, loop_blocks=list(blocks))


def test_a_request_block_over_the_threshold_fails_with_the_trace_verdict() -> None:
    judgement = judge(_trace(_block("s1-1", 120)), 20.0)
    assert judgement.failed
    [place] = judgement.blocking
    assert (place.verdict.route, place.verdict.kind, place.verdict.where) == (
        "GET /orders",
        "io-wait",
        "app/shop.py:12",
    )
    assert (place.group.count, place.group.cpu_ns, place.group.wait_ns) == (1, MS, 119 * MS)
    text = "\n".join(words.guard_report(judgement, warn=False))
    assert "GET /orders: blocks the event loop at app/shop.py:12 (1 time, 120 ms)" in text
    assert "I/O wait: await an async driver or offload it" in text
    assert "120 ms: CPU 1.0 ms, waiting 119 ms" in text
    assert '@pytest.mark.loopscope(allow=["app/shop.py:12"])' in text


def test_time_spent_waiting_for_a_cpu_does_not_count_against_the_test() -> None:
    busy_host = _block("s1-1", 30, cpu_ms=5, runnable_ms=15)
    judgement = judge(_trace(busy_host), 20.0)
    assert not judgement.failed
    assert [p.group.count for p in judgement.minor] == [1]


def test_a_block_with_no_line_caught_counts_only_past_three_thresholds() -> None:
    stdlib = (f"{sysconfig.get_paths()['stdlib']}/asyncio/selector_events.py:1057 in write",)
    assert not judge(_trace(_block("s1-1", 55, where=None, stack=stdlib)), 20.0).failed
    assert judge(_trace(_block("s1-1", 65, where=None, stack=stdlib)), 20.0).failed
    assert judge(_trace(_block("s1-1", 25)), 20.0).failed  # with its line: the threshold
    # Only the test's own line (the test runs on the app's loop): as if no line was caught.
    in_test = _block("s1-1", 50, where="tests/test_shop.py:43", stack=())
    assert not judge(_trace(in_test), 20.0, test_file="tests/test_shop.py").failed
    assert judge(_trace(in_test), 20.0).failed
    # The app's line, but the loop was in the standard library below it (a thread starting).
    thread_start = _block("s1-1", 50, stack=("app/shop.py:30 in route", *stdlib))
    assert not judge(_trace(thread_start), 20.0).failed


def test_blocks_outside_requests_and_gc_pauses_are_reported_not_failed() -> None:
    gc = _block("s1-1", 80, where=None)
    gc.kind = "gc"
    judgement = judge(_trace(_block(None, 200), gc), 20.0)
    assert not judgement.failed
    assert len(judgement.outside) == 1 and len(judgement.gc) == 1


@pytest.mark.parametrize(
    ("allowance", "allowed"),
    [
        (Allowance(block_ms=150), True),
        (Allowance(block_ms=100), False),
        (Allowance(places=("app/shop.py:12",)), True),
        (Allowance(places=("shop.py:12",)), True),
        (Allowance(places=("app/shop.py",)), True),
        (Allowance(places=("app/shop.py:13",)), False),
        (Allowance(places=("op.py:12",)), False),
        (Allowance(places=("app/other.py",)), False),
    ],
)
def test_the_marker_allows_by_length_or_by_place(allowance: Allowance, allowed: bool) -> None:
    judgement = judge(_trace(_block("s1-1", 120)), 20.0, allowance)
    assert judgement.failed is not allowed
    assert len(judgement.allowed) == int(allowed)


def test_stacks_are_cut_below_the_test_s_own_frames() -> None:
    stack = (
        "/venv/bin/pytest:8 in <module>",
        "tests/test_shop.py:20 in test_orders",
        "app/shop.py:30 in route",
        "app/shop.py:12 in lookup",
    )
    judgement = judge(
        _trace(_block("s1-1", 120, stack=stack)), 20.0, test_file="tests/test_shop.py"
    )
    assert judgement.blocking[0].stack == stack[2:]


def test_the_summary_adds_blocks_per_route_and_place_and_ready_time_per_route() -> None:
    summary = SuiteSummary(block_ms=20.0)
    for nodeid in ("t::a", "t::b"):
        trace = _trace(_block("s1-1", 120))
        summary.add(nodeid, trace, judge(trace, 20.0))
    allowed = _trace(_block("s1-1", 60))
    summary.add("t::c", allowed, judge(allowed, 20.0, Allowance(block_ms=100)))
    [place] = summary.worst_places()
    assert (place.count, place.total_ns, place.longest_ns, place.allowed) == (
        3,
        300 * MS,
        120 * MS,
        1,
    )
    assert place.tests == {"t::a", "t::b", "t::c"}
    [ready] = summary.slowest_ready()
    assert (ready.route, ready.requests, ready.longest_ns) == ("GET /stock", 3, 45 * MS)
    lines = words.guard_summary(summary, [])
    assert "3 tests watched, 3 made requests (6 requests); 2 tests blocked the loop" in lines[0]
    assert (
        "  GET /orders at app/shop.py:12: I/O wait, 3 blocks in 3 tests, 300 ms in total "
        "(longest 120 ms), 1 allowed"
    ) in lines
    assert "  GET /stock: up to 45 ms in one request, 135 ms over 3 requests" in lines


def test_library_work_in_an_app_s_first_request_is_warm_up_but_project_code_is_not() -> None:
    warm = _block("s1-1", 50, where="pydantic/type_adapter.py:267", stack=("pydantic/x.py:1 in f",))
    judgement = judge(
        _trace(warm), 20.0, first_requests=frozenset({"s1-1"}), in_project=lambda p: False
    )
    assert not judgement.failed and len(judgement.warmup) == 1
    ours = _block("s1-1", 50)
    judgement = judge(
        _trace(ours), 20.0, first_requests=frozenset({"s1-1"}), in_project=lambda p: "app/" in p
    )
    assert judgement.failed
    # The same library work in a later request is judged.
    assert judge(_trace(warm), 20.0, in_project=lambda p: False).failed
