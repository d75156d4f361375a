"""The simulator's figures: speed, Erlang C, agreement with measured runs, calibration.

- speed: simulated requests per second of wall time (target: at least 20,000), for plain
  recipes and the demo's modes, best of three;
- erlang: an M/M/c thread pool under Poisson load against Erlang's C formula;
- grid: the demo's five modes x users {3, 10, 60, 100} at `--io-ms 200`, each measured
  `--repeat` times (default 3) on a real uvicorn and simulated from the built-in recipes: the
  median makespan and median p50 of the runs against the model's, their ratios (target: within
  10%), the runs' makespan spread, and how many of the 40 figures are within 10%;
- calibration: apps the simulator was not written for (`tests/sim/apps`): alternately a 2-user
  trace and a real 6-user run, five times; `sim --from` predicts 6 users from each trace, with
  the machine's steal it measured there (`loopscope.sim.machine`); the median prediction
  against the median run (target: within 15%), and the probe's cost of the run-queue reads.

    python benchmarks/sim_bench.py [--only speed,erlang,grid,calibration] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

from loopscope.load import parse_hit, uniform_scenario
from loopscope.measure.experiment import MODES as MEASURED_MODES
from loopscope.measure.experiment import DemoOptions, run_mode
from loopscope.measure.run import describe_run, measure
from loopscope.server import ServerSettings
from loopscope.sim import (
    MODES,
    Load,
    ServerModel,
    SimOptions,
    mode_model,
    parse_route,
    plan,
    simulate,
)
from loopscope.sim.queueing import erlang_c, mean_wait_s
from loopscope.trace import Trace, dump_trace
from loopscope.trace.analysis import makespan_ns, percentile

APPS = Path(__file__).resolve().parent.parent / "tests" / "sim" / "apps"
CALIBRATION_APPS = {
    "library:app": ["GET /books/7", "GET /search", "GET /feed", "GET /export"],
    "ledger:app": ["GET /rows", "GET /audit", "GET /report"],
    "shop:app": [
        "GET /api/v1/catalog/items/3",
        "GET /api/v1/catalog/search?q=tanks",
        "GET /api/v1/orders/12",
    ],
}


def figures(trace: Trace) -> tuple[float, float]:
    """Makespan and p50 latency in ms."""
    latencies = sorted(r.latency_ns for r in trace.requests)
    return makespan_ns(trace) / 1e6, percentile(latencies, 50) / 1e6


def bare_simpy_us() -> float:
    """What one bare SimPy timeout costs here now, in µs: the machine's yardstick."""
    import simpy

    env = simpy.Environment()

    def ticks() -> Iterator[simpy.Event]:
        for _ in range(200_000):
            yield env.timeout(1)

    env.process(ticks())
    start = time.perf_counter()
    env.run()
    return (time.perf_counter() - start) / 200_000 * 1e6


def speed() -> None:
    print("== speed: simulated requests per second of wall time (best of 3; target >= 20,000)")
    print(
        f"  (this machine now: load average {os.getloadavg()[0]:.1f}, one bare SimPy event "
        f"{bare_simpy_us():.2f} µs)"
    )
    cases: list[tuple[str, ServerModel, Load]] = []
    for name, text in (
        ("async def: cpu, await, cpu", "cpu:1, await:20, cpu:0.5"),
        ("def: cpu, pool(cpu, io), cpu", "cpu:1, pool(cpu:0.5, io:20), cpu:0.5"),
        ("blocks the loop: cpu, io", "cpu:1, io:2"),
    ):
        recipe = parse_route(f"/r={text}")
        cases.append((name, ServerModel(), Load({"/r": recipe}, (("/r",),) * 100, rounds=200)))
    for mode in MODES:
        server, load = mode_model(mode, users=100, io_ms=200)
        cases.append((f"demo mode {mode}", server, replace(load, rounds=100)))
    print(
        f"  {'':32} {'wall':>9} {'CPU time':>9}  (requests/s; CPU time is this process's, which"
        " other processes on the machine do not stretch)"
    )
    for name, server, load in cases:
        wall = cpu = 0.0
        for _ in range(3):
            start, start_cpu = time.perf_counter(), time.process_time()
            trace = simulate(server, load)
            done, done_cpu = time.perf_counter(), time.process_time()
            wall = max(wall, len(trace.requests) / (done - start))
            cpu = max(cpu, len(trace.requests) / max(done_cpu - start_cpu, 1e-9))
        print(f"  {name:32} {wall:9,.0f} {cpu:9,.0f}  ({len(trace.requests):,} requests)")


