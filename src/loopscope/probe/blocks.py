"""Loop blocks from the raw records: which steps were too long, whose, where, and who waited.

A step longer than the threshold (precise mode) or a late heartbeat (watchdog mode) is a block.
Its `where` and `stack` come from the watchdog's samples, its CPU time from the loop thread's CPU
clock, its `kind` from the GC pauses it overlaps, and `delayed` from the other requests' records.
"""

from __future__ import annotations

import bisect
import os

from loopscope.probe.recorder import RequestRecord, StackSamples, Step
from loopscope.trace.model import LoopBlock, PoolCall

ARRIVAL_GRACE_NS = 1_000_000
"""A request first seen this soon after a block ended arrived while the loop was stuck."""
_READY_LOOKAHEAD_NS = 1_000_000_000
_GC_SHARE = 0.5


def attribute_steps(steps: list[Step], requests: dict[str, RequestRecord]) -> list[Step]:
    """`steps` with the steps a request's id was set or reset in given to that request.

    The hot path reads the id when a step starts, so it misses the step the middleware sets it
    in, and a request served within one step entirely; the middleware notes both steps.
    """
    owners: dict[int, str] = {}
    for request_id, record in requests.items():
        for step_start in (record.first_step_ns, record.last_step_ns):
            if step_start:
                owners[step_start] = request_id
    if not owners:
        return steps
    return [
        (start, end, cpu, owners.get(start), ready) if request_id is None else step
        for step in steps
        for start, end, cpu, request_id, ready in (step,)
    ]


def block_from_step(step: Step, samples: StackSamples | None) -> LoopBlock:
    """The `LoopBlock` of one long step, with the watchdog's line, stack and CPU estimate."""
    start, end, cpu_end, request_id, _ = step
    where, stack, inner = samples.best() if samples is not None else (None, [], None)
    cpu = runnable = process_cpu = None
    if samples is not None:
        if samples.cpu_start_ns is not None and cpu_end:
            cpu = max(0, min(cpu_end - samples.cpu_start_ns, end - start))
        runnable = samples.runnable_ns(start, end)
        if runnable is not None and cpu is not None:
            runnable = min(runnable, end - start - cpu)
        process_cpu = samples.process_cpu_ns(start, end, os.cpu_count() or 1)
        if process_cpu is not None and cpu is not None:
            process_cpu = max(process_cpu, cpu)  # the loop thread's own is part of it
    return LoopBlock(
        start,
        end,
        cpu,
        request_id,
        where,
        stack,
        runnable_ns=runnable,
        inner=inner,
        process_cpu_ns=process_cpu,
        process_runnable_ns=samples.process_runnable_ns(start, end) if samples else None,
    )


def attribute_to_lone_request(block: LoopBlock, requests: dict[str, RequestRecord]) -> None:
    """Give a heartbeat-mode block with no request to the one request in flight during it.

    The watchdog names the request of the task the loop is running when it looks; a stall that
    holds the GIL (a full collection, a C extension) is only seen once it is over, by which time
    its request may have finished. Where exactly one request overlaps the block, it is the one.
    """
    if block.request_id is not None:
        return
    overlapping = [
        request_id
        for request_id, record in requests.items()
        if record.start_ns < block.end_ns and (record.end_ns or block.end_ns) > block.start_ns
    ]
    if len(overlapping) == 1:
        block.request_id = overlapping[0]


def label_gc(block: LoopBlock, pauses: list[tuple[int, int]]) -> None:
    """Make `block` a `gc` block, blamed on no line, when collections cover most of it."""
    covered = 0
    i = bisect.bisect_left(pauses, (block.start_ns - 10**10, 0))
    for start, end in pauses[i:]:
        if start >= block.end_ns:
            break
        covered += max(0, min(end, block.end_ns) - max(start, block.start_ns))
    if covered >= _GC_SHARE * block.duration_ns:
        block.kind = "gc"
        block.where = block.inner = None


def mark_delayed(
    block: LoopBlock,
    steps: list[Step],
    starts: list[int],
    arrivals: list[tuple[int, str]],
    pool: list[PoolCall],
) -> None:
    """Fill `block.delayed`: requests that were ready, arrived or got thread results meanwhile."""
    found: set[str] = set()
    i = bisect.bisect_left(starts, block.end_ns)
    while i < len(starts) and starts[i] - block.end_ns < _READY_LOOKAHEAD_NS:
        _, _, _, request_id, ready = steps[i]
        if request_id is not None and 0 < ready < block.end_ns:
            found.add(request_id)
        i += 1
    i = bisect.bisect_left(arrivals, (block.start_ns, ""))
    while i < len(arrivals) and arrivals[i][0] <= block.end_ns + ARRIVAL_GRACE_NS:
        found.add(arrivals[i][1])
        i += 1
    for call in pool:
        finished = call.finished_ns
        in_block = finished is not None and block.start_ns <= finished <= block.end_ns
        if call.request_id is not None and in_block:
            found.add(call.request_id)
    found.discard(block.request_id or "")
    block.delayed = sorted(found)


def outside_steps(
    watched: list[LoopBlock], steps: list[Step], block_ns: int
) -> tuple[list[LoopBlock], int]:
    """The heartbeat's blocks that timed task steps do not explain, and their time outside them.

    Under uvloop only task steps are timed; the heartbeat finds every block. One whose time
    outside every timed step exceeds the threshold was (mostly) a callback outside tasks: it is
    kept; the others are the long task steps' own blocks, already recorded with their line.
    """
    spans = sorted((start, end) for start, end, _, _, _ in steps)
    starts = [start for start, _ in spans]
    kept: list[LoopBlock] = []
    unseen = 0
    for block in watched:
        covered = 0
        i = max(0, bisect.bisect_left(starts, block.start_ns) - 1)
        while i < len(spans) and spans[i][0] < block.end_ns:
            start, end = spans[i]
            covered += max(0, min(end, block.end_ns) - max(start, block.start_ns))
            i += 1
        outside = block.duration_ns - covered
        if outside > block_ns:
            kept.append(block)
            unseen += outside
    return kept, unseen
