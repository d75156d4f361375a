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
from loopscope.load.outcome import LoadOutcome
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
) -> LoadOutcome:
    """What one driver run pinned to `core` measured."""
    plan = RatePlan(
        url=url,
        rate=rate,
        duration_s=seconds,
        connections=connections,
        closed_loop=closed,
        timeout_s=10,
    )
    return run_fixed_rate(plan, cpus=(core,))


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
    wrk_rps: list[float] = []
    closed: list[LoadOutcome] = []
    opened: list[LoadOutcome] = []
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
                    closed.append(
                        run_driver(
                            url, 100_000, args.seconds, args.connections, load_core, closed=True
                        )
                    )
                else:
                    rate = OVERLOAD * (reference or run_wrk(url, 1, args.connections, load_core))
                    opened.append(
                        run_driver(url, rate, args.seconds, args.connections, load_core, False)
                    )
            c, o = closed[-1], opened[-1]
            print(
                f"  round {round_ + 1}: wrk {wrk_rps[-1]:6.0f} req/s | loopscope closed loop "
                f"{c.achieved_rps:6.0f} req/s at {c.driver_cpu:.2f} core | open loop at "
                f"{o.intended_rate:.0f}/s: served {o.achieved_rps:6.0f} req/s at "
                f"{o.driver_cpu:.2f} core, {_open_loop_words(o)}"
            )
    finally:
        server.close()
    wrk = statistics.median(wrk_rps)
    closed_rps = statistics.median(c.achieved_rps for c in closed)
    open_rps = statistics.median(o.achieved_rps for o in opened)
    refused = sum(o.fell_behind for o in opened)
    print(
        f"median: wrk {wrk:.0f} req/s | loopscope's driver closed loop {closed_rps:.0f} req/s "
        f"({closed_rps / wrk:.0%} of wrk) using "
        f"{statistics.median(c.driver_cpu for c in closed):.2f} core | open loop at "
        f"{OVERLOAD:g}× wrk's rate the server served {open_rps:.0f} req/s ({open_rps / wrk:.0%} "
        f"of wrk) with the driver using {statistics.median(o.driver_cpu for o in opened):.2f} "
        f"core; {refused} of {len(opened)} open-loop points refused as the driver falling behind"
    )
    # On a shared machine the driver gets only a share of its core, so its rate alone can
    # understate it: its CPU time per request says what a whole core would send (computed).
    cost = statistics.median(c.driver_cpu / c.achieved_rps for c in closed)
    print(
        f"driver CPU per request (closed loop): {cost * 1e6:.0f} µs, so one whole core sends up "
        f"to {1 / cost:.0f} req/s (computed from the measured cost)"
    )
    saturates = (
        open_rps >= 0.9 * wrk
        and not refused
        and statistics.median(o.driver_cpu for o in opened) < 1
    )
    print(
        "target (open loop past capacity serves within 10% of wrk, on schedule, from less than "
        "one core; a loaded machine can miss it by the server's share of its core): "
        + ("met" if saturates else "MISSED")
    )


def _open_loop_words(outcome: LoadOutcome) -> str:
    # The two waits kept apart: the driver's lateness in issuing (which refuses a point) and
    # the requests' wait for a connection the server keeps busy (the server's queue).
    verdict = "FELL BEHIND (refused)" if outcome.fell_behind else "on schedule"
    return (
        f"{verdict}: issued within {outcome.send_lag_p99_ms:.1f} ms of schedule (p99); "
        f"{outcome.queued / max(1, outcome.sent):.0%} waited for a busy connection (p99 "
        f"{outcome.queue_wait_p99_ms:.0f} ms, the server's queue, in their latency)"
    )


if __name__ == "__main__":
    main()
