"""The seed's experiment on real servers: the timing shapes the seed predicts, with honest margins.

Small I/O delays keep the suite fast; margins are ratios of the I/O time, never tight absolutes.
"""

from __future__ import annotations

import itertools

import pytest

from loopscope.errors import UsageError
from loopscope.measure.experiment import MODES, DemoOptions, demo_record, parse_modes, run_mode
from loopscope.report.console import finish_times_s, makespan_s, what_happened

IO_MS = 300


@pytest.mark.parametrize("mode", ["blocking", "async", "offload"])
def test_three_users_overlap_in_about_one_io_time(mode: str) -> None:
    trace = run_mode(MODES[mode], DemoOptions(io_ms=IO_MS, users=3, threads=40))
    assert [r.status for r in trace.requests] == [200, 200, 200]
    assert makespan_s(trace) < 1.6 * IO_MS / 1000
    assert what_happened(trace).startswith("all 3 overlapped")


def test_async_blocking_serialises_the_three_requests_one_io_apart() -> None:
    trace = run_mode(MODES["async-blocking"], DemoOptions(io_ms=IO_MS, users=3, threads=40))
    done = sorted(finish_times_s(trace))
    io = IO_MS / 1000
    assert 2.6 * io < makespan_s(trace) < 3.8 * io
    # One after another: each finishes about one I/O time after the previous one.
    assert all(0.7 * io < later - earlier < 1.4 * io for earlier, later in itertools.pairwise(done))
    assert what_happened(trace).startswith("requests ran one after another")


def test_one_worker_thread_serialises_the_three_requests() -> None:
    trace = run_mode(MODES["single-thread"], DemoOptions(io_ms=IO_MS, users=3, threads=40))
    assert trace.run.threads == 1
    assert 2.6 * IO_MS / 1000 < makespan_s(trace) < 3.8 * IO_MS / 1000


@pytest.mark.slow
def test_sixty_users_take_two_waves_in_the_pool_but_one_on_the_loop() -> None:
    io_ms = 1000
    blocking = run_mode(MODES["blocking"], DemoOptions(io_ms=io_ms, users=60, threads=40))
    asynchronous = run_mode(MODES["async"], DemoOptions(io_ms=io_ms, users=60, threads=40))
    assert all(r.status == 200 for r in blocking.requests + asynchronous.requests)
    assert 1.8 < makespan_s(blocking) < 3.0  # 40 tokens: 40 in the first wave, 20 in the second
    assert makespan_s(asynchronous) < 1.8
    assert makespan_s(blocking) / makespan_s(asynchronous) > 1.25


def test_the_demo_record_keeps_the_promised_keys() -> None:
    trace = run_mode(MODES["async"], DemoOptions(io_ms=50, users=3, threads=40))
    (run,) = demo_record([trace])["runs"]  # type: ignore[misc]
    assert {"mode", "io_ms", "users", "threads", "makespan_s", "requests"} <= set(run)
    assert run["mode"] == "async" and run["io_ms"] == 50 and run["users"] == 3
    for request in run["requests"]:
        assert {"id", "route", "status", "latency_s", "client_send_ns", "client_done_ns"} <= set(
            request
        )
        assert request["latency_s"] > 0


def test_unknown_modes_are_named_in_the_error() -> None:
    with pytest.raises(UsageError, match="Unknown mode turbo"):
        parse_modes("async,turbo")
    assert [m.name for m in parse_modes("offload, async")] == ["offload", "async"]


def _line_of(path: str, text: str) -> int:
    from pathlib import Path

    import loopscope

    source = Path(loopscope.__file__).parent / path
    return next(i for i, line in enumerate(source.read_text().splitlines(), 1) if text in line)


def test_async_blocking_shows_one_waiting_loop_block_per_request_at_the_sleep_line() -> None:
    trace = run_mode(MODES["async-blocking"], DemoOptions(io_ms=IO_MS, users=3, threads=40))
    sleep_line = _line_of("demo/db.py", "time.sleep(self.io_s)")
    blocks = [b for b in trace.loop_blocks if b.kind == "code"]
    assert sorted(b.request_id or "" for b in blocks) == ["R1", "R2", "R3"]
    for block in blocks:
        assert block.where is not None and block.where.endswith(f"demo/db.py:{sleep_line}")
        assert block.duration_ns > 0.8 * IO_MS * 1e6
        assert block.cpu_ns is not None and block.cpu_ns < 0.3 * block.duration_ns  # waiting
    # The seed's accept queue: R2 and R3 were queued while R1 blocked the loop.
    r3 = trace.requests[2]
    queued = sum(s.duration_ns for s in r3.segments if s.state == "queued")
    assert queued > 1.6 * IO_MS * 1e6


def test_true_async_has_no_loop_block_over_the_threshold() -> None:
    trace = run_mode(MODES["async"], DemoOptions(io_ms=IO_MS, users=3, threads=40))
    assert trace.run.precise
    assert [b for b in trace.loop_blocks if b.kind == "code"] == []
    states = {s.state for r in trace.requests for s in r.segments}
    assert {"queued", "on-loop", "awaiting"} <= states
    assert "loop-blocked" not in states


@pytest.mark.slow
def test_sixty_blocking_users_wait_for_the_pools_forty_tokens() -> None:
    io_ms = 500
    trace = run_mode(MODES["blocking"], DemoOptions(io_ms=io_ms, users=60, threads=40))
    waits = [
        sum(s.duration_ns for s in r.segments if s.state == "pool-wait") / 1e6
        for r in trace.requests
    ]
    long_waits = [w for w in waits if 0.7 * io_ms < w < 1.6 * io_ms]
    assert len(long_waits) >= 20
    assert max(s.borrowed for s in trace.pool_samples) == 40
    assert max(s.total for s in trace.pool_samples) == 40
    assert all((r.pool_hops or 0) >= 1 for r in trace.requests)
