"""The load driver's ceiling: the most requests per second it drives from one core against a
trivial route, beside `wrk`'s against the same server.

One uvicorn worker serving the cheapest ASGI route is pinned to one core, and the load to the
other (`taskset`), so neither steals from the other. Each round runs, one after the other on
the same server: `wrk` (the reference: C, closed loop, 32 connections), loopscope's driver in
closed loop with as many connections (its raw ceiling), and loopscope's driver in open loop at
1.2× the best rate wrk reached so far, on as many connections (past the server's capacity: does
our open-loop driver saturate it, and with how much of its core? More connections cost the
server and the driver more per request.) The order changes every round, so drift on a busy
machine falls on all alike; the result is the median over the rounds.

Each line gives the load's CPU and the server's (in cores, over the run), the share of the run
the server's loop waited for a CPU (the machine's other work) or slept with nothing to read (a
load that leaves it idle), and the open loop's
two waits apart: how late the driver issued requests (its own lateness: over 100 ms at p99 and
the point is refused) and how many waited for a connection the server kept busy (the server's
queue: charged to their latency from the intended send time, never a refusal).

    python benchmarks/bench_driver.py [--rounds 3] [--seconds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from loopscope.load.driver_process import run_fixed_rate
from loopscope.load.fixed_rate import RatePlan
from loopscope.load.outcome import LoadOutcome
from loopscope.server import ServerProcess, ServerSettings

APPS = str(Path(__file__).parent.parent / "tests" / "bench" / "apps")
OVERLOAD = 1.2


@dataclass(frozen=True)
class Run:
    """One load run against the server: what it served, and the CPU of each side (in cores)."""

    served: float
    load_cpu: float
    server_cpu: float
    server_starved: float
    outcome: LoadOutcome | None = None

    @property
    def server_idle(self) -> float:
        """The share of the run the server's loop slept: neither running nor waiting for a CPU,
        so it had nothing to read (the load's doing, not the machine's)."""
        return max(0.0, 1.0 - self.server_cpu - self.server_starved)


def _cpu_s(pid: int) -> float:
    # The server's user + system time so far (all its threads), from /proc.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _waited_s(pid: int) -> float:
    # How long the server's main thread (its event loop) was runnable but waiting for a CPU.
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(server: ServerProcess, url: str, seconds: float, connections: int, core: int) -> Run:
    """wrk against `url` for `seconds`, pinned to `core`."""
    command = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url]
    assert server.pid is not None
    server_before, load_before = _cpu_s(server.pid), _children_cpu_s()
    waited_before = _waited_s(server.pid)
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise SystemExit(f"wrk printed no rate:\n{out}")
    return Run(
        served=float(found.group(1)),
        load_cpu=(_children_cpu_s() - load_before) / seconds,
        server_cpu=(_cpu_s(server.pid) - server_before) / seconds,
        server_starved=(_waited_s(server.pid) - waited_before) / seconds,
    )


def run_driver(
    server: ServerProcess,
    url: str,
    rate: float,
    seconds: float,
    connections: int,
    core: int,
    closed: bool,
) -> Run:
    """One loopscope driver run pinned to `core`; the server's CPU is over the load's span."""
    plan = RatePlan(
        url=url,
        rate=rate,
        duration_s=seconds,
        connections=connections,
        closed_loop=closed,
        timeout_s=10,
    )
    assert server.pid is not None
    server_before, waited_before = _cpu_s(server.pid), _waited_s(server.pid)
    # (The server has nothing to do while the driver starts: its CPU and waits all fall in
    # the load's span.)
    outcome = run_fixed_rate(plan, cpus=(core,))
    span_s = max(1e-9, (outcome.end_ns - outcome.start_ns) / 1e9)
    return Run(
        served=outcome.achieved_rps,
        load_cpu=outcome.driver_cpu,
        server_cpu=(_cpu_s(server.pid) - server_before) / span_s,
        server_starved=(_waited_s(server.pid) - waited_before) / span_s,
        outcome=outcome,
    )


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
    runs: dict[str, list[Run]] = {"wrk": [], "closed": [], "open": []}
    seconds, connections = args.seconds, args.connections
    try:
        server.start()
        url = server.url + "/"
        run_wrk(server, url, 1, connections, load_core)  # warm-up
        for round_ in range(args.rounds):
            order = ["wrk", "closed", "open"]
            order = order[round_ % 3 :] + order[: round_ % 3]
            for each in order:
                if each == "wrk":
                    run = run_wrk(server, url, seconds, connections, load_core)
                elif each == "closed":
                    # A rate no server reaches: each user sends as soon as it has its answer.
                    run = run_driver(server, url, 100_000, seconds, connections, load_core, True)
                else:
                    # Past capacity however the machine's load moved it: 1.2× the best wrk
                    # rate so far (a short wrk run before the first).
                    wrk_rps = [r.served for r in runs["wrk"]]
                    if not wrk_rps:
                        wrk_rps.append(run_wrk(server, url, 1, connections, load_core).served)
                    rate = OVERLOAD * max(wrk_rps)
                    run = run_driver(server, url, rate, seconds, connections, load_core, False)
                runs[each].append(run)
            w, c, o = (runs[name][-1] for name in ("wrk", "closed", "open"))
            assert o.outcome is not None
            print(
                f"  round {round_ + 1}: wrk {_served(w)} | loopscope closed loop {_served(c)} | "
                f"open loop at {o.outcome.intended_rate:.0f}/s {_served(o)}, "
                f"{_open_loop_words(o.outcome)}"
            )
    finally:
        server.close()
    wrk, closed, opened = (_median(runs[name]) for name in ("wrk", "closed", "open"))
    refused = sum(bool(r.outcome and r.outcome.fell_behind) for r in runs["open"])
    print(
        f"median: wrk {_served(wrk)} | loopscope's driver closed loop {_served(closed)}, "
        f"{closed.served / wrk.served:.0%} of wrk | open loop at {OVERLOAD:g}× wrk's rate "
        f"{_served(opened)}, {opened.served / wrk.served:.0%} of wrk; {refused} of "
        f"{len(runs['open'])} open-loop points refused as the driver falling behind"
    )
    # On a shared machine each side gets only a share of its core, so a rate alone can mislead:
    # CPU time per request says what a whole core would do (computed from measured costs).
    cost = statistics.median(r.load_cpu / r.served for r in runs["closed"])
    open_cost = statistics.median(r.load_cpu / r.served for r in runs["open"])
    wrk_cost = statistics.median(r.load_cpu / r.served for r in runs["wrk"])
    print(
        f"load CPU per request served: loopscope closed loop {cost * 1e6:.0f} µs, so one whole "
        f"core sends up to {1 / cost:.0f} req/s (the driver's ceiling, computed); open loop "
        f"{open_cost * 1e6:.0f} µs; wrk {wrk_cost * 1e6:.0f} µs"
    )
    # The server's CPU per request under each load: equal costs mean a gap in rate is the
    # share of its core the machine gave the server, not a load that keeps it idle.
    server_cost = {
        name: statistics.median(r.server_cpu / r.served for r in runs[name]) * 1e6 for name in runs
    }
    print(
        "server CPU per request served: under wrk {wrk:.0f} µs, loopscope closed loop "
        "{closed:.0f} µs, open loop {open:.0f} µs".format(**server_cost)
    )
    saturates = (
        opened.served >= 0.9 * wrk.served
        and not refused
        and opened.load_cpu < 1
        and 1 / cost >= wrk.served
    )
    print(
        "target (open loop past capacity serves within 10% of wrk, on schedule, from less than "
        "one core): "
        + ("met" if saturates else "MISSED")
        + "; beside each rate, the server's loop ran, waited for a CPU (the machine's load) or "
        "was idle (no request to read: the load's doing)"
    )


def _served(run: Run) -> str:
    return (
        f"{run.served:6.0f} req/s (load {run.load_cpu:.2f} core; server {run.server_cpu:.2f} "
        f"core, waited for a CPU {run.server_starved:.0%}, idle {run.server_idle:.0%})"
    )


def _median(runs: list[Run]) -> Run:
    return Run(
        served=statistics.median(r.served for r in runs),
        load_cpu=statistics.median(r.load_cpu for r in runs),
        server_cpu=statistics.median(r.server_cpu for r in runs),
        server_starved=statistics.median(r.server_starved for r in runs),
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
