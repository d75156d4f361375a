"""How much of a worker thread's wait was the GIL: other threads' Python work meanwhile.

The probe measures a worker thread's wall time and its CPU time; the rest (wall minus CPU) is
waiting, and it cannot tell waiting on I/O from waiting for the GIL. Read as I/O, a CPU-bound
`def` route traced beside another one would be fitted with a wait that the model then adds on top
of the GIL contention it simulates itself: counted twice. So the fit takes out of each in-thread
wait the CPU time that the same process's other threads (its loop and its other worker threads)
spent during it: while they ran Python, this thread could not. The loop's runs are read the
same way (a loop thread that waits for the GIL is neither running Python nor doing I/O).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass

from loopscope.trace.model import Segment, Trace


@dataclass(frozen=True, slots=True)
class Busy:
    """A stretch of Python work of one process: `cpu_ns` spent evenly over `start_ns..end_ns`."""

    start_ns: int
    end_ns: int
    cpu_ns: int
    who: str


def _busy(trace: Trace) -> dict[str, list[Busy]]:
    # By process: a pid from the loop's lane or the request's worker ("" with one process).
    out: dict[str, list[Busy]] = defaultdict(list)
    single = trace.run.workers <= 1
    for seg in trace.lanes:
        if seg.lane.startswith("loop:") and seg.end_ns > seg.start_ns:
            cpu = seg.duration_ns if seg.state == "on-loop" else (seg.cpu_ns or 0)
            pid = "" if single else seg.lane.removeprefix("loop:")
            out[pid].append(Busy(seg.start_ns, seg.end_ns, cpu, "loop"))
    for request in trace.requests:
        pid = "" if single else str(request.worker)
        for seg in request.segments:
            if seg.state == "in-thread" and seg.cpu_ns and seg.end_ns > seg.start_ns:
                who = f"{request.id}@{seg.start_ns}"
                out[pid].append(Busy(seg.start_ns, seg.end_ns, seg.cpu_ns, who))
    for stretches in out.values():
        stretches.sort(key=lambda b: b.start_ns)
    return out


class GilShare:
    """Answers, for an in-thread segment, how much CPU the rest of its process spent during it."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.busy = _busy(trace)
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
