"""What the probe costs: requests/s of a trivial async route with and without it.

Server and load generator are pinned to different cores (`taskset`), each run gets a fresh
server, runs alternate (without, with) so that drift on a noisy machine hits both alike, and the
result is the median of the paired ratios. `wrk` is the load reference.

    python benchmarks/probe_overhead.py [--pairs 5] [--seconds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from loopscope.server import ServerProcess, ServerSettings

APPS = str(Path(__file__).parent / "apps")
TARGET = 0.95


def requests_per_second(
    probe: bool, seconds: float, connections: int, cores: tuple[int, int]
) -> float:
    settings = ServerSettings(
        app="trivial:app", app_dir=APPS, probe=probe, cpus=(cores[0],), stop_grace_s=10
    )
    server = ServerProcess(settings)
    try:
        with server:
            url = server.url + "/"
            wrk = ["taskset", "-c", str(cores[1]), "wrk", "-t1", f"-c{connections}"]
            subprocess.run([*wrk, "-d1s", url], check=True, capture_output=True)  # warm-up
            out = subprocess.run(
                [*wrk, f"-d{seconds:g}s", url], check=True, capture_output=True, text=True
            ).stdout
    finally:
        server.close()
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise SystemExit(f"wrk printed no Requests/sec:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"the server answered {errors.group(1)} requests with errors:\n{out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    if (os.cpu_count() or 1) < 2:
        print("warning: one core only; server and load share it", file=sys.stderr)
    cores = (0, 1) if (os.cpu_count() or 1) >= 2 else (0, 0)
    ratios = []
    print(f"probe overhead: trivial async route, wrk -c{args.connections} {args.seconds:g}s, "
          f"server on core {cores[0]}, wrk on core {cores[1]}")  # fmt: skip
    for pair in range(1, args.pairs + 1):
        without = requests_per_second(False, args.seconds, args.connections, cores)
        with_probe = requests_per_second(True, args.seconds, args.connections, cores)
        ratios.append(with_probe / without)
        print(f"  pair {pair}: without {without:8.0f} req/s   with probe {with_probe:8.0f} req/s"
              f"   ratio {with_probe / without:.3f}")  # fmt: skip
    median = statistics.median(ratios)
    verdict = "meets" if median >= TARGET else "MISSES"
    print(f"median ratio with/without probe: {median:.3f} ({verdict} the target {TARGET:.2f})")


if __name__ == "__main__":
    main()
