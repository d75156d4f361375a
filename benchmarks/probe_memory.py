"""The probe's memory on a long run: bounded by its event budget, the rest counted as dropped.

One server with the probe (its default budget, `max_events` = 200,000) serves a trivial async
route to `wrk` for `--seconds` (a time-bounded stand-in for 1,000,000 requests: the count
reached is printed). The server's resident memory is read from /proc at each tenth of the run.
Once the budget is spent the probe stores nothing more, so memory must stop growing: the
target is that the last half of the run adds less than `GROWTH_LIMIT_MB`, while the probe's
record counts the events it dropped. The same run without the probe gives the baseline.

    python benchmarks/probe_memory.py [--seconds 120] [--connections 32]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from loopscope.server import ServerProcess, ServerSettings

APPS = str(Path(__file__).parent / "apps")
GROWTH_LIMIT_MB = 16.0


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid`, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for {pid}")


def drive(server: ServerProcess, seconds: float, connections: int) -> tuple[int, list[float]]:
    """`wrk` against `server` for `seconds`; the requests sent and the RSS at each tenth."""
    assert server.pid is not None
    pid = server.pid
    readings: list[float] = []
    done = threading.Event()

    def sample() -> None:
        step = seconds / 10
        while not done.wait(step):
            readings.append(rss_mb(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", server.url + "/"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    done.set()
    sampler.join()
    found = re.search(r"(\d+) requests in", out)
    if found is None:
        raise SystemExit(f"wrk printed no request count:\n{out}")
    return int(found.group(1)), readings


def run(probe: bool, seconds: float, connections: int) -> None:
    settings = ServerSettings(
        app="trivial:app", app_dir=APPS, probe=probe, workers=1, stop_grace_s=120.0
    )
    server = ServerProcess(settings)
    with server:
        assert server.pid is not None
        start_mb = rss_mb(server.pid)
        started = time.monotonic()
        requests, readings = drive(server, seconds, connections)
        took = time.monotonic() - started
    label = "probe on " if probe else "probe off"
    half = readings[len(readings) // 2 - 1] if readings else start_mb
    last = readings[-1] if readings else start_mb
    line = (
        f"{label}: {requests:,} requests in {took:.0f} s; server RSS {start_mb:.0f} MB at start, "
        f"{half:.0f} MB at half-time, {last:.0f} MB at the end (+{last - half:.1f} MB in the "
        "second half)"
    )
    if probe:
        (record,) = server.probe_records()
        counts = record.counts
        line += (
            f"; record: {len(record.requests):,} requests, {counts.steps:,} loop steps kept, "
            f"{counts.dropped_events:,} events dropped (memory cap), {counts.probe_errors} errors"
        )
        verdict = "OK" if last - half < GROWTH_LIMIT_MB and counts.dropped_events > 0 else "FAIL"
        line += f" -> {verdict} (target: < {GROWTH_LIMIT_MB:g} MB growth once capped)"
    server.close()
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    print(f"probe memory: trivial async route, wrk -c{args.connections}, {args.seconds:g} s each")
    run(False, args.seconds, args.connections)
    run(True, args.seconds, args.connections)


if __name__ == "__main__":
    main()