def erlang() -> None:
    print("== erlang: M/M/c thread pool (exponential 100 ms in the pool, Poisson arrivals)")
    for servers, rate in ((1, 7.0), (4, 30.0), (10, 85.0), (40, 360.0)):
        recipe = parse_route("/q=pool(io:100)")
        load = Load({"/q": recipe}, (("/q",),), rate=rate, duration_s=20_000 / rate, seed=1)
        trace = simulate(ServerModel(threads=servers, exponential=True), load)
        waits = [
            sum(s.duration_ns for s in r.segments if s.state == "pool-wait") / 1e9
            for r in trace.requests
        ]
        batches = [statistics.fmean(waits[i : i + 1000]) for i in range(0, len(waits) - 999, 1000)]
        error = statistics.stdev(batches) / len(batches) ** 0.5
        waited = sum(w > 0 for w in waits) / len(waits)
        print(
            f"  c={servers:2} rho={rate * 0.1 / servers:.2f}: P(wait) {waited:.3f}"
            f" vs {erlang_c(servers, rate, 0.1):.3f}; Wq {statistics.fmean(waits) * 1000:6.1f} ms"
            f" ± {error * 1000:.1f} vs {mean_wait_s(servers, rate, 0.1) * 1000:6.1f} ms"
        )


GRID_USERS = (3, 10, 60, 100)


def grid(repeat: int = 3) -> None:
    print(
        f"== grid: demo modes at --io-ms 200, the median of {repeat} measured runs vs simulated"
        " (target: within 10%)"
    )
    print(f"  (load average before: {os.getloadavg()[0]:.1f})")
    points = [(mode, users) for mode in MODES for users in GRID_USERS]
    # Round after round over the whole grid rather than one point's runs back to back: a burst
    # of load from another process then lands on one run of several points, which the median
    # drops, not on every run of one point.
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {point: [] for point in points}
    for _ in range(repeat):
        for mode, users in points:
            measured = run_mode(MEASURED_MODES[mode], DemoOptions(io_ms=200, users=users))
            runs[mode, users].append(figures(measured))
    print(
        f"  {'mode':15} {'users':>5}  {'makespan meas/sim':>22}  {'p50 meas/sim':>22}"
        f"  {'makespan runs':>13}"
    )
    within = 0
    for mode, users in points:
        # The model is seeded: one simulation is its figure.
        sm, sp = figures(simulate(*mode_model(mode, users=users, io_ms=200)))
        makespans = [m for m, _ in runs[mode, users]]
        mm = statistics.median(makespans)
        mp = statistics.median(p for _, p in runs[mode, users])
        within += (abs(sm / mm - 1) <= 0.10) + (abs(sp / mp - 1) <= 0.10)
        print(
            f"  {mode:15} {users:5}  {mm:7.0f} {sm:7.0f} x{sm / mm:.2f}"
            f"  {mp:7.0f} {sp:7.0f} x{sp / mp:.2f}"
            f"  {min(makespans):6.0f}-{max(makespans):.0f}"
        )
    print(f"  {within} of {2 * len(points)} figures within 10%")
    print(f"  (load average after: {os.getloadavg()[0]:.1f})")


