"""The load driver's ceiling: the most requests per second it drives from one core against a
trivial route, beside `wrk`'s against the same server.

One uvicorn worker serving the cheapest ASGI route is pinned to one core, and the load to the
other (`taskset`), so neither steals from the other. Each round runs, one after the other on
the same server: `wrk` (the reference: C, closed loop, 32 connections), loopscope's driver in
closed loop with as many connections (its raw ceiling), and loopscope's driver in open loop at
1.2× what wrk reached, on as many connections (past the server's capacity: does our open-loop
driver saturate it, and with how much of its core? More connections cost the server and the
driver more per request.) The order changes every round, so drift on a busy machine falls on all
alike; the result is the median over the rounds.

    python benchmarks/bench_driver.py [--rounds 3] [--seconds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path

from loopscope.load.driver_process import run_fixed_rate
from loopscope.load.fixed_rate import RatePlan
from loopscope.server import ServerProcess, ServerSettings

APPS = str(Path(__file__).parent.parent / "tests" / "bench" / "apps")
OVERLOAD = 1.2


def run_wrk(url: str, seconds: float, connections: int, core: int) -> float:
    """wrk's requests/s against `url`, wrk pinned to `core`."""
    command = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise SystemExit(f"wrk printed no rate:\n{out}")
    return float(found.group(1))


def run_driver(
    url: str, rate: float, seconds: float, connections: int, core: int, closed: bool
) -> tuple[float, float, bool]:
    """(served req/s, driver CPU in cores, fell behind) of one driver run pinned to `core`."""
    plan = RatePlan(
        url=url,
        rate=rate,
        duration_s=seconds,
        connections=connections,
        closed_loop=closed,
        timeout_s=10,
    )
    outcome = run_fixed_rate(plan, cpus=(core,))
    return outcome.achieved_rps, outcome.driver_cpu, outcome.fell_behind


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    server_core, load_core = (0, 1) if (os.cpu_count() or 1) >= 2 else (0, 0)
    print(
        f"driver ceiling: trivial ASGI route, one uvicorn worker on core {server_core}, the load "
        f"on core {load_core}; {args.rounds} rounds of {args.seconds:g} s, "
        f"{args.connections} connections"
    )
    settings = ServerSettings(app="trivial:app", app_dir=APPS, cpus=(server_core,))
    server = ServerProcess(settings)
    wrk_rps, closed_rps, closed_cpu, open_rps, open_cpu = [], [], [], [], []
    try:
        server.start()
        url = server.url + "/"
        run_wrk(url, 1, args.connections, load_core)  # warm-up
        for round_ in range(args.rounds):
            order = ["wrk", "closed", "open"]
            order = order[round_ % 3 :] + order[: round_ % 3]
            reference = statistics.median(wrk_rps) if wrk_rps else None
            for each in order:
                if each == "wrk":
                    wrk_rps.append(run_wrk(url, args.seconds, args.connections, load_core))
                elif each == "closed":
                    # A rate no server reaches: each user sends as soon as it has its answer.
                    served, cpu, _ = run_driver(
                        url, 100_000, args.seconds, args.connections, load_core, closed=True
                    )
                    closed_rps.append(served)
                    closed_cpu.append(cpu)
                else:
                    rate = OVERLOAD * (reference or run_wrk(url, 1, args.connections, load_core))
                    served, cpu, behind = run_driver(
                        url, rate, args.seconds, args.connections, load_core, closed=False
                    )
                    open_rps.append(served)
                    open_cpu.append(cpu)
                    if behind:
                        print(f"  (open loop at {rate:.0f}/s: the driver reported falling behind)")
            print(
                f"  round {round_ + 1}: wrk {wrk_rps[-1]:6.0f} req/s; loopscope closed loop "
                f"{closed_rps[-1]:6.0f} req/s at {closed_cpu[-1]:.2f} core; open loop "
                f"{open_rps[-1]:6.0f} req/s served at {open_cpu[-1]:.2f} core"
            )
    finally:
        server.close()
    wrk, closed, opened = map(statistics.median, (wrk_rps, closed_rps, open_rps))
    print(
        f"median: wrk {wrk:.0f} req/s; loopscope's driver {closed:.0f} req/s closed loop "
        f"({closed / wrk:.0%} of wrk) using {statistics.median(closed_cpu):.2f} core; open loop "
        f"at {OVERLOAD:g}× wrk's rate the server served {opened:.0f} req/s ({opened / wrk:.0%} of "
        f"wrk) with the driver using {statistics.median(open_cpu):.2f} core"
    )
    # On a shared machine the driver gets only a share of its core, so its rate alone can
    # understate it: its CPU time per request says what a whole core would send (computed).
    per_request = [cpu / rps for cpu, rps in zip(closed_cpu, closed_rps, strict=True)]
    cost = statistics.median(per_request)
    print(
        f"driver CPU per request (closed loop): {cost * 1e6:.0f} µs, so one whole core sends up "
        f"to {1 / cost:.0f} req/s (computed from the measured cost)"
    )
    saturates = closed >= 0.9 * wrk or (1 / cost >= wrk and statistics.median(closed_cpu) < 1)
    print(
        "target (drive one uvicorn worker as hard as wrk does, from less than one core): "
        + ("met" if saturates else "MISSED")
    )


if __name__ == "__main__":
    main()
