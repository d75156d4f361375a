"""The GIL and the cores: what runs in parallel in the model, and what cannot."""

from __future__ import annotations

import pytest

from loopscope.sim import Load, ServerModel, parse_route, simulate
from loopscope.trace.analysis import makespan_ns


def makespan_ms(text: str, users: int, **server: int) -> float:
    recipes = {"/r": parse_route(f"/r={text}")}
    trace = simulate(ServerModel(**server), Load(recipes, (("/r",),) * users))
    return makespan_ns(trace) / 1e6


def test_cpu_in_two_pool_threads_of_one_worker_does_not_run_in_parallel() -> None:
    # Two threads, two cores, one GIL: 2 x 100 ms of Python takes 200 ms.
    assert makespan_ms("pool(cpu:100)", 2) == pytest.approx(200, rel=0.02)
    # Waiting releases the GIL: two 100 ms sleeps overlap.
    assert makespan_ms("pool(io:100)", 2) == pytest.approx(100, rel=0.02)


def test_two_workers_run_python_in_parallel_on_two_cores_but_not_on_one() -> None:
    assert makespan_ms("cpu:100", 2, workers=2, cores=2) == pytest.approx(100, rel=0.02)
    assert makespan_ms("cpu:100", 2, workers=2, cores=1) == pytest.approx(200, rel=0.02)
    assert makespan_ms("cpu:100", 2, workers=1, cores=2) == pytest.approx(200, rel=0.02)


def test_a_cpu_bound_thread_delays_the_loop_by_at_most_the_switch_interval_per_step() -> None:
    # One request hogs the GIL in a pool thread; another's 1 ms of loop work waits for a slice.
    recipes = {
        "/hog": parse_route("/hog=pool(cpu:200)"),
        "/quick": parse_route("/quick=await:10, cpu:1"),
    }
    trace = simulate(ServerModel(switch_ms=5), Load(recipes, (("/hog",), ("/quick",))))
    quick = next(r for r in trace.requests if r.route == "/quick")
    assert 11e6 <= quick.latency_ns <= 17e6


def test_database_work_takes_a_core_but_not_the_gil() -> None:
    # Three 100 ms DB calls from three threads on two cores: two at once, then the third.
    assert makespan_ms("pool(db:100)", 3, cores=2) == pytest.approx(200, rel=0.02)
    assert makespan_ms("pool(db:100)", 3, cores=3) == pytest.approx(100, rel=0.02)
