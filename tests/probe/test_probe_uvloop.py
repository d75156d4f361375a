"""uvloop (compiled handles) in a real server: task steps are timed, and the watchdog's heartbeat
still finds the blocks, their lines and their CPU time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from loopscope.trace.model import LoopBlock
from loopscope.trace.record import ServerRecord

RunProbed = Callable[..., ServerRecord]


async def get_all(client: httpx.AsyncClient, *calls: tuple[str, str]) -> None:
    """GET `(path, request_id)` pairs concurrently; every answer must be a success."""
    answers = await asyncio.gather(
        *(client.get(path, headers={"x-loopscope-request": rid}) for path, rid in calls)
    )
    for answer in answers:
        answer.raise_for_status()


async def _scenario(client: httpx.AsyncClient) -> None:
    # The first request pays for lazy set-up (imports, FastAPI's caches): keep it out of the way.
    await get_all(client, ("/items/0", "warm-up"))
    await get_all(client, ("/sleep-block", "slow-1"))
    await get_all(client, ("/cpu-block", "cpu-1"))
    await get_all(client, ("/def-sleep", "def-1"))
    await get_all(client, ("/gc-build", "gc-build"))
    await get_all(client, ("/gc-collect", "gc-collect"))


def _block(record: ServerRecord, request_id: str) -> LoopBlock:
    found = [b for b in record.loop_blocks if b.request_id == request_id]
    assert len(found) == 1, record.loop_blocks
    return found[0]


@pytest.mark.parametrize("pure_python", [False, True], ids=["compiled", "pure-python"])
def test_under_uvloop_the_block_is_found_at_its_line_with_task_steps_timed(
    tmp_path: Path,
    run_probed: RunProbed,
    marked_line: Callable[[str, str], str],
    pure_python: bool,
) -> None:
    record = run_probed(tmp_path, _scenario, loop="uvloop", pure_python=pure_python)
    assert (record.loop, record.precise) == ("uvloop", True)
    assert record.counts.steps > 0

    slow = _block(record, "slow-1")
    assert slow.where == marked_line("blocking", "helper-sleep")
    wall = slow.end_ns - slow.start_ns
    assert 100_000_000 < wall < 600_000_000
    assert slow.cpu_ns is not None and slow.cpu_ns < wall * 0.3

    busy = _block(record, "cpu-1")
    assert busy.where == marked_line("helpers", "busy-loop")
    assert busy.cpu_ns > 150_000_000 * 0.85
    # CPU, or ready to run while a busy machine ran something else: no waiting.
    assert busy.cpu_ns + (busy.runnable_ns or 0) > (busy.end_ns - busy.start_ns) * 0.6

    # A full collection holds the GIL, so no heartbeat can even be posted: caught all the same.
    assert _block(record, "gc-collect").kind == "gc"

    thread_pool = record.request("def-1")
    assert thread_pool.loop_steps is not None and thread_pool.loop_steps >= 2
    assert {"pool-wait", "in-thread"} <= {s.state for s in thread_pool.segments}


def test_precise_false_uses_the_heartbeat_on_the_asyncio_loop_too(
    tmp_path: Path, run_probed: RunProbed, marked_line: Callable[[str, str], str]
) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        await get_all(client, ("/items/0", "warm-up"))
        await get_all(client, ("/deep-block", "deep-1"), ("/async-sleep", "polite-1"))

    record = run_probed(tmp_path, scenario, precise=False)
    assert (record.loop, record.precise, record.counts.steps) == ("asyncio", False, 0)
    assert _block(record, "deep-1").where == marked_line("helpers", "deep-sleep")
    # The sleeper's time is never blamed on the loop; an overloaded machine may stall the loop
    # thread itself while the sleeper's task is current: a short block with no line of its own.
    for block in (b for b in record.loop_blocks if b.request_id == "polite-1"):
        assert block.where is None and block.duration_ns < 100_000_000, block
