"""The seed's experiment on real servers: the timing shapes the seed predicts, with honest margins.

Small I/O delays keep the suite fast; margins are ratios of the I/O time, never tight absolutes.
"""

from __future__ import annotations

import itertools

import pytest

from loopscope.errors import UsageError
from loopscope.experiment import MODES, demo_record, parse_modes, run_mode
from loopscope.report.console import finish_times_s, makespan_s, what_happened

IO_MS = 300


@pytest.mark.parametrize("mode", ["blocking", "async", "offload"])
def test_three_users_overlap_in_about_one_io_time(mode: str) -> None:
    trace = run_mode(MODES[mode], io_ms=IO_MS, users=3, threads=40)
    assert [r.status for r in trace.requests] == [200, 200, 200]
    assert makespan_s(trace) < 1.6 * IO_MS / 1000
    assert what_happened(trace).startswith("all 3 overlapped")


def test_async_blocking_serialises_the_three_requests_one_io_apart() -> None:
    trace = run_mode(MODES["async-blocking"], io_ms=IO_MS, users=3, threads=40)
    done = sorted(finish_times_s(trace))
    io = IO_MS / 1000
    assert 2.6 * io < makespan_s(trace) < 3.8 * io
    # One after another: each finishes about one I/O time after the previous one.
    assert all(0.7 * io < later - earlier < 1.4 * io for earlier, later in itertools.pairwise(done))
    assert what_happened(trace).startswith("requests ran one after another")


def test_one_worker_thread_serialises_the_three_requests() -> None:
    trace = run_mode(MODES["single-thread"], io_ms=IO_MS, users=3, threads=40)
    assert trace.run.threads == 1
    assert 2.6 * IO_MS / 1000 < makespan_s(trace) < 3.8 * IO_MS / 1000


@pytest.mark.slow
def test_sixty_users_take_two_waves_in_the_pool_but_one_on_the_loop() -> None:
    io_ms = 1000
    blocking = run_mode(MODES["blocking"], io_ms=io_ms, users=60, threads=40)
    asynchronous = run_mode(MODES["async"], io_ms=io_ms, users=60, threads=40)
    assert all(r.status == 200 for r in blocking.requests + asynchronous.requests)
    assert 1.8 < makespan_s(blocking) < 2.9  # 40 tokens: 40 in the first wave, 20 in the second
    assert makespan_s(asynchronous) < 1.5
    assert makespan_s(blocking) / makespan_s(asynchronous) > 1.4


def test_the_demo_record_keeps_the_promised_keys() -> None:
    trace = run_mode(MODES["async"], io_ms=50, users=3, threads=40)
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
