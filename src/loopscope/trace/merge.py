"""Join what the client saw with what the probe recorded in each server process.

Both sides stamp on `time.monotonic_ns()`, so the join is by request id alone: the client's send
time and the server's first sight of a request bound its `queued` segment (the seed's accept
queue), and the probe's segments follow it on the same lane.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from loopscope.errors import TraceFormatError
from loopscope.trace.io import build_record, build_records
from loopscope.trace.model import (
    LoopBlock,
    PoolCall,
    PoolSample,
    Request,
    Run,
    Segment,
    Trace,
    request_lane,
)

_SERVER_FIELDS = ("server_start_ns", "server_end_ns", "loop_steps", "longest_step_ns", "pool_hops")


def build_trace(
    run: Run,
    requests: Iterable[Request],
    probe_records: Iterable[Mapping[str, Any]] = (),
    since_ns: int | None = None,
) -> Trace:
    """A `Trace` of `run` from the client's `requests` and the probes' records (one per worker).

    Without probe records the trace holds the client's view only: times, statuses, no segments.
    Server records that ended before `since_ns` (a warm-up) are left out, and so are the
    requests the client did not send in this run; the loop and thread lanes end with the last
    answer (what the server did while shutting down is not part of the run).
    """
    trace = Trace(run=run, requests=list(requests))
    by_id = {r.id: r for r in trace.requests}
    until = max((r.client_done_ns for r in trace.requests), default=2**63)
    after = since_ns if since_ns is not None else -1

    def in_run(request_id: str | None, end_ns: int | None) -> bool:
        # Work done for a request belongs to the run if the request does; work done for none
        # (start-up, a GC pause) if it ended after the run began.
        if request_id is not None:
            return request_id in by_id
        return (end_ns if end_ns is not None else after) >= after

    precise: list[bool] = []
    unmatched = 0
    for index, record in enumerate(probe_records):
        where = f"probe record {index}"
        if not isinstance(record, Mapping) or not isinstance(record.get("requests"), Mapping):
            raise TraceFormatError(f"{where}: not a probe record (no 'requests' mapping)")
        precise.append(bool(record.get("precise")))
        run.loop = str(record.get("loop", run.loop))
        for key, value in dict(record.get("probe", {})).items():
            run.probe[key] = run.probe.get(key, 0) + int(value)
        for request_id, server in record["requests"].items():
            request = by_id.get(request_id)
            if request is None:
                if since_ns is None or (server.get("server_start_ns") or 0) >= since_ns:
                    unmatched += 1
                continue
            _join(request, server, f"{where}.requests[{request_id!r}]")
        trace.loop_blocks += [
            b
            for b in build_records(LoopBlock, record, "loop_blocks")
            if in_run(b.request_id, b.end_ns)
        ]
        trace.pool += [
            c
            for c in build_records(PoolCall, record, "pool")
            if in_run(c.request_id, c.finished_ns)
        ]
        trace.pool_samples += [
            s for s in build_records(PoolSample, record, "pool_samples") if s.t_ns >= after
        ]
        trace.lanes += [
            s
            for s in build_records(Segment, record, "lanes")
            if in_run(s.request_id, s.end_ns) and s.start_ns <= until
        ]
    if precise:
        run.precise = all(precise)
        if not run.precise:
            run.notes.append(
                f"The server ran on {run.loop}, whose callbacks loopscope cannot time: only the "
                "watchdog ran, so loop blocks are recorded but per-step segments are not."
            )
    if unmatched:
        run.notes.append(f"{unmatched} requests reached the server without a loopscope id.")
    trace.loop_blocks.sort(key=lambda b: b.start_ns)
    _add_queued_to_delayed(trace)
    trace.pool.sort(key=lambda c: c.submitted_ns)
    trace.pool_samples.sort(key=lambda s: s.t_ns)
    if trace.pool_samples:
        # What the limiter said beats what was configured: the app may set its own tokens.
        run.threads = max(s.total for s in trace.pool_samples)
    return trace


def _join(request: Request, server: Any, where: str) -> None:
    if not isinstance(server, Mapping):
        raise TraceFormatError(f"{where}: expected an object")
    for key in _SERVER_FIELDS:
        value = server.get(key)
        if value is not None:
            setattr(request, key, int(value))
    route = server.get("route")
    if isinstance(route, str) and route:
        request.route = route
    segments = [build_record(Segment, item, f"{where}.segments[{i}]")
                for i, item in enumerate(server.get("segments", []))]  # fmt: skip
    if request.server_start_ns is not None and request.server_start_ns > request.client_send_ns:
        queued = Segment(
            lane=request_lane(request.id),
            state="queued",
            start_ns=request.client_send_ns,
            end_ns=request.server_start_ns,
            request_id=request.id,
        )
        segments.insert(0, queued)
    request.segments = segments


def _add_queued_to_delayed(trace: Trace) -> None:
    """Add to each block's `delayed` the requests that sat in the accept queue during it.

    The probe cannot see a request before the app does; the client's send time can.
    """
    queued = [
        (s.start_ns, s.end_ns, r.id)
        for r in trace.requests
        for s in r.segments
        if s.state == "queued"
    ]
    for block in trace.loop_blocks:
        for start, end, request_id in queued:
            overlaps = start < block.end_ns and end > block.start_ns
            if overlaps and request_id not in (block.request_id, *block.delayed):
                block.delayed.append(request_id)
