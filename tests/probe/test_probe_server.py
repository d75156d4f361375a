"""The probe inside a real uvicorn on the pure asyncio loop: blocks, lines, pool, gc, segments.

One server runs every scenario in turn (its thread pool cut to one token at start-up), then
stops and dumps the probe's record; each test reads the requests of its own scenario by the ids
the client sent.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from loopscope.trace.model import LoopBlock, PoolCall, PoolSample, Segment
from loopscope.trace.record import ServerRecord, ServerRequest

SLEEP_NS = 100_000_000  # the `def` route's time.sleep
BLOCK_NS = 150_000_000  # the blocking routes' sleep or busy loop


async def get_all(client: httpx.AsyncClient, *calls: tuple[str, str]) -> None:
    """GET `(path, request_id)` pairs concurrently; every answer must be a success."""
    answers = await asyncio.gather(
        *(client.get(path, headers={"x-loopscope-request": rid}) for path, rid in calls)
    )
    for answer in answers:
        answer.raise_for_status()


async def _later(seconds: float, call: Awaitable[None]) -> None:
    await asyncio.sleep(seconds)
    await call


async def _scenario(client: httpx.AsyncClient) -> None:
    # The first request pays for lazy set-up (imports, FastAPI's caches): keep it out of the way.
    await get_all(client, ("/items/0", "warm-up"))
    await get_all(client, ("/sleep-block", "sleep-1"), ("/sleep-block", "sleep-2"))
    await asyncio.gather(
        get_all(client, ("/async-sleep?seconds=0.1", "waiter")),
        _later(0.02, get_all(client, ("/sleep-block", "blocker"))),
    )
    await get_all(client, ("/deep-block", "deep-1"))
    await get_all(client, ("/cpu-block", "cpu-1"))
    await get_all(client, ("/async-sleep", "polite-1"), ("/async-sleep", "polite-2"))
    await get_all(client, ("/def-sleep", "def-1"))
    await get_all(client, *[("/def-sleep", f"pool-{i}") for i in (1, 2, 3)])
    await get_all(client, ("/items/7", "item-1"))
    answer = await client.get("/items/8")
    answer.raise_for_status()
    await get_all(client, ("/gc-build", "gc-build"))
    await get_all(client, ("/gc-collect", "gc-collect"))


@pytest.fixture(scope="module", params=["compiled", "pure-python"])
def record(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    run_probed: Callable[..., ServerRecord],
) -> ServerRecord:
    """The probe's record of one asyncio server that served every scenario, once with the
    probe's C hooks and once with its pure-Python ones: both must record the same things."""
    pure = request.param == "pure-python"
    return run_probed(tmp_path_factory.mktemp("asyncio"), _scenario, threads=1, pure_python=pure)


def blocks_of(record: ServerRecord, request_id: str) -> list[LoopBlock]:
    return [b for b in record.loop_blocks if b.request_id == request_id]


def one_block_of(record: ServerRecord, request_id: str) -> LoopBlock:
    found = blocks_of(record, request_id)
    assert len(found) == 1, record.loop_blocks
    return found[0]


def states(request: ServerRequest) -> dict[str, int]:
    """Total time per state in a request's lane."""
    totals: dict[str, int] = {}
    for segment in request.segments:
        span = segment.end_ns - segment.start_ns
        totals[segment.state] = totals.get(segment.state, 0) + span
    return totals


def test_the_record_names_the_loop_and_precise_mode(record: ServerRecord) -> None:
    assert record.loop == "asyncio"
    assert record.precise is True
    assert record.counts.probe_errors == 0
    assert record.counts.dropped_events == 0
    assert record.counts.steps > 0


def test_async_route_calling_time_sleep_yields_one_waiting_block_per_request_at_its_line(
    record: ServerRecord,
    marked_line: Callable[[str, str], str],
) -> None:
    for request_id in ("sleep-1", "sleep-2"):
        block = one_block_of(record, request_id)
        assert block.kind == "code"
        assert block.where == marked_line("blocking", "helper-sleep")
        assert block.stack[-1].startswith(marked_line("blocking", "helper-sleep"))
        wall = block.end_ns - block.start_ns
        assert BLOCK_NS * 0.9 < wall < BLOCK_NS * 4
        assert block.cpu_ns is not None and block.cpu_ns < wall * 0.3  # waiting, not CPU


def test_a_request_whose_timer_fired_during_a_block_is_listed_as_delayed(
    record: ServerRecord,
) -> None:
    block = one_block_of(record, "blocker")
    assert "waiter" in block.delayed
    waiter = record.request("waiter").segments
    ready = [s for s in waiter if s.state == "ready" and s.end_ns >= block.end_ns]
    assert ready and ready[0].start_ns < block.end_ns


def test_block_two_calls_below_the_route_in_another_module_is_blamed_on_its_exact_line(
    record: ServerRecord,
    marked_line: Callable[[str, str], str],
) -> None:
    block = one_block_of(record, "deep-1")
    assert block.where == marked_line("helpers", "deep-sleep")
    functions = [entry.rsplit(" in ", 1)[1] for entry in block.stack]
    assert functions[-3:] == ["deep_block", "load_profile", "_read_profile"]


