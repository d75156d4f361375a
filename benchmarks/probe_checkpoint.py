"""What one probe checkpoint costs, for a record near the 200,000-event cap.

In one process: the probe (its default budget) watches an asyncio loop that serves a trivial
ASGI app, called directly, until the budget is nearly spent. Then, for that record:

- the time to take a checkpoint (`Checkpointer.take`: snapshot + pickle + write), and the
  file's size;
- how late the loop's 1 ms timer ran (its worst lateness) while a checkpoint was taken in the
  probe's thread, against the same timer with no checkpoint, and against the final record
  written (`Probe.dump`: collect + one `json.dumps` call, as at shutdown);
- the time the CLI takes to turn the checkpoint into a `ServerRecord` after a crash;
- what checkpoints cost a server under load: two probed servers (asyncio, h11), one with
  checkpoints (`LOOPSCOPE_CHECKPOINT_S` 0.5, the default) and one without (0), side by side on
  one core while two `wrk` drive them for `--seconds` from the other (as
  `probe_overhead.py` does), `--server-rounds` times, fresh servers each round.

    python benchmarks/probe_checkpoint.py [--rounds 3] [--server-rounds 3] [--seconds 8]

Measured numbers only; run on a quiet machine for figures worth quoting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from probe_overhead import run_wrk

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


def _size(folder: Path) -> int:
    """The bytes of a checkpoint on disk: its snapshot and side files."""
    return sum(p.stat().st_size for p in folder.glob("checkpoint.*"))


async def _serve_more(probe: Probe, count: int) -> None:
    app = probe.asgi(trivial)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    await asyncio.gather(*(app(dict(scope), receive, send) for _ in range(count)))


async def _worst_lateness(
    seconds: float, during: Callable[[], object] | None
) -> tuple[float, float]:
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
    served = await _fill(probe, 0.9)
    rec = probe.recorder
    print(
        f"filled: {served:,} requests, {rec.used:,} of {rec.capacity:,} events used, "
        f"{len(rec.steps):,} steps, in {time.perf_counter() - started:.1f} s"
    )
    full, late, more, late_dump, late_none, dumps = [], [], [], [], [], []
    path = folder / "checkpoint.bin"
    for _ in range(rounds):
        base, _ = await _worst_lateness(1.0, None)
        late_none.append(base)
        # A first checkpoint of the whole record (as the first after a quiet start would be),
        # then one after 200 more requests: what each checkpoint of a busy server costs.
        checkpoints = Checkpointer(probe, path, period_s=0.5)
        checkpoints.discard()
        worst, took = await _worst_lateness(0.0, checkpoints.take)
        full.append(took)
        late.append(worst)
        await _serve_more(probe, 200)
        _, took = await _worst_lateness(0.0, checkpoints.take)
        more.append(took)
        worst, took = await _worst_lateness(0.0, lambda: probe.dump(folder / "final.json"))
        late_dump.append(worst)
        dumps.append(took)
    size = _size(folder)
    print(
        f"checkpoint of the whole record: {statistics.median(full) * 1000:.0f} ms (median of "
        f"{rounds}; {min(full) * 1000:.0f}–{max(full) * 1000:.0f}), {size / 1e6:.1f} MB on disk; "
        f"the next, 200 requests later: {statistics.median(more) * 1000:.1f} ms "
        f"({min(more) * 1000:.1f}–{max(more) * 1000:.1f})"
    )
    print(
        f"1 ms timer's worst lateness (median of {rounds} rounds): "
        f"{statistics.median(late_none):.1f} ms with no checkpoint, "
        f"{statistics.median(late):.1f} ms while a whole-record checkpoint is taken, "
        f"{statistics.median(late_dump):.1f} ms while the final record is written "
        f"(which takes {statistics.median(dumps):.1f} s)"
    )
    started = time.perf_counter()
    record = read_checkpoint(path)
    print(
        f"the CLI reads it back: {time.perf_counter() - started:.1f} s, "
        f"{len(record.requests):,} requests, {record.counts.steps:,} steps"
    )
    checkpoints.take()  # nothing runs on the loop from here to the next one
    unchanged = time.perf_counter()
    skipped = not checkpoints.take()
    print(
        f"a checkpoint with nothing new: skipped={skipped}, "
        f"{(time.perf_counter() - unchanged) * 1e6:.0f} µs"
    )


def _server(period: str) -> ServerProcess:
    """A probed server of the trivial app on core 0, checkpoints every `period` s (0: none)."""
    settings = ServerSettings(
        app="trivial:app",
        app_dir=APPS,
        probe=True,
        cpus=(0,),
        env={"LOOPSCOPE_CHECKPOINT_S": period},
        stop_grace_s=120.0,
    )
    return ServerProcess(settings)


def _server_rounds(rounds: int, seconds: int) -> None:
    """Two fresh probed servers per round, one with checkpoints and one without, sharing core 0
    while two `wrk` drive them at once from core 1: the machine's noise hits both alike, and
    the ratio of their throughputs is the ratio of their costs per request."""
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("server rounds skipped: wrk or taskset is not installed")
        return
    ratios: list[float] = []
    for _ in range(rounds):
        with _server("0.5") as on, _server("0") as off, ThreadPoolExecutor(2) as pool:
            with_checkpoints = pool.submit(run_wrk, on, seconds, 32, 1)
            without = pool.submit(run_wrk, off, seconds, 32, 1)
            rate_on, rate_off = with_checkpoints.result().rps, without.result().rps
            if not list(on.probe_dir.glob("checkpoint-*")):
                raise SystemExit("the server with checkpoints saved none")
        ratios.append(rate_on / rate_off)
        print(f"  round: {rate_on:,.0f} requests/s with checkpoints, {rate_off:,.0f} without")
    print(
        f"probed server under wrk ({seconds} s, side by side on one core, {rounds} rounds): "
        f"throughput with checkpoints / without = {statistics.median(ratios):.3f} (median; "
        f"{min(ratios):.3f}–{max(ratios):.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server-rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    print(f"backend: {'pure Python' if os.environ.get('LOOPSCOPE_PURE_PYTHON') else 'compiled'}")
    if args.rounds:
        with tempfile.TemporaryDirectory() as folder, install(block_ms=20, precise=True) as probe:
            asyncio.run(_measure(probe, Path(folder), args.rounds))
    if args.server_rounds:
        _server_rounds(args.server_rounds, args.seconds)


if __name__ == "__main__":
    main()
