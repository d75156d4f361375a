"""Fitting the model to a trace: recipes, client times and scenario, then what-ifs on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopscope.errors import UsageError
from loopscope.sim import Load, ServerModel, apply_change, calibrate, parse_route, simulate
from loopscope.sim.primitives import Clock
from loopscope.sim.recipe import PoolStep, Step
from loopscope.trace import dump_trace, load_trace
from loopscope.trace.model import PoolCall, Request, Run, Segment, Trace


def test_a_fit_of_a_simulated_trace_gives_back_the_recipes_and_the_scenario() -> None:
    recipes = {
        "/a": parse_route("/a=cpu:2, pool(cpu:3, io:40), cpu:1, await:30, cpu:0.5, io:25"),
        "/b": parse_route("/b=cpu:1, executor(io:10), cpu:1"),
    }
    server = ServerModel(threads=7, send_ms=1, reply_ms=0.7)
    trace = simulate(server, Load(recipes, (("/a", "/b"),), rounds=2))
    fit = calibrate(trace)
    assert {route: str(r) for route, r in fit.load.recipes.items()} == {
        route: str(r) for route, r in recipes.items()
    }
    assert fit.load.hits_by_user == (("/a", "/b"),)
    assert fit.load.rounds == 2
    assert fit.server.threads == 7
    assert fit.server.reply_ms == pytest.approx(0.7)


def hand_built(segments: list[tuple[str, float, float, int | None]]) -> Trace:
    """One request whose segments are `(state, start_ms, end_ms, cpu_ns)`."""
    lane = "request:R1"
    segs = [
        Segment(lane, state, round(a * 1e6), round(b * 1e6), cpu, None, "R1")  # type: ignore[arg-type]
        for state, a, b, cpu in segments
    ]
    request = Request(
        id="R1",
        method="GET",
        path="/x",
        route="/x",
        status=200,
        client_send_ns=0,
        client_done_ns=segs[-1].end_ns + 1_000_000,
        server_start_ns=segs[1].start_ns,
        server_end_ns=segs[-1].end_ns,
        user=0,
        segments=segs,
    )
    return Trace(run=Run(mode="trace", app="x:app", users=1), requests=[request])


def test_a_loop_block_splits_into_its_cpu_time_and_a_blocking_wait() -> None:
    trace = hand_built(
        [("queued", 0, 2, None), ("on-loop", 2, 3, None), ("loop-blocked", 3, 53, 10_000_000)]
    )
    assert calibrate(trace).load.recipes["/x"].items == (
        Step("cpu", 11.0),
        Step("io", 40.0),
    )


def test_checkpoints_and_token_waits_are_read_as_such() -> None:
    trace = hand_built(
        [
            ("queued", 0, 1, None),
            ("on-loop", 1, 2, None),
            ("pool-wait", 2, 2.1, None),  # anyio's checkpoint: back to the loop at once
            ("on-loop", 2.1, 2.2, None),
            ("pool-wait", 2.2, 30, None),  # waiting for a token: queueing, not a step
            ("in-thread", 30, 80, 5_000_000),
            ("ready", 80, 90, None),
            ("on-loop", 90, 91, None),
        ]
    )
    assert calibrate(trace).load.recipes["/x"].items == (
        Step("cpu", 1.0),
        Step("await", 0.0),
        Step("cpu", 0.1),
        PoolStep("pool", (Step("cpu", 5.0), Step("io", 45.0))),
        Step("cpu", 1.0),
    )


def test_offload_moves_the_blocking_helper_to_the_pool_and_async_awaits_it() -> None:
    recipes = {"/o": parse_route("/o=cpu:2, cpu:1, io:50, cpu:0.5")}
    offloaded = apply_change(recipes, "/o=offload")["/o"]
    assert str(offloaded) == "cpu:2, pool(cpu:1, io:50), cpu:0.5"
    awaited = apply_change({"/d": parse_route("/d=cpu:1, pool(cpu:1, io:50), cpu:1")}, "/d=async")
    assert str(awaited["/d"]) == "cpu:1, cpu:1, await:50, cpu:1"


def test_offloading_a_loop_blocking_route_lets_three_requests_overlap() -> None:
    recipes = {"/o": parse_route("/o=cpu:1, io:300, cpu:1")}
    load = Load(recipes, (("/o",),) * 3)
    before = simulate(ServerModel(), load)
    after = simulate(ServerModel(), Load(apply_change(recipes, "/o=offload"), load.hits_by_user))
    assert max(r.client_done_ns for r in before.requests) > 0.9e9
    assert max(r.client_done_ns for r in after.requests) < 0.35e9
    assert not after.loop_blocks


def test_a_trace_with_only_the_clients_view_cannot_be_calibrated() -> None:
    trace = hand_built([("queued", 0, 5, None), ("queued", 5, 6, None)])
    with pytest.raises(UsageError, match="only the client's view"):
        calibrate(trace)


def test_a_thread_waiting_for_the_gil_is_not_fitted_as_waiting_on_io() -> None:
    # Two CPU-bound `def` requests side by side: each thread ran 10 ms of Python in 20 ms of
    # wall time because the other held the GIL for the other 10 ms. None of it was I/O.
    recipes = {"/d": parse_route("/d=cpu:0.5, pool(cpu:10), cpu:0.5")}
    trace = simulate(ServerModel(), Load(recipes, (("/d",),) * 2))
    walls = [
        s.duration_ns / 1e6 for r in trace.requests for s in r.segments if s.state == "in-thread"
    ]
    assert max(walls) > 15  # the GIL stretched at least one of them
    trips = [i for i in calibrate(trace).load.recipes["/d"].items if isinstance(i, PoolStep)]
    assert trips[0] == PoolStep("pool", (Step("cpu", 10.0),))


def test_a_wait_that_nothing_can_interrupt_gives_the_same_trace_as_an_event() -> None:
    # `Clock.skip` moves the clock without an event when no other event is due: the trace must
    # be the one an event per wait gives, stamp for stamp.
    recipes = {
        "/a": parse_route("/a=cpu:2, pool(cpu:3, io:40), cpu:1, await:30, cpu:0.5, io:25"),
        "/b": parse_route("/b=cpu:1, executor(io:10), cpu:1, adb:2, db:1"),
    }
    load = Load(recipes, (("/a", "/b"), ("/b",), ("/a",)), rounds=3)
    server = ServerModel(threads=2, client_ms=0.5, send_ms=1, reply_ms=0.7)
    skipped = simulate(server, load)
    never = pytest.MonkeyPatch()
    never.setattr(Clock, "skip", lambda self, until: False)
    try:
        evented = simulate(server, load)
    finally:
        never.undo()
    assert skipped.requests == evented.requests
    assert skipped.lanes == evented.lanes


def with_trip(wall_ms: float, cpu_ms: float, runnable_ms: float | None) -> Trace:
    """One `def` request: a 1 ms start on the loop, then a trip of `wall_ms` in the pool whose
    thread computed `cpu_ms` and waited `runnable_ms` for a core."""
    trace = hand_built(
        [
            ("queued", 0, 1, None),
            ("on-loop", 1, 2, None),
            ("pool-wait", 2, 3, None),
            ("in-thread", 3, 3 + wall_ms, round(cpu_ms * 1e6)),
            ("ready", 3 + wall_ms, 4 + wall_ms, None),
            ("on-loop", 4 + wall_ms, 5 + wall_ms, None),
        ]
    )
    runnable = None if runnable_ms is None else round(runnable_ms * 1e6)
    start, end = 3_000_000, round((3 + wall_ms) * 1e6)
    trace.pool = [PoolCall("R1", "app.audit", 2_000_000, start, end, "W #1", round(cpu_ms * 1e6))]
    trace.pool[0].runnable_ns = runnable
    return trace


def test_a_threads_wait_for_a_core_is_the_machines_steal_not_work_of_the_route() -> None:
    # 60 ms in the thread: 20 ms of CPU, 40 ms runnable with no core (other processes ran).
    fit = calibrate(with_trip(60, 20, 40))
    trips = [i for i in fit.load.recipes["/x"].items if isinstance(i, PoolStep)]
    assert trips == [PoolStep("pool", (Step("cpu", 20.0),))]
    assert fit.server.steal == pytest.approx(40 / 60, abs=0.001)
    # The loop's runs had the same share taken: the recipe keeps the work, not the wait.
    first = fit.load.recipes["/x"].items[0]
    assert isinstance(first, Step) and first.kind == "cpu"
    assert first.ms == pytest.approx(1 / 3, abs=0.001)


def test_without_run_queue_readings_a_trip_is_read_as_before() -> None:
    fit = calibrate(with_trip(60, 20, None))
    assert fit.server.steal == 0
    trips = [i for i in fit.load.recipes["/x"].items if isinstance(i, PoolStep)]
    assert trips == [PoolStep("pool", (Step("cpu", 20.0), Step("io", 40.0)))]


def test_a_trip_that_mostly_waited_tells_nothing_of_the_machine() -> None:
    # 200 ms asleep, then 5 ms in the queue for a core behind the process's other woken
    # threads: contention the model simulates itself, not other processes' steal.
    fit = calibrate(with_trip(206, 1, 5))
    assert fit.server.steal == 0
    trips = [i for i in fit.load.recipes["/x"].items if isinstance(i, PoolStep)]
    assert trips == [PoolStep("pool", (Step("cpu", 1.0), Step("io", 200.0)))]


def test_the_model_runs_cpu_steps_slower_by_the_machines_steal() -> None:
    # Half of the cores taken by other processes: 30 ms of work takes 60 ms of wall time.
    load = Load({"/c": parse_route("/c=cpu:30")}, (("/c",),))
    quiet = simulate(ServerModel(), load)
    busy = simulate(ServerModel(steal=0.5), load)
    assert [b.duration_ns for b in quiet.loop_blocks] == [30_000_000]
    assert [b.duration_ns for b in busy.loop_blocks] == [60_000_000]
    assert "sim:steal=0.50" in busy.run.notes


def test_an_impossible_steal_is_a_usage_error() -> None:
    load = Load({"/c": parse_route("/c=cpu:30")}, (("/c",),))
    for steal in (-0.1, 0.95):
        with pytest.raises(UsageError, match="--steal"):
            simulate(ServerModel(steal=steal), load)


def test_a_trace_written_before_run_queue_readings_still_reads(tmp_path: Path) -> None:
    path = dump_trace(with_trip(60, 20, 40), tmp_path / "new.json")
    data = json.loads(path.read_text())
    for call in data["pool"]:
        del call["runnable_ns"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    assert load_trace(old).pool[0].runnable_ns is None
