"""Paint the lanes: each request's segments, the loop's lane and the worker threads' lanes.

Pure functions of the probe's records, run when the result is asked for, never on the hot path.
Each request's lane `request:<id>` is painted from `server_start_ns` to `server_end_ns`:

- its loop steps are `on-loop`, or `loop-blocked` when longer than the threshold;
- a gap in which one of its thread-pool calls is in flight is `pool-wait` (submitted → started)
  and `in-thread` (started → finished); after the thread finished, until the next step, `ready`;
  where the wait for the pool overlaps another request's loop block, it is `ready` instead: the
  call had not reached the limiter yet (anyio first yields to the loop), so it was the loop, not
  a token, that it waited for;
- any other gap is `awaiting` up to the moment the next step's handle became runnable, and
  `ready` from then on.

In heartbeat mode (no step timing) a lane holds only what was seen: `pool-wait`, `in-thread` and
`loop-blocked`.
"""

from __future__ import annotations

from loopscope.probe.recorder import RequestRecord, Step
from loopscope.trace.model import LoopBlock, PoolCall, Segment, State, request_lane

COALESCE_NS = 200_000
"""Loop-lane steps of one request closer than this are drawn as one `on-loop` run."""


class _Painter:
    """Builds one request's lane left to right, never overlapping what is already painted."""

    def __init__(self, request_id: str, calls: list[PoolCall], blocks: list[LoopBlock]) -> None:
        self.lane = request_lane(request_id)
        self.request_id = request_id
        self.calls = calls
        self.out: list[Segment] = []
        self.loop_held = sorted(
            (b.start_ns, b.end_ns) for b in blocks if b.request_id != request_id
        )

    def add(
        self, state: State, start: int, end: int, cpu: int | None = None, where: str | None = None
    ) -> None:
        if end > start:
            self.out.append(Segment(self.lane, state, start, end, cpu, where, self.request_id))

    def add_pool_wait(self, start: int, end: int) -> None:
        """`pool-wait`, except where another request held the loop: `ready` there."""
        cursor = start
        for held_start, held_end in self.loop_held:
            s, e = max(held_start, cursor), min(held_end, end)
            if e <= s:
                continue
            self.add("pool-wait", cursor, s)
            self.add("ready", s, e)
            cursor = e
        self.add("pool-wait", cursor, end)

    def idle(self, start: int, end: int, ready: int, after_pool: bool) -> None:
        if after_pool or 0 < ready <= start:
            self.add("ready", start, end)
        elif 0 < ready < end:
            self.add("awaiting", start, ready)
            self.add("ready", ready, end)
        else:
            self.add("awaiting", start, end)

    def gap(self, start: int, end: int, ready: int) -> None:
        """Paint `start`→`end`, a stretch with no loop step of this request."""
        cursor = start
        after_pool = False
        for call in self.calls:
            if call.submitted_ns >= end:
                break
            for piece_start, piece_end, state, cpu in _pool_pieces(call, end):
                s, e = max(piece_start, cursor), min(piece_end, end)
                if e <= s:
                    continue
                if s > cursor:
                    self.idle(cursor, s, 0, after_pool)
                if cpu is not None and piece_end > piece_start:
                    cpu = cpu * (e - s) // (piece_end - piece_start)
                if state == "pool-wait":
                    self.add_pool_wait(s, e)
                else:
                    self.add(state, s, e, cpu)
                cursor = e
                after_pool = state == "in-thread"
        if cursor < end:
            self.idle(cursor, end, ready, after_pool)


def _pool_pieces(call: PoolCall, horizon: int) -> list[tuple[int, int, State, int | None]]:
    started = call.started_ns
    if started is None:
        wait_end = call.resumed_ns or call.finished_ns or horizon
        return [(call.submitted_ns, wait_end, "pool-wait", None)]
    finished = call.finished_ns
    return [
        (call.submitted_ns, started, "pool-wait", None),
        (started, finished or horizon, "in-thread", call.cpu_ns if finished else None),
    ]


def request_segments(
    request_id: str,
    record: RequestRecord,
    steps: list[Step],
    calls: list[PoolCall],
    blocks: dict[int, LoopBlock],
    unseen: list[LoopBlock] | None = None,
) -> list[Segment]:
    """The precise-mode lane of one request, covering `server_start_ns`→`server_end_ns`;
    `unseen` are blocks outside every timed step (uvloop's callbacks outside tasks)."""
    begin = record.start_ns
    finish = record.end_ns or max([begin] + [step[1] for step in steps])
    painter = _Painter(request_id, calls, [*blocks.values(), *(unseen or [])])
    cursor = begin
    for start, end, _, _, ready in steps:
        s, e = max(start, cursor), min(end, finish)
        if e <= s:
            continue
        if s > cursor:
            painter.gap(cursor, s, ready)
        block = blocks.get(start)
        if block is not None:
            cpu = None if block.cpu_ns is None else min(block.cpu_ns, e - s)
            painter.add("loop-blocked", s, e, cpu, block.where)
        else:
            painter.add("on-loop", s, e)
        cursor = e
    if cursor < finish:
        painter.gap(cursor, finish, 0)
    return painter.out


def watched_segments(
    request_id: str, record: RequestRecord, calls: list[PoolCall], blocks: list[LoopBlock]
) -> list[Segment]:
    """The heartbeat-mode lane of one request: its thread-pool trips and the blocks it caused."""
    begin = record.start_ns
    finish = record.end_ns or begin
    painter = _Painter(request_id, calls, blocks)
    pieces: list[tuple[int, int, State, int | None, str | None]] = [
        (s, e, state, cpu, None)
        for call in calls
        for s, e, state, cpu in _pool_pieces(call, finish)
    ]
    pieces += [
        (b.start_ns, b.end_ns, "loop-blocked", b.cpu_ns, b.where)
        for b in blocks
        if b.request_id == request_id
    ]
    cursor = begin
    for start, end, state, cpu, where in sorted(pieces, key=lambda piece: piece[0]):
        s, e = max(start, cursor), min(end, finish)
        if e > s:
            if state == "pool-wait":
                painter.add_pool_wait(s, e)
            else:
                painter.add(state, s, e, cpu, where)
            cursor = e
    return painter.out


def loop_lane(
    pid: int, steps: list[Step], blocks: dict[int, LoopBlock], watched: list[LoopBlock]
) -> list[Segment]:
    """The loop's own lane: coalesced `on-loop` runs and one `loop-blocked` segment per block."""
    lane = f"loop:{pid}"
    out = [
        Segment(lane, "loop-blocked", b.start_ns, b.end_ns, b.cpu_ns, b.where, b.request_id)
        for b in watched
    ]
    run: Segment | None = None
    for start, end, _, request_id, _ in steps:
        block = blocks.get(start)
        if block is not None:
            run = None
            out.append(
                Segment(lane, "loop-blocked", start, end, block.cpu_ns, block.where, request_id)
            )
        elif run is not None and run.request_id == request_id and start - run.end_ns < COALESCE_NS:
            run.end_ns = end
        else:
            run = Segment(lane, "on-loop", start, end, None, None, request_id)
            out.append(run)
    return out


def thread_lanes(pool: list[PoolCall]) -> list[Segment]:
    """One `in-thread` segment per finished pool call, on lane `thread:<label>`."""
    return [
        Segment(
            f"thread:{c.thread}",
            "in-thread",
            c.started_ns,
            c.finished_ns,
            c.cpu_ns,
            None,
            c.request_id,
        )
        for c in pool
        if c.thread is not None and c.started_ns is not None and c.finished_ns is not None
    ]
