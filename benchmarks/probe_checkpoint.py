"""What one probe checkpoint costs, for a record near the 200,000-event cap.

In one process: the probe (its default budget) watches an asyncio loop that serves a trivial
ASGI app, called directly, until the budget is nearly spent. Then, for that record:

- the time to take a checkpoint (`Checkpointer.take`: snapshot + pickle + write), and the
  file's size;
- how late the loop's 1 ms timer ran (its worst lateness) while a checkpoint was taken in the
  probe's thread, against the same timer with no checkpoint, and against the final record
  written (`Probe.dump`: collect + one `json.dumps` call, as at shutdown);
- the time the CLI takes to turn the checkpoint into a `ServerRecord` after a crash;
- what checkpoints cost a server under load: a probed server (asyncio, h11) driven by `wrk` for
  `--seconds` (long enough to fill the budget), with checkpoints (`LOOPSCOPE_CHECKPOINT_S`
  0.5, the default) and without (0), alternating, `--server-rounds` times each.

    python benchmarks/probe_checkpoint.py [--rounds 3] [--server-rounds 3] [--seconds 8]

Measured numbers only; run on a quiet machine for figures worth quoting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopscope.probe import install
from loopscope.probe.checkpoint import Checkpointer, read_checkpoint
from loopscope.probe.instrument import Probe
from loopscope.server import ServerProcess, ServerSettings

TICK_S = 0.001
APPS = str(Path(__file__).parent / "apps")


async def trivial(scope: Any, receive: Any, send: Any) -> None:
    """A route with two awaits (three loop steps), answering 200."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _fill(probe: Probe, share: float) -> int:
    """Serve requests until `share` of the budget is used; how many were served."""
    app = probe.asgi(trivial)
    rec = probe.recorder

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    served = 0
    while rec.used < share * rec.capacity:
        await asyncio.gather(*(app(dict(scope), receive, send) for _ in range(200)))
        served += 200
    return served


async def _worst_lateness(seconds: float, during: Callable[[], None] | None) -> tuple[float, float]:
    """The 1 ms timer's worst lateness (ms) over `seconds`, with `during` run in a thread; and
    how long `during` took (s)."""
    took = 0.0

    def work() -> None:
        nonlocal took
        if during is not None:
            started = time.perf_counter()
            during()
            took = time.perf_counter() - started

    thread = threading.Thread(target=work)
    worst = 0.0
    end = time.monotonic() + seconds
    thread.start()
    while time.monotonic() < end or thread.is_alive():
        before = time.monotonic()
        await asyncio.sleep(TICK_S)
        worst = max(worst, time.monotonic() - before - TICK_S)
    thread.join()
    return worst * 1000, took


async def _measure(probe: Probe, folder: Path, rounds: int) -> None:
    probe.observe_loop()
    started = time.perf_counter()
    served = await _fill(probe, 0.97)
    rec = probe.recorder
    print(
        f"filled: {served:,} requests, {rec.used:,} of {rec.capacity:,} events used, "
        f"{len(rec.steps):,} steps, in {time.perf_counter() - started:.1f} s"
    )
    checkpoints = Checkpointer(probe, folder / "checkpoint.bin", period_s=0.5)
    costs, late, late_dump, late_none, dumps = [], [], [], [], []
    for _ in range(rounds):
        base, _ = await _worst_lateness(1.0, None)
        late_none.append(base)

        def take() -> None:
            checkpoints._last = None  # as if something changed: a full checkpoint each round
            assert checkpoints.take()

        worst, took = await _worst_lateness(0.0, take)
        costs.append(took)
        late.append(worst)
        worst, took = await _worst_lateness(0.0, lambda: probe.dump(folder / "final.json"))
        late_dump.append(worst)
        dumps.append(took)
    size = (folder / "checkpoint.bin").stat().st_size
    print(
        f"checkpoint: {statistics.median(costs) * 1000:.0f} ms (median of {rounds}; "
        f"min {min(costs) * 1000:.0f}, max {max(costs) * 1000:.0f}), {size / 1e6:.1f} MB"
    )
    print(
        f"1 ms timer's worst lateness (median of {rounds} rounds): "
        f"{statistics.median(late_none):.1f} ms with no checkpoint, "
        f"{statistics.median(late):.1f} ms while a checkpoint is taken, "
        f"{statistics.median(late_dump):.1f} ms while the final record is written "
        f"(which takes {statistics.median(dumps):.1f} s)"
    )
    started = time.perf_counter()
    record = read_checkpoint(folder / "checkpoint.bin")
    print(
        f"the CLI reads it back: {time.perf_counter() - started:.1f} s, "
        f"{len(record.requests):,} requests, {record.counts.steps:,} steps"
    )
    unchanged = time.perf_counter()
    skipped = not checkpoints.take()
    print(
        f"a checkpoint with nothing new: skipped={skipped}, "
        f"{(time.perf_counter() - unchanged) * 1e6:.0f} µs"
    )


def _served(period: str, seconds: int) -> tuple[float, int]:
    """Requests/s of a probed server under `wrk` with checkpoints every `period` s (0: none),
    and the checkpoint files it left (1 while it runs, 0 once it wrote its final record)."""
    settings = ServerSettings(
        app="trivial:app",
        app_dir=APPS,
        probe=True,
        env={"LOOPSCOPE_CHECKPOINT_S": period},
        stop_grace_s=120.0,
    )
    with ServerProcess(settings) as server:
        command = ["wrk", "-t1", "-c32", f"-d{seconds}s", server.url + "/"]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        left = len(list(server.probe_dir.glob("checkpoint-*")))
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise SystemExit(f"wrk printed no rate:\n{out}")
    return float(found.group(1)), left


def _server_rounds(rounds: int, seconds: int) -> None:
    if shutil.which("wrk") is None:
        print("server rounds skipped: wrk is not installed")
        return
    rates: dict[str, list[float]] = {"0.5": [], "0": []}
    for _ in range(rounds):
        for period in rates:
            rate, left = _served(period, seconds)
            rates[period].append(rate)
            if period != "0" and not left:
                raise SystemExit("the server under load wrote no checkpoint")
    on, off = statistics.median(rates["0.5"]), statistics.median(rates["0"])
    print(
        f"probed server under wrk ({seconds} s, 32 connections, median of {rounds}): "
        f"{on:,.0f} requests/s with checkpoints, {off:,.0f} without ({on / off:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server-rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    print(f"backend: {'pure Python' if os.environ.get('LOOPSCOPE_PURE_PYTHON') else 'compiled'}")
    with tempfile.TemporaryDirectory() as folder, install(block_ms=20, precise=True) as probe:
        asyncio.run(_measure(probe, Path(folder), args.rounds))
    if args.server_rounds:
        _server_rounds(args.server_rounds, args.seconds)


if __name__ == "__main__":
    main()
