"""A worker thread's wait for a core (Linux schedstat), read on the thread itself, and kept in
the trace's pool calls for the fit."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loopscope.load import parse_hit, uniform_scenario
from loopscope.measure.run import describe_run, measure
from loopscope.probe.runqueue import RUN_QUEUE, RunQueueClock
from loopscope.server import ServerSettings

APPS = Path(__file__).parent / "apps"
HAS_SCHEDSTAT = os.path.exists("/proc/thread-self/schedstat")
needs_schedstat = pytest.mark.skipif(not HAS_SCHEDSTAT, reason="no Linux schedstat here")


def spin_cpu_s(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@needs_schedstat
def test_a_thread_sharing_its_core_with_a_busy_process_reads_its_wait_for_the_core(
    beside_a_hog: Callable[[Callable[[], tuple[int, int]]], tuple[int, int]],
) -> None:
    # The OS shares the thread's one core with a spinning process, so the thread waits for it
    # about half the time (more on a loaded machine, never less).
    def work() -> tuple[int, int]:
        start, wall = RUN_QUEUE.read(), time.monotonic_ns()
        spin_cpu_s(0.2)
        end, wall_end = RUN_QUEUE.read(), time.monotonic_ns()
        assert start is not None and end is not None
        return end - start, wall_end - wall

    runnable, wall = beside_a_hog(work)
    assert runnable >= 0.25 * wall, (runnable, wall)


@needs_schedstat
def test_each_thread_reads_its_own_wait_for_a_core() -> None:
    # A thread that only sleeps waits for no core to speak of, whatever the others do.
    readings: list[int | None] = []

    def sleeper() -> None:
        start = RUN_QUEUE.read()
        time.sleep(0.2)
        end = RUN_QUEUE.read()
        readings.append(None if start is None or end is None else end - start)

    thread = threading.Thread(target=sleeper)
    thread.start()
    spin_cpu_s(0.2)  # this thread computes meanwhile
    thread.join(timeout=10)
    assert readings[0] is not None and readings[0] < 20_000_000


def test_where_there_is_no_schedstat_the_clock_reads_none() -> None:
    clock = RunQueueClock(path="/proc/thread-self/no-such-file")
    assert clock.read() is None
    assert clock.read() is None  # and does not try again


def traced(app: str, hits: list[str], users: int) -> list[tuple[int, int, int]]:
    settings = ServerSettings(app=app, app_dir=str(APPS), probe=True, block_ms=20.0)
    scenario = uniform_scenario([parse_hit(h) for h in hits], users, 1)
    trace = measure(settings, scenario, describe_run(settings, scenario, mode="trace"))
    calls = [c for c in trace.pool if c.started_ns is not None and c.finished_ns is not None]
    assert calls
    assert all(c.runnable_ns is not None and c.cpu_ns is not None for c in calls)
    return [(c.finished_ns - c.started_ns, c.cpu_ns, c.runnable_ns) for c in calls]  # type: ignore[operator, misc]


@needs_schedstat
@pytest.mark.slow
def test_every_trip_of_a_traced_app_has_its_cpu_its_wait_for_a_core_and_the_rest() -> None:
    # ledger: a `def` route computing, a pool trip sleeping, `def` response validation.
    trips = traced("ledger:app", ["GET /rows", "GET /audit", "GET /report"], 2)
    for wall, cpu, runnable in trips:
        assert runnable >= 0
        # Both are parts of the wall time (a clock's tick of slack).
        assert cpu + runnable <= wall + 2_000_000, (wall, cpu, runnable)
