"""Assemble what one process's probe recorded into a `ServerRecord` (`Probe.collect()`).

The record's meaning is documented in `loopscope.probe`; its types are `loopscope.trace.record`'s.
"""

from __future__ import annotations

from collections import defaultdict

from loopscope.probe.blocks import (
    attribute_steps,
    attribute_to_lone_request,
    block_from_step,
    label_gc,
    mark_delayed,
    outside_steps,
)
from loopscope.probe.recorder import Recorder, Step
from loopscope.probe.segments import loop_lane, request_segments, thread_lanes, watched_segments
from loopscope.trace.model import LoopBlock, PoolCall
from loopscope.trace.record import ProbeCounts, ServerRecord, ServerRequest


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
) -> ServerRecord:
    """What `recorder` holds, as this process's `ServerRecord` (see `loopscope.probe`).

    `task_steps`: the steps are task steps (uvloop), and the watchdog's heartbeat ran beside
    them; its blocks that lie mostly outside every timed step are kept, and counted as unseen.
    """
    block_ns = int(block_ms * 1_000_000)
    requests = recorder.request_records()
    steps = attribute_steps(recorder.loop_steps(), requests)
    pool = sorted(recorder.pool, key=lambda call: call.submitted_ns)
    pauses = sorted(recorder.gc_pauses)
    samples = dict(recorder.samples)
    watched = list(recorder.watch_blocks) if not precise or task_steps else []
    for block in watched if not task_steps else ():
        # Under uvloop they are the loop ticker's: callbacks outside tasks, no request's.
        attribute_to_lone_request(block, requests)

    by_start: dict[int, LoopBlock] = {}
    for step in steps:
        if step[1] - step[0] > block_ns:
            by_start[step[0]] = block_from_step(step, samples.get(step[0]))
    unseen_ns = 0
    if task_steps:
        watched, unseen_ns = outside_steps(watched, steps, block_ns)
    blocks = sorted([*by_start.values(), *watched], key=lambda b: b.start_ns)
    starts = [step[0] for step in steps]
    arrivals = sorted((r.start_ns, request_id) for request_id, r in requests.items())
    for block in blocks:
        label_gc(block, pauses)
        mark_delayed(block, steps, starts, arrivals, pool)

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
        if precise:
            segments = request_segments(request_id, record, own, calls, by_start, watched)
        else:
            segments = watched_segments(request_id, record, calls, watched)
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
                segments=segments,
            )
        )

    return ServerRecord(
        pid=pid,
        loop=loop,
        precise=precise,
        block_ms=block_ms,
        requests=out_requests,
        loop_blocks=blocks,
        pool=pool,
        pool_samples=list(recorder.pool_samples),
        lanes=loop_lane(pid, steps, by_start, watched) + thread_lanes(pool),
        counts=ProbeCounts(
            dropped_events=recorder.dropped,
            probe_errors=recorder.errors,
            steps=len(steps),
            loops=loops,
            unobserved_loops=unobserved_loops,
            unseen_blocks=len(watched) if task_steps else 0,
            unseen_block_ns=unseen_ns,
        ),
        failures=recorder.failure_list(),
    )
