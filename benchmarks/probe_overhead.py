"""What the probe costs: requests/s of a trivial async route with and without it.

Two servers of the same app share one core (`taskset`) while two `wrk` processes (the load
reference) drive them at the same time from the other core. Both are saturated, so the scheduler
splits the core between them and the ratio of their throughputs is the ratio of their costs per
request, measured side by side in one run: drift and neighbours on a noisy machine hit both
alike. In each round one server has the probe switched on (at runtime, `apps/switchable.py`)
and the other not, and the roles swap every round, so the two processes' own difference in
speed (about 2% here) falls on both sides alike. Each round also gives the servers' CPU time per
request (from /proc). The result is the median over the rounds; the target is that the probe
keeps at least 95% of the throughput. It is measured twice, side by side in the same way: on the
asyncio loop with h11 (every loop step timed) and on uvloop with httptools, what
`uvicorn[standard]` picks in production (every task step timed, the watchdog's heartbeat on).

    python benchmarks/probe_overhead.py [--rounds 12] [--seconds 2] [--connections 32]
                                        [--loops asyncio,uvloop]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopscope.probe.backend import PURE_PYTHON_ENV, is_compiled, load_backend
from loopscope.server import ServerProcess, ServerSettings

APPS = str(Path(__file__).parent / "apps")
TARGET = 0.95
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    """One wrk run: throughput, and the server's CPU seconds per request."""

    rps: float
    cpu_per_request: float


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_wrk(server: ServerProcess, seconds: float, connections: int, core: int) -> Sample:
    """One wrk run against `server`, pinned to `core`."""
    assert server.pid is not None
    url = server.url + "/"
    command = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url]
    cpu_before = server_cpu_seconds(server.pid)
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    cpu = server_cpu_seconds(server.pid) - cpu_before
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rps is None or count is None:
        raise SystemExit(f"wrk printed no request counts:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"the server answered {errors.group(1)} requests with errors:\n{out}")
    return Sample(float(rps.group(1)), cpu / max(1, int(count.group(1))))


LOOPS: dict[str, dict[str, Any]] = {
    "asyncio": {"loop": "asyncio", "http": "h11"},
    "uvloop": {"loop": "uvloop", "http": "httptools"},
}
"""Each loop measured, with the HTTP protocol it runs with."""


def server(core: int, loop: str) -> ServerProcess:
    """The switchable trivial app on its own server pinned to `core`, the probe off."""
    settings = ServerSettings(
        app="switchable:app", app_dir=APPS, cpus=(core,), stop_grace_s=10, **LOOPS[loop]
    )
    return ServerProcess(settings)


def switch_probe(server: ServerProcess, on: bool) -> None:
    """Install (`on`) or remove the probe in `server` (see `apps/switchable.py`)."""
    state = "on" if on else "off"
    with urllib.request.urlopen(f"{server.url}/__bench/probe/{state}", timeout=30) as answer:
        if answer.read() != state.encode():
            raise SystemExit(f"the server did not switch the probe {state}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--loops", default="asyncio,uvloop")
    args = parser.parse_args()
    loops = args.loops.split(",")
    if not set(loops) <= set(LOOPS):
        raise SystemExit(f"--loops: choose from {', '.join(LOOPS)}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    if args.rounds < 2:
        raise SystemExit("--rounds must be 2 or more: the servers swap roles every round")
    cores = (0, 1) if (os.cpu_count() or 1) >= 2 else (0, 0)
    hooks = "C (loopscope.probe._speedups)" if is_compiled(load_backend()) else "pure Python"
    print(
        f"probe overhead: trivial async route, wrk -c{args.connections} {args.seconds:g}s per run,"
        f" both servers on core {cores[0]}, both wrk on core {cores[1]}, {args.rounds} rounds;"
        f" probe hot paths in {hooks} (set {PURE_PYTHON_ENV}=1 for the other)"
    )
    results = {loop: measure(loop, args, cores) for loop in loops}
    for loop, (kept, cpu) in results.items():
        verdict = "meets" if kept >= TARGET else "MISSES"
        print(
            f"{loop:8} throughput with/without probe: {kept:.3f} ({verdict} the target "
            f"{TARGET:.2f}); server CPU per request: ×{cpu:.3f}"
        )


def measure(loop: str, args: argparse.Namespace, cores: tuple[int, int]) -> tuple[float, float]:
    """Median throughput and CPU-per-request ratios, probe on/off, on `loop`."""
    print(f"{loop} ({LOOPS[loop]['http']}):")
    throughput, cpu = [], []
    servers = server(cores[0], loop), server(cores[0], loop)
    try:
        for each in servers:
            each.start()
        for each in servers:  # warm-up: imports, first-request work
            run_wrk(each, 1, args.connections, cores[1])
        for round_ in range(args.rounds):
            probed, plain = servers if round_ % 2 == 0 else servers[::-1]
            switch_probe(probed, True)
            switch_probe(plain, False)
            # The wrk started first gets a small head start (an A/A run measured ~2%), so the
            # order changes every other round and the bias falls on both alike.
            order = servers if round_ // 2 % 2 == 0 else servers[::-1]
            with ThreadPoolExecutor(2) as pool:
                runs = {
                    each: pool.submit(run_wrk, each, args.seconds, args.connections, cores[1])
                    for each in order
                }
                without, with_probe = runs[plain].result(), runs[probed].result()
            throughput.append(with_probe.rps / without.rps)
            cpu.append(with_probe.cpu_per_request / without.cpu_per_request)
            print(
                f"  round {round_ + 1:2} (probe in server {servers.index(probed) + 1}): "
                f"{without.rps:6.0f} vs {with_probe.rps:6.0f} req/s (×{throughput[-1]:.3f}); "
                f"CPU/request {without.cpu_per_request * 1e6:4.0f} vs "
                f"{with_probe.cpu_per_request * 1e6:4.0f} µs (×{cpu[-1]:.3f})"
            )
    finally:
        for each in servers:
            each.close()
    kept = statistics.median(throughput)
    verdict = "meets" if kept >= TARGET else "MISSES"
    print(
        f"  median throughput with/without probe: {kept:.3f} ({verdict} the target "
        f"{TARGET:.2f}); probe in server 1: {statistics.median(throughput[0::2]):.3f},"
        f" in server 2: {statistics.median(throughput[1::2]):.3f}"
    )
    print(f"  median server CPU per request with/without probe: {statistics.median(cpu):.3f}")
    return kept, statistics.median(cpu)


if __name__ == "__main__":
    main()
