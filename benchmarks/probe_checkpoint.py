"""What one probe checkpoint costs, for a record near the 200,000-event cap.

In one process: the probe (its default budget) watches an asyncio loop that serves a trivial
ASGI app, called directly, until the budget is nearly spent. Then, for that record:

- the time to take a checkpoint (`Checkpointer.take`: snapshot + pickle + write), and the
  file's size;
- how late the loop's 1 ms timer ran (its worst lateness) while a checkpoint was taken in the
  probe's thread, against the same timer with no checkpoint, and against the final record
  written (`Probe.dump`: collect + one `json.dumps` call, as at shutdown);
- the time the CLI takes to turn the checkpoint into a `ServerRecord` after a crash.

    python benchmarks/probe_checkpoint.py [--rounds 3]

Measured numbers only; run on a quiet machine for figures worth quoting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopscope.probe import install
from loopscope.probe.checkpoint import Checkpointer, read_checkpoint
from loopscope.probe.instrument import Probe

TICK_S = 0.001


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"backend: {'pure Python' if os.environ.get('LOOPSCOPE_PURE_PYTHON') else 'compiled'}")
    with tempfile.TemporaryDirectory() as folder, install(block_ms=20, precise=True) as probe:
        asyncio.run(_measure(probe, Path(folder), args.rounds))


if __name__ == "__main__":
    main()
