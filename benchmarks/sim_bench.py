"""The simulator's figures: speed, Erlang C, agreement with measured runs, calibration.

- speed: simulated requests per second of wall time (target: at least 20,000), for plain
  recipes and the demo's modes, best of three;
- erlang: an M/M/c thread pool under Poisson load against Erlang's C formula;
- grid: the demo's five modes x users {3, 10, 60, 100} at `--io-ms 200`, each measured on a
  real uvicorn and simulated from the built-in recipes: makespan and p50 and their ratios
  (target: within 10%);
- calibration: apps the simulator was not written for (`tests/sim/apps`), traced at 2 users,
  `sim --from` predicting 6 users, against real runs at 6 users (target: within 15%); the
  fastest run is the one compared, as the model predicts a machine that runs only the server.

    python benchmarks/sim_bench.py [--only speed,erlang,grid,calibration]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
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


def grid() -> None:
    print("== grid: demo modes at --io-ms 200, measured vs simulated (target: within 10%)")
    print(f"  {'mode':15} {'users':>5}  {'makespan meas/sim':>22}  {'p50 meas/sim':>22}")
    for mode in MODES:
        for users in (3, 10, 60, 100):
            measured = run_mode(MEASURED_MODES[mode], DemoOptions(io_ms=200, users=users))
            simulated = simulate(*mode_model(mode, users=users, io_ms=200))
            (mm, mp), (sm, sp) = figures(measured), figures(simulated)
            print(
                f"  {mode:15} {users:5}  {mm:7.0f} {sm:7.0f} x{sm / mm:.2f}"
                f"  {mp:7.0f} {sp:7.0f} x{sp / mp:.2f}"
            )


def traced(app: str, hits: list[str], users: int, rounds: int = 1) -> Trace:
    """A real run of `app` with `users` users sending `hits` `rounds` times, under the probe."""
    settings = ServerSettings(app=app, app_dir=str(APPS), probe=True, block_ms=20.0)
    scenario = uniform_scenario([parse_hit(h) for h in hits], users, rounds)
    return measure(settings, scenario, describe_run(settings, scenario, mode="trace"))


def calibration() -> None:
    print(
        "== calibration: trace at 2 users (fastest of 2), `sim --from` predicts 6, vs real runs"
        " at 6 (three; ratios to the fastest, since other processes only slow a run down)"
    )
    for app, hits in CALIBRATION_APPS.items():
        path = Path(tempfile.mkdtemp()) / "trace.json"
        two = min((traced(app, hits, 2) for _ in range(2)), key=makespan_ns)
        dump_trace(two, path)
        sm, sp = figures(simulate(*_planned(path, 6)))
        runs = sorted(figures(traced(app, hits, 6)) for _ in range(3))
        mm, mp = runs[0]
        spread = ", ".join(f"{m:.0f}/{p:.0f}" for m, p in runs)
        print(
            f"  {app:12} predicted {sm:6.0f}/{sp:.0f} ms, measured {spread} (makespan/p50):"
            f" makespan x{sm / mm:.2f}, p50 x{sp / mp:.2f}; slowest run x{runs[-1][0] / mm:.2f}"
            " the fastest"
        )


def _planned(path: Path, users: int) -> tuple[ServerModel, Load]:
    chosen = plan(SimOptions(trace_path=path, users=users))
    return chosen.server, chosen.load


SECTIONS = {"speed": speed, "erlang": erlang, "grid": grid, "calibration": calibration}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    for name in parser.parse_args().only.split(","):
        SECTIONS[name.strip()]()


if __name__ == "__main__":
    main()