def test_busy_loop_is_attributed_to_its_line_and_classified_as_cpu(
    record: ServerRecord,
    marked_line: Callable[[str, str], str],
) -> None:
    block = one_block_of(record, "cpu-1")
    assert block.where == marked_line("helpers", "busy-loop")
    wall = block.end_ns - block.start_ns
    # The route burns 150 ms of CPU; on a busy machine its wall time stretches, its CPU does not.
    assert block.cpu_ns is not None and block.cpu_ns > BLOCK_NS * 0.85
    # ≈ wall when the machine is idle; on a busy one the rest is run-queue time, not waiting.
    assert block.cpu_ns + (block.runnable_ns or 0) > wall * 0.6


def test_asyncio_sleep_and_def_routes_do_not_block_the_loop(record: ServerRecord) -> None:
    for request_id in ("polite-1", "polite-2", "def-1", "pool-1", "pool-2", "pool-3"):
        assert blocks_of(record, request_id) == []
        assert "loop-blocked" not in states(record.request(request_id))
    polite = states(record.request("polite-1"))
    assert polite["awaiting"] > 40_000_000  # asyncio.sleep(0.05) leaves the loop free


def test_def_route_waits_in_the_thread_pool_not_on_the_loop(record: ServerRecord) -> None:
    request = record.request("def-1")
    assert request.pool_hops >= 1
    totals = states(request)
    assert "pool-wait" in totals
    assert SLEEP_NS * 0.9 < totals["in-thread"] < SLEEP_NS * 3
    calls = [c for c in record.pool if c.request_id == "def-1"]
    assert calls[0].func.endswith("def_sleep")
    assert calls[0].cpu_ns < (calls[0].finished_ns - calls[0].started_ns) * 0.3
    thread_lanes = {s.lane for s in record.lanes if s.request_id == "def-1"}
    assert any(lane.startswith("thread:AnyIO worker thread #") for lane in thread_lanes)


def test_one_token_pool_makes_concurrent_def_requests_wait_one_and_two_sleeps(
    record: ServerRecord,
) -> None:
    waits = sorted(
        c.started_ns - c.submitted_ns
        for c in record.pool
        if c.request_id in ("pool-1", "pool-2", "pool-3") and c.func.endswith("def_sleep")
    )
    assert len(waits) == 3
    assert waits[0] < SLEEP_NS * 0.5
    assert SLEEP_NS * 0.8 < waits[1] < SLEEP_NS * 1.6
    assert SLEEP_NS * 1.7 < waits[2] < SLEEP_NS * 2.8
    longest = sorted(
        max(s.end_ns - s.start_ns for s in record.request(rid).segments if s.state == "pool-wait")
        for rid in ("pool-1", "pool-2", "pool-3")
    )
    assert longest[1] > SLEEP_NS * 0.8 and longest[2] > SLEEP_NS * 1.7
    samples = record.pool_samples
    assert {s.total for s in samples} == {1}
    assert max(s.waiting for s in samples) >= 1


def test_request_segments_are_ordered_non_overlapping_and_cover_the_request(
    record: ServerRecord,
) -> None:
    for request_id, request in ((r.id, r) for r in record.requests):
        segments = request.segments
        assert segments, request_id
        assert segments[0].start_ns == request.server_start_ns
        assert segments[-1].end_ns == request.server_end_ns
        for before, after in itertools.pairwise(segments):
            assert before.end_ns == after.start_ns, request_id
        assert all(s.start_ns < s.end_ns for s in segments)
        assert all(s.lane == f"request:{request_id}" for s in segments)
        assert "queued" not in states(request)


def test_loop_lane_is_ordered_and_non_overlapping(record: ServerRecord) -> None:
    loop = [s for s in record.lanes if s.lane == f"loop:{record.pid}"]
    assert {s.state for s in loop} == {"on-loop", "loop-blocked"}
    for before, after in itertools.pairwise(loop):
        assert before.end_ns <= after.start_ns


def test_forced_gc_pause_is_labelled_gc_and_not_blamed_on_user_code(
    record: ServerRecord,
) -> None:
    block = one_block_of(record, "gc-collect")
    assert block.kind == "gc"
    assert block.where is None


def test_route_template_status_and_generated_ids_are_recorded(record: ServerRecord) -> None:
    item = record.request("item-1")
    assert (item.method, item.path, item.route, item.status) == (
        "GET",
        "/items/7",
        "/items/{item_id}",
        200,
    )
    generated = [
        r for rid, r in ((r.id, r) for r in record.requests) if re.fullmatch(r"s\d+-\d+", rid)
    ]
    assert [r.path for r in generated] == ["/items/8"]
    assert item.loop_steps >= 1
    assert 0 < item.longest_step_ns < 20_000_000


def test_the_written_record_reads_back_as_the_typed_model(record: ServerRecord) -> None:
    # `load_record` validated the file strictly (unknown keys, wrong types); the parts are the
    # trace model's own classes, so the merge takes them as they are.
    assert all(isinstance(s, Segment) for r in record.requests for s in r.segments)
    assert all(isinstance(b, LoopBlock) for b in record.loop_blocks)
    assert all(isinstance(c, PoolCall) for c in record.pool)
    assert all(isinstance(s, PoolSample) for s in record.pool_samples)
    assert all(isinstance(s, Segment) for s in record.lanes)


def test_server_side_times_lie_within_the_clients_times_on_one_clock(
    tmp_path: Path, run_probed: Callable[..., ServerRecord]
) -> None:
    stamps: list[int] = []

    async def one(client: httpx.AsyncClient) -> None:
        stamps.append(time.monotonic_ns())
        await get_all(client, ("/async-sleep", "timed"))
        stamps.append(time.monotonic_ns())

    request = run_probed(tmp_path, one).request("timed")
    assert stamps[0] < request.server_start_ns < request.server_end_ns < stamps[1]
