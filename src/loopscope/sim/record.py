"""What the model records, in the Trace's own records: segments, lanes, blocks, pool calls.

The engine calls these as a request moves on; they only append, so the model's hot path stays
short. A run of loop steps longer than the block threshold is recorded as the probe records one:
a `loop-blocked` segment with its CPU time, a loop-lane segment, and a `LoopBlock` naming the
recipe step and the requests it delayed.
"""

from __future__ import annotations

from loopscope.sim.primitives import Semaphore
from loopscope.trace.model import LoopBlock, PoolCall, PoolSample, Request, Segment


class Recorder:
    """The records of one simulation, in the order they happened."""

    __slots__ = ("block_ns", "blocks", "calls", "lanes", "requests", "samples")

    def __init__(self, block_ns: int) -> None:
        self.block_ns = block_ns
        self.requests: list[Request] = []
        self.lanes: list[Segment] = []
        self.blocks: list[LoopBlock] = []
        self.calls: list[PoolCall] = []
        self.samples: list[PoolSample] = []

    def run(
        self, loop_lane: str, lane: str, segs: list[Segment], rid: str, start: int, end: int
    ) -> None:
        """A run of `rid`'s steps on the loop from `start` to `end`, shorter than a block."""
        segs.append(Segment(lane, "on-loop", start, end, None, None, rid))
        self.lanes.append(Segment(loop_lane, "on-loop", start, end, None, None, rid))

    def block(
        self,
        loop_lane: str,
        segs: list[Segment],
        rid: str,
        span: tuple[int, int],
        cpu: int,
        where: str,
        delayed: list[str],
    ) -> None:
        """A run of `rid`'s steps on the loop over `span` that blocked it, delaying `delayed`."""
        start, end = span
        lane = f"request:{rid}"
        segs.append(Segment(lane, "loop-blocked", start, end, cpu, where, rid))
        self.lanes.append(Segment(loop_lane, "loop-blocked", start, end, cpu, where, rid))
        self.blocks.append(LoopBlock(start, end, cpu, rid, where, [where], "code", delayed))

    def trip(
        self,
        segs: list[Segment],
        rid: str,
        label: str,
        times: tuple[int, int, int],
        thread: str,
        cpu: int,
    ) -> PoolCall:
        """A trip through a pool: submitted, started, finished in `thread`; returns the call so
        that its resumption can be filled in."""
        submitted, started, finished = times
        if started > submitted:
            segs.append(Segment(f"request:{rid}", "pool-wait", submitted, started, None, None, rid))
        if finished > started:
            segs.append(Segment(f"request:{rid}", "in-thread", started, finished, cpu, None, rid))
            self.lanes.append(
                Segment(f"thread:{thread}", "in-thread", started, finished, cpu, None, rid)
            )
        call = PoolCall(rid, label, submitted, started, finished, thread, cpu)
        self.calls.append(call)
        return call

    def sample(self, now: int, pool: Semaphore, arriving: int = 0) -> None:
        """The limiter's state, as `CapacityLimiter.statistics()` would give it."""
        waiting = len(pool.waiters) + arriving
        self.samples.append(PoolSample(now, pool.borrowed, pool.total, waiting))
