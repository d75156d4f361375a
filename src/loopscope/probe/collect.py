"""Assemble what one process's probe recorded into a `ServerRecord` (`Probe.collect()`).

The record's meaning is documented in `loopscope.probe`; its types are `loopscope.trace.record`'s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

from loopscope.probe.blocks import (
    attribute_steps,
    attribute_to_lone_request,
    block_from_step,
    label_gc,
    mark_delayed,
    outside_steps,
)
from loopscope.probe.recorder import Recorder, RequestRecord, StackSamples, Step
from loopscope.probe.segments import loop_lane, request_segments, thread_lanes, watched_segments
from loopscope.trace.model import LoopBlock, PoolCall, PoolSample, Segment
from loopscope.trace.record import ProbeCounts, ServerRecord, ServerRequest

T = TypeVar("T")


def _part(recorder: Recorder, name: str, build: Callable[[], T], default: T) -> T:
    """`build()`, or `default` with the failure counted as the probe's own (hook
    `collect <name>`): one failing part of the record must not lose the rest."""
    try:
        return build()
    except Exception as exc:
        recorder.fail(f"collect {name}", exc)
        return default


def server_record(
    recorder: Recorder,
    *,
    pid: int,
    loop: str,
    precise: bool,
    block_ms: float,
    task_steps: bool = False,
    loops: int = 0,
    unobserved_loops: int = 0,
    checkpoint_ns: int | None = None,
) -> ServerRecord:
    """What `recorder` holds, as this process's `ServerRecord` (see `loopscope.probe`).

    Built part by part: a part that fails (the requests, the loop steps, the pool, the blocks,
    one request's segments, the lanes) is left empty and counted in `probe_errors`, with its
    cause in `failures`; every other part is still recorded.

    `task_steps`: the steps are task steps (uvloop), and the watchdog's heartbeat ran beside
    them; its blocks that lie mostly outside every timed step are kept, and counted as unseen.
    `checkpoint_ns`: `recorder` is a checkpoint's, taken then (`loopscope.probe.checkpoint`).
    """
    rec = recorder
    block_ns = int(block_ms * 1_000_000)
    requests: dict[str, RequestRecord] = _part(rec, "requests", rec.request_records, {})
    steps: list[Step] = _part(
        rec, "loop steps", lambda: attribute_steps(rec.loop_steps(), requests), []
    )
    pool: list[PoolCall] = _part(
        rec, "thread pool", lambda: sorted(rec.pool, key=lambda c: c.submitted_ns), []
    )
    pauses: list[tuple[int, int]] = _part(rec, "gc", lambda: sorted(rec.gc_pauses), [])
    samples: dict[int, StackSamples] = _part(rec, "stack samples", lambda: dict(rec.samples), {})

    def watchdog_blocks() -> tuple[list[LoopBlock], int]:
        watched = list(rec.watch_blocks) if not precise or task_steps else []
        if task_steps:
            # Under uvloop they are the loop ticker's: callbacks outside tasks, no request's.
            return outside_steps(watched, steps, block_ns)
        for block in watched:
            attribute_to_lone_request(block, requests)
        return watched, 0

    no_blocks: tuple[list[LoopBlock], int] = ([], 0)
    watched, unseen_ns = _part(rec, "watchdog", watchdog_blocks, no_blocks)

    def loop_blocks() -> tuple[list[LoopBlock], dict[int, LoopBlock]]:
        by_start: dict[int, LoopBlock] = {}
        for step in steps:
            if step[1] - step[0] > block_ns:
                by_start[step[0]] = block_from_step(step, samples.get(step[0]))
        blocks = sorted([*by_start.values(), *watched], key=lambda b: b.start_ns)
        starts = [step[0] for step in steps]
        arrivals = sorted((r.start_ns, request_id) for request_id, r in requests.items())
        for block in blocks:
            label_gc(block, pauses)
            mark_delayed(block, steps, starts, arrivals, pool)
        return blocks, by_start

    nothing: tuple[list[LoopBlock], dict[int, LoopBlock]] = ([], {})
    found = _part(rec, "loop blocks", loop_blocks, nothing)
    blocks, by_start = found

    steps_of: dict[str, list[Step]] = defaultdict(list)
    for step in steps:
        if step[3] is not None:
            steps_of[step[3]].append(step)
    calls_of: dict[str, list[PoolCall]] = defaultdict(list)
    for call in pool:
        if call.request_id is not None:
            calls_of[call.request_id].append(call)

    out_requests: list[ServerRequest] = []
    for request_id, record in requests.items():
        own = steps_of.get(request_id, [])
        calls = calls_of.get(request_id, [])

        def segments_of(
            request_id: str = request_id,
            record: RequestRecord = record,
            own: list[Step] = own,
            calls: list[PoolCall] = calls,
        ) -> list[Segment]:
            if precise:
                return request_segments(request_id, record, own, calls, by_start, watched)
            return watched_segments(request_id, record, calls, watched)

        out_requests.append(
            ServerRequest(
                id=request_id,
                method=record.method,
                path=record.path,
                route=record.route or record.path,
                status=record.status,
                server_start_ns=record.start_ns,
                server_end_ns=record.end_ns,
                loop_steps=len(own) if precise else None,
                longest_step_ns=max((s[1] - s[0] for s in own), default=None) if precise else None,
                pool_hops=record.pool_hops,
                segments=_part(rec, "request segments", segments_of, []),
            )
        )

    lanes: list[Segment] = _part(
        rec, "lanes", lambda: loop_lane(pid, steps, by_start, watched) + thread_lanes(pool), []
    )
    pool_samples: list[PoolSample] = _part(rec, "pool samples", lambda: list(rec.pool_samples), [])
    return ServerRecord(
        pid=pid,
        loop=loop,
        precise=precise,
        block_ms=block_ms,
        requests=out_requests,
        loop_blocks=blocks,
        pool=pool,
        pool_samples=pool_samples,
        lanes=lanes,
        counts=ProbeCounts(
            dropped_events=rec.dropped,
            probe_errors=rec.errors,
            unrecorded_events=rec.unrecorded,
            steps=len(steps),
            loops=loops,
            unobserved_loops=unobserved_loops,
            unseen_blocks=len(watched) if task_steps else 0,
            unseen_block_ns=unseen_ns,
        ),
        failures=rec.failure_list(),
        checkpoint_ns=checkpoint_ns,
    )