def traced(app: str, hits: list[str], users: int, rounds: int = 1) -> Trace:
    """A real run of `app` with `users` users sending `hits` `rounds` times, under the probe."""
    settings = ServerSettings(app=app, app_dir=str(APPS), probe=True, block_ms=20.0)
    scenario = uniform_scenario([parse_hit(h) for h in hits], users, rounds)
    return measure(settings, scenario, describe_run(settings, scenario, mode="trace"))


def run_queue_read_us() -> tuple[float, float]:
    """What the probe's run-queue read costs on a worker thread here now, in µs, beside a
    `time.thread_time_ns()` call (the trip's other clock): medians of five batches."""
    from loopscope.probe.runqueue import RUN_QUEUE

    costs: dict[str, float] = {}

    def measure_in_thread() -> None:
        for name, read in (("runq", RUN_QUEUE.read), ("cpu", time.thread_time_ns)):
            read()
            batches = []
            for _ in range(5):
                start = time.perf_counter_ns()
                for _ in range(2000):
                    read()
                batches.append((time.perf_counter_ns() - start) / 2000 / 1000)
            costs[name] = statistics.median(batches)

    worker = threading.Thread(target=measure_in_thread)
    worker.start()
    worker.join()
    return costs["runq"], costs["cpu"]


def paired(
    app: str, hits: list[str], pairs: int, rounds: int
) -> list[tuple[tuple[float, float], tuple[float, float], float]]:
    """`pairs` alternations of a 2-user trace and a real 6-user run of `app`: each pair's
    prediction from the trace (`sim --from`, 6 users), the run's figures, and the steal the
    fit measured."""
    out = []
    folder = Path(tempfile.mkdtemp())
    for k in range(pairs):
        path = dump_trace(traced(app, hits, 2, rounds), folder / f"two-{k}.json")
        chosen = plan(SimOptions(trace_path=path, users=6))
        predicted = figures(simulate(chosen.server, chosen.load))
        measured = figures(traced(app, hits, 6, rounds))
        out.append((predicted, measured, chosen.server.steal))
    return out


def calibration(pairs: int = 5, rounds: int = 2) -> None:
    runq, cpu = run_queue_read_us()
    print(
        f"== calibration: {pairs} alternations of a 2-user trace and a real 6-user run"
        f" ({rounds} rounds each); `sim --from` predicts 6 users from each trace; the medians"
        " compared (target: within 15%)"
    )
    print(
        f"  (load average {os.getloadavg()[0]:.1f}; the probe's run-queue read on a worker"
        f" thread: {runq:.1f} µs, two per trip; time.thread_time_ns(): {cpu:.1f} µs)"
    )
    for app, hits in CALIBRATION_APPS.items():
        runs = paired(app, hits, pairs, rounds)
        pm = statistics.median(p[0] for p, _, _ in runs)
        pp = statistics.median(p[1] for p, _, _ in runs)
        mm = statistics.median(m[0] for _, m, _ in runs)
        mp = statistics.median(m[1] for _, m, _ in runs)
        each = ", ".join(f"x{p[0] / m[0]:.2f}/x{p[1] / m[1]:.2f}" for p, m, _ in runs)
        steals = ", ".join(f"{s:.2f}" for _, _, s in runs)
        print(
            f"  {app:12} predicted {pm:6.0f}/{pp:.0f} ms, measured {mm:6.0f}/{mp:.0f} ms"
            f" (makespan/p50 medians): makespan x{pm / mm:.2f}, p50 x{pp / mp:.2f}"
        )
        print(f"  {'':12} each pair {each}; steal fitted {steals}")


SECTIONS = {"speed": speed, "erlang": erlang, "grid": grid, "calibration": calibration}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    parser.add_argument(
        "--repeat", type=int, default=3, help="grid: real runs per point, compared by their median"
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sections: dict[str, Callable[[], None]] = {**SECTIONS, "grid": partial(grid, args.repeat)}
    for name in args.only.split(","):
        sections[name.strip()]()


if __name__ == "__main__":
    main()
