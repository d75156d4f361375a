"""Trace → Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and chrome://tracing open.

Each run becomes one process named after its mode; each lane (the event loop, every worker
thread, every request) one thread. Segments are complete (`"X"`) events with their request,
route, state, CPU time and source line in `args`; loop blocks get a lane of their own, the
thread-pool limiter and the kernel's accept queue counter tracks. Times are µs from each run's
first client send (shifted together when some run recorded work before it), so runs opened
together line up, as in the HTML report.

Format: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
"""

from __future__ import annotations

from typing import Any

from loopscope.trace.analysis import span_ns
from loopscope.trace.model import Segment, Trace, request_lane

_LANE_ORDER = {"loop": 0, "thread": 1, "blocks": 2, "request": 3}


def to_chrome(traces: list[Trace]) -> dict[str, Any]:
    """The Chrome trace-event document for `traces`: one process per run, one thread per lane.

    The result is JSON-ready (`json.dumps` it as is).
    """
    events: list[dict[str, Any]] = []
    for index, trace in enumerate(traces):
        events.extend(_run_events(trace, pid=index + 1))
    # Work recorded before the first send (server start-up) would get a negative timestamp,
    # which some viewers drop; one shift for all runs keeps them lined up with each other.
    earliest = min((e["ts"] for e in events if "ts" in e), default=0.0)
    if earliest < 0:
        for event in events:
            if "ts" in event:
                event["ts"] = round(event["ts"] - earliest, 3)
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _run_events(trace: Trace, pid: int) -> list[dict[str, Any]]:
    run = trace.run
    origin = (span_ns(trace) or (0, 0))[0]
    label = f"{run.mode} — {run.source} ({run.app})" if run.app else f"{run.mode} — {run.source}"
    events: list[dict[str, Any]] = [
        _meta(pid, 0, "process_name", {"name": label}),
        _meta(pid, 0, "process_sort_index", {"sort_index": pid}),
    ]
    tids: dict[str, int] = {}

    def tid(lane: str, name: str) -> int:
        if lane not in tids:
            tids[lane] = len(tids) + 1
            sort = _LANE_ORDER.get(lane.split(":", 1)[0], 4) * 100_000 + tids[lane]
            events.append(_meta(pid, tids[lane], "thread_name", {"name": name}))
            events.append(_meta(pid, tids[lane], "thread_sort_index", {"sort_index": sort}))
        return tids[lane]

    routes = {r.id: r.route for r in trace.requests}
    for segment in sorted(trace.lanes, key=lambda s: (s.lane, s.start_ns)):
        kind, _, name = segment.lane.partition(":")
        title = f"event loop (pid {name})" if kind == "loop" else f"thread {name}"
        events.append(_segment(segment, pid, tid(segment.lane, title), origin, routes))
    if trace.loop_blocks:
        blocks_tid = tid("blocks:", "loop blocks")
        for block in trace.loop_blocks:
            args = {
                "request": block.request_id,
                "route": routes.get(block.request_id or ""),
                "where": block.where,
                "inner": block.inner,
                "cpu_ms": _ms(block.cpu_ns),
                "kind": block.kind,
                "stack": block.stack,
                "delayed": block.delayed,
            }
            name = f"blocked at {block.where}" if block.where else "loop blocked"
            if block.where and block.inner:
                name += f" → {block.inner}"
            events.append(
                _complete(name, "loop-block", pid, blocks_tid, block.start_ns, block.end_ns, origin)
                | {"args": args}
            )
    for request in trace.requests:
        lane = request_lane(request.id)
        request_tid = tid(lane, f"{request.id} {request.method} {request.route}")
        # A slice that sticks out of its parent breaks the nesting Perfetto expects, so the whole
        # request is drawn as a parent only when every segment fits inside it.
        if all(
            request.sent_ns <= s.start_ns and s.end_ns <= request.done_ns for s in request.segments
        ):
            whole = _complete(
                f"{request.method} {request.route}",
                "request",
                pid,
                request_tid,
                request.sent_ns,
                request.done_ns,
                origin,
            )
            whole["args"] = {"request": request.id, "status": request.status, "path": request.path}
            events.append(whole)
        for segment in sorted(request.segments, key=lambda s: s.start_ns):
            events.append(_segment(segment, pid, request_tid, origin, routes, request.id))
    for sample in sorted(trace.pool_samples, key=lambda s: s.t_ns):
        events.append(
            {
                "name": "thread-pool tokens",
                "ph": "C",
                "pid": pid,
                "ts": _us(sample.t_ns - origin),
                "args": {"borrowed": sample.borrowed, "waiting": sample.waiting},
            }
        )
    for queued in trace.accept_queue:
        events.append(
            {
                "name": "accept queue (kernel)",
                "ph": "C",
                "pid": pid,
                "ts": _us(queued.t_ns - origin),
                "args": {"connections": queued.depth},
            }
        )
    return events


def _segment(
    segment: Segment,
    pid: int,
    tid: int,
    origin: int,
    routes: dict[str, str],
    request_id: str | None = None,
) -> dict[str, Any]:
    rid = segment.request_id or request_id
    event = _complete(
        segment.state, segment.state, pid, tid, segment.start_ns, segment.end_ns, origin
    )
    event["args"] = {
        "request": rid,
        "route": routes.get(rid or ""),
        "state": segment.state,
        "cpu_ms": _ms(segment.cpu_ns),
        "where": segment.where,
    }
    return event


def _complete(
    name: str, cat: str, pid: int, tid: int, start_ns: int, end_ns: int, origin: int
) -> dict[str, Any]:
    return {
        "name": name,
        "cat": cat,
        "ph": "X",
        "pid": pid,
        "tid": tid,
        "ts": _us(start_ns - origin),
        "dur": _us(max(0, end_ns - start_ns)),
    }


def _meta(pid: int, tid: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": args}


def _us(ns: int) -> float:
    return round(ns / 1000, 3)


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)
