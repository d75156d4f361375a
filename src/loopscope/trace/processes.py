"""The server's processes and its accept queue, in numbers: how the requests spread over the
workers, which workers died during the run and which replaced them, and how full the kernel's
accept queue got. Pure functions of a `Trace`; `loopscope.report.words` says them."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

from loopscope.trace.analysis import span_ns
from loopscope.trace.model import Trace


@dataclass(frozen=True, slots=True)
class WorkerShare:
    """One worker process: the requests it served (as its probe saw them), when it started and
    ended relative to the run's start (ns; `None`: before the run / still alive), whether its
    probe left a record, and when that record's checkpoint was taken, relative to the run's
    start (`None`: a final record; below 0: before the run began)."""

    pid: int
    served: int
    started_ns: int | None
    ended_ns: int | None
    recorded: bool
    checkpoint_ns: int | None = None

    @property
    def died(self) -> bool:
        """Whether it was seen gone during the run."""
        return self.ended_ns is not None


@dataclass(frozen=True, slots=True)
class WorkerSpread:
    """The requests' spread over the workers. `unattributed` requests no probe saw (the client's
    view only: sent to a worker that died before saving its record, or failed before any
    worker read them); `busiest_ratio` is the busiest worker's share over an even share among
    the workers that were up (1.0: perfectly even)."""

    workers: tuple[WorkerShare, ...]
    unattributed: int
    busiest_ratio: float

    @property
    def died(self) -> tuple[WorkerShare, ...]:
        """The workers that died during the run."""
        return tuple(w for w in self.workers if w.died)

    @property
    def checkpointed(self) -> tuple[WorkerShare, ...]:
        """The workers whose server-side view is as of a checkpoint (they wrote no final
        record)."""
        return tuple(w for w in self.workers if w.checkpoint_ns is not None)

    @property
    def worth_telling(self) -> bool:
        """Whether the spread says more than "one worker served everything": several workers,
        or one that died or left only a checkpoint."""
        return len(self.workers) > 1 or bool(self.died) or bool(self.checkpointed)

    @property
    def replacements(self) -> tuple[WorkerShare, ...]:
        """The workers that started after the run began (a dead worker's successors)."""
        return tuple(w for w in self.workers if w.started_ns is not None and w.started_ns > 0)


def worker_spread(trace: Trace) -> WorkerSpread | None:
    """The spread of `trace`'s requests over its workers; `None` when it knows no workers."""
    if not trace.workers:
        return None
    served = Counter(r.worker for r in trace.requests if r.worker is not None)
    origin = trace.run.started_ns or (span_ns(trace) or (0, 0))[0]
    shares = tuple(
        WorkerShare(
            pid=w.pid,
            served=served.get(w.pid, 0),
            started_ns=None
            if w.started_ns is None or w.started_ns <= origin
            else w.started_ns - origin,
            ended_ns=None if w.ended_ns is None else max(0, w.ended_ns - origin),
            recorded=w.recorded,
            checkpoint_ns=None if w.checkpoint_ns is None else w.checkpoint_ns - origin,
        )
        for w in trace.workers
    )
    attributed = sum(served.values())
    even = attributed / len(shares)
    busiest = max(served.values(), default=0)
    return WorkerSpread(
        workers=shares,
        unattributed=len(trace.requests) - attributed,
        busiest_ratio=busiest / even if even else 1.0,
    )


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The accept queue as sampled: its `peak` depth and when (ns from the run's start), the
    `backlog` (its limit), the time it held at least one connection, and the sampling period."""

    peak: int
    peak_at_ns: int
    backlog: int
    nonempty_ns: int
    period_ms: float | None


def accept_queue_stats(trace: Trace) -> QueueStats | None:
    """The accept queue's figures; `None` where it was not sampled."""
    samples = trace.accept_queue
    if not samples:
        return None
    origin = trace.run.started_ns or samples[0].t_ns
    peak = max(samples, key=lambda s: (s.depth, -s.t_ns))
    # Samples are kept where the depth changed: each holds until the next.
    nonempty = sum(b.t_ns - a.t_ns for a, b in itertools.pairwise(samples) if a.depth > 0)
    return QueueStats(
        peak=peak.depth,
        peak_at_ns=max(0, peak.t_ns - origin),
        backlog=max(s.backlog for s in samples),
        nonempty_ns=nonempty,
        period_ms=trace.run.queue_sample_ms,
    )


def queue_peak_during(trace: Trace, intervals: list[tuple[int, int]]) -> int | None:
    """The deepest the accept queue was during any of `intervals` (ns, absolute); `None` where
    it was not sampled. A sample's depth holds until the next sample."""
    samples = trace.accept_queue
    if not samples:
        return None
    peak = 0
    for sample, following in zip(samples, [*samples[1:], None], strict=True):
        until = following.t_ns if following is not None else sample.t_ns
        if any(sample.t_ns <= end and until >= start for start, end in intervals):
            peak = max(peak, sample.depth)
    return peak
