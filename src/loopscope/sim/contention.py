"""How much of a worker thread's wait was the GIL: other threads' Python work meanwhile.

The probe measures a worker thread's wall time, its CPU time and its run-queue time; the rest is
waiting, and it cannot tell waiting on I/O from waiting for the GIL. Read as I/O, a CPU-bound
`def` route traced beside another one would be fitted with a wait that the model then adds on top
of the GIL contention it simulates itself: counted twice. So the fit takes out of each in-thread
wait the CPU time that the same process's other threads (its loop and its other worker threads)
spent during it: while they ran Python, this thread could not. A holder of the GIL that is
preempted (runnable, no core: another process's turn) keeps it, so its run-queue time counts
as its GIL time too (measured where the probe read it, else estimated from the machine's steal,
`loopscope.sim.machine`). The loop's runs are read the same way (a loop thread that waits for
the GIL is neither running Python nor doing I/O).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass

from loopscope.sim.machine import MAX_STEAL, cpu_bound
from loopscope.trace.model import Segment, Trace


@dataclass(frozen=True, slots=True)
class Busy:
    """A stretch of Python work of one process: `cpu_ns` spent evenly over `start_ns..end_ns`."""

    start_ns: int
    end_ns: int
    cpu_ns: int
    who: str


def _held(cpu_ns: int, runnable_ns: int | None, duration_ns: int, steal: float) -> int:
    # CPU plus the time preempted while holding the GIL: read, or estimated from the steal.
    # Only a CPU-bound stretch is taken to hold the GIL while it queues for a core; a thread
    # whose wait just ended queues for a core before it takes the GIL.
    if runnable_ns is None:
        runnable_ns = round(cpu_ns * steal / (1.0 - steal))
    if not cpu_bound(duration_ns, cpu_ns, runnable_ns):
        return cpu_ns
    return min(duration_ns, cpu_ns + runnable_ns)


def _busy(trace: Trace, steal: float) -> dict[str, list[Busy]]:
    # By process: a pid from the loop's lane or the request's worker ("" with one process).
    out: dict[str, list[Busy]] = defaultdict(list)
    single = trace.run.workers <= 1
    blocks = {b.start_ns: b.runnable_ns for b in trace.loop_blocks}
    trips = {(c.request_id, c.started_ns): c.runnable_ns for c in trace.pool}
    for seg in trace.lanes:
        if seg.lane.startswith("loop:") and seg.end_ns > seg.start_ns:
            if seg.state == "on-loop":
                held = seg.duration_ns  # the loop ran it, or wanted to, all the time
            else:
                runnable = blocks.get(seg.start_ns)
                held = _held(seg.cpu_ns or 0, runnable, seg.duration_ns, steal)
            pid = "" if single else seg.lane.removeprefix("loop:")
            out[pid].append(Busy(seg.start_ns, seg.end_ns, held, "loop"))
    for request in trace.requests:
        pid = "" if single else str(request.worker)
        for seg in request.segments:
            if seg.state == "in-thread" and seg.cpu_ns and seg.end_ns > seg.start_ns:
                who = f"{request.id}@{seg.start_ns}"
                runnable = trips.get((request.id, seg.start_ns))
                held = _held(seg.cpu_ns, runnable, seg.duration_ns, steal)
                out[pid].append(Busy(seg.start_ns, seg.end_ns, held, who))
    for stretches in out.values():
        stretches.sort(key=lambda b: b.start_ns)
    return out


class GilShare:
    """Answers, for an in-thread segment, how long the rest of its process held the GIL during
    it (its CPU time, and its run-queue time while it held it)."""

    def __init__(self, trace: Trace, steal: float = 0.0) -> None:
        self.trace = trace
        self.busy = _busy(trace, steal)
        self.starts = {pid: [b.start_ns for b in bs] for pid, bs in self.busy.items()}
        self.longest = {
            pid: max((b.end_ns - b.start_ns for b in bs), default=0)
            for pid, bs in self.busy.items()
        }
        self.workers = {r.id: r.worker for r in trace.requests}

    def others_cpu_ns(self, request_id: str, seg: Segment) -> int:
        """CPU time of the rest of the process within `seg` (an `in-thread` segment of
        `request_id`, or one of its runs on the loop: then the loop's own work is not counted)."""
        pid = "" if self.trace.run.workers <= 1 else str(self.workers.get(request_id))
        stretches = self.busy.get(pid, [])
        starts = self.starts.get(pid, [])
        on_loop = seg.state in ("on-loop", "loop-blocked")
        me = "loop" if on_loop else f"{request_id}@{seg.start_ns}"
        first = bisect_left(starts, seg.start_ns - self.longest.get(pid, 0))
        total = 0.0
        for b in stretches[first:]:
            if b.start_ns >= seg.end_ns:
                break
            if b.who == me or b.end_ns <= seg.start_ns:
                continue
            overlap = min(b.end_ns, seg.end_ns) - max(b.start_ns, seg.start_ns)
            total += b.cpu_ns * overlap / (b.end_ns - b.start_ns)
        return round(total)


ALONE_SHARE = 0.1
"""A stretch had its process alone when the rest of it held the GIL for less than this share."""


def measured_steal(trace: Trace) -> float:
    """Other processes' share of the server threads' runnable time in `trace`
    (`loopscope.sim.machine`): over the CPU-bound stretches that had their process alone; 0
    where there are none or no run-queue readings (an older trace, not Linux)."""
    blocks = block_runnable(trace)
    trips = {(c.request_id, c.started_ns): c.runnable_ns for c in trace.pool}
    share: GilShare | None = None
    cpu = runnable = 0
    for request in trace.requests:
        for seg in request.segments:
            if seg.cpu_ns is None or seg.state not in ("loop-blocked", "in-thread"):
                continue
            if seg.state == "in-thread":
                queued = trips.get((request.id, seg.start_ns))
            else:
                queued = blocks.get(seg.start_ns)
            if queued is None or not cpu_bound(seg.duration_ns, seg.cpu_ns, queued):
                continue
            share = share or GilShare(trace)
            if share.others_cpu_ns(request.id, seg) > ALONE_SHARE * seg.duration_ns:
                continue
            cpu, runnable = cpu + seg.cpu_ns, runnable + queued
    if cpu + runnable <= 0:
        return 0.0
    return min(MAX_STEAL, runnable / (cpu + runnable))


def block_runnable(trace: Trace) -> dict[int, int]:
    """The run-queue time of each `loop-blocked` segment (by its start) whose block has one."""
    # A block and its request's segment may start a few µs apart: match on the request.
    by_request: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for block in trace.loop_blocks:
        if block.request_id and block.runnable_ns is not None:
            by_request[block.request_id].append((block.start_ns, block.runnable_ns))
    out: dict[int, int] = {}
    for request in trace.requests:
        blocks = by_request.get(request.id, [])
        for seg in request.segments:
            if seg.state == "loop-blocked" and blocks:
                start, runnable = min(blocks, key=lambda b: abs(b[0] - seg.start_ns))
                if abs(start - seg.start_ns) < seg.duration_ns:
                    out[seg.start_ns] = runnable
    return out
