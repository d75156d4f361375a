"""Join what the client saw with what the probe recorded in each server process.

Both sides stamp on `time.monotonic_ns()`, so the join is by request id alone: the client's send
time and the server's first sight of a request bound its `queued` segment (the seed's accept
queue), and the probe's segments follow it on the same lane. Any number of `ServerRecord`s join
(one per worker process), and none is needed on either side: without records the trace is the
client's view; without client requests (a pytest run, an untagged client) it is the server's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from loopscope.trace.model import (
    ProbeFailure,
    QueueSample,
    Request,
    Run,
    Segment,
    Trace,
    WorkerLife,
    request_lane,
)
from loopscope.trace.record import WSGI_LOOP, ServerRecord, ServerRequest


def build_trace(
    run: Run,
    requests: Iterable[Request] = (),
    records: Iterable[ServerRecord] = (),
    since_ns: int | None = None,
    accept_queue: Iterable[QueueSample] = (),
    workers: Iterable[WorkerLife] = (),
) -> Trace:
    """A new `Trace` of `run` from the client's `requests` and the probes' `records`, with the
    accept queue's samples and the server's worker processes where they were taken.

    Neither `run` nor the requests are changed: the trace holds copies. A server request no
    client stamped is kept as a server-only request (no client times), unless it began before
    `since_ns` (a warm-up). Loop blocks, pool calls and lanes of no request are kept if they
    ended after `since_ns`; the loop and thread lanes end with the last answer (what the server
    did while shutting down is not part of the run). Queue samples from `since_ns` on are kept;
    `workers` (copied) are marked `recorded` where a record bears their pid, and what they say
    they ran sets `run.loop` and `run.http`.
    """
    run = dataclasses.replace(
        run,
        notes=list(run.notes),
        probe=dict(run.probe),
        probe_failures=[dataclasses.replace(f) for f in run.probe_failures],
    )
    trace = Trace(run=run, requests=[_copy(r) for r in requests])
    by_id = {r.id: r for r in trace.requests}
    after = since_ns if since_ns is not None else -1
    records = list(records)

    unmatched: list[Request] = []
    for record in records:
        for server in record.requests:
            request = by_id.get(server.id)
            if request is not None:
                _join(request, server, record.pid)
            elif server.server_start_ns >= after:
                unmatched.append(_server_only(server, record.pid))
    unmatched.sort(key=lambda r: r.sent_ns)
    trace.requests += unmatched
    by_id.update((r.id, r) for r in unmatched)
    until = max((r.done_ns for r in trace.requests), default=2**63)

    def in_run(request_id: str | None, end_ns: int | None) -> bool:
        # Work done for a request belongs to the run if the request does; work done for none
        # (start-up, a GC pause) if it ended after the run began.
        if request_id is not None:
            return request_id in by_id
        return (end_ns if end_ns is not None else after) >= after

    for record in records:
        trace.loop_blocks += [b for b in record.loop_blocks if in_run(b.request_id, b.end_ns)]
        trace.pool += [c for c in record.pool if in_run(c.request_id, c.finished_ns)]
        trace.pool_samples += [s for s in record.pool_samples if s.t_ns >= after]
        trace.lanes += [
            s for s in record.lanes if in_run(s.request_id, s.end_ns) and s.start_ns <= until
        ]
    trace.accept_queue = [dataclasses.replace(q) for q in accept_queue if q.t_ns >= after]
    trace.workers = _workers(workers, records)
    _describe_workers(run, trace.workers)
    _describe_records(run, records)
    if unmatched and trace.requests != unmatched:
        run.notes.append(
            f"{len(unmatched)} requests reached the server without a loopscope id; they are "
            "kept with the server's view only."
        )
    trace.loop_blocks.sort(key=lambda b: b.start_ns)
    _add_queued_to_delayed(trace)
    trace.pool.sort(key=lambda c: c.submitted_ns)
    trace.pool_samples.sort(key=lambda s: s.t_ns)
    if trace.pool_samples:
        # What the limiter said beats what was configured: the app may set its own tokens.
        run.threads = max(s.total for s in trace.pool_samples)
    return trace


def _workers(workers: Iterable[WorkerLife], records: list[ServerRecord]) -> list[WorkerLife]:
    lives = {w.pid: dataclasses.replace(w) for w in workers}
    for record in records:
        life = lives.setdefault(record.pid, WorkerLife(pid=record.pid, loop=record.loop))
        life.recorded = True
        life.checkpoint_ns = record.checkpoint_ns
    return sorted(lives.values(), key=lambda w: (w.started_ns or 0, w.pid))


def _describe_workers(run: Run, workers: list[WorkerLife]) -> None:
    """What the processes said they ran (the probe's records may say it again, identically)."""
    for attribute in ("loop", "http"):
        seen = {getattr(w, attribute) for w in workers} - {"unknown"}
        if seen:
            setattr(run, attribute, seen.pop() if len(seen) == 1 else "mixed")


def _copy(request: Request) -> Request:
    return dataclasses.replace(request, segments=list(request.segments))


def _describe_records(run: Run, records: list[ServerRecord]) -> None:
    """What the records say about the run: the loop, precise or not, the probe's counts."""
    if not records:
        return
    loops = {r.loop for r in records if r.loop != "unknown"}
    if loops:
        run.loop = loops.pop() if len(loops) == 1 else "mixed"
    run.precise = all(r.precise for r in records)
    for record in records:
        for key, value in dataclasses.asdict(record.counts).items():
            run.probe[key] = run.probe.get(key, 0) + value
        _merge_failures(run.probe_failures, record.failures)
    if run.loop == WSGI_LOOP:
        run.notes.append(
            "A WSGI server: no event loop. Each request held one thread of one worker from the "
            "app's call to the response's close (its thread lane); the wait before a worker "
            "took it (the accept queue) is its 'queued' time, from the client's send."
        )
    elif not run.precise:
        run.notes.append(
            f"The server ran on {run.loop}, whose callbacks loopscope cannot time: only the "
            "watchdog ran, so loop blocks are recorded but per-step segments are not."
        )


def _merge_failures(into: list[ProbeFailure], more: list[ProbeFailure]) -> None:
    for failure in more:
        same = next((f for f in into if (f.hook, f.error) == (failure.hook, failure.error)), None)
        if same is not None:
            same.count += failure.count
        else:
            into.append(dataclasses.replace(failure))


def _join(request: Request, server: ServerRequest, pid: int) -> None:
    request.server_start_ns = server.server_start_ns
    request.server_end_ns = server.server_end_ns
    request.loop_steps = server.loop_steps
    request.longest_step_ns = server.longest_step_ns
    request.pool_hops = server.pool_hops
    request.worker = pid
    if server.route:
        request.route = server.route
    segments = list(server.segments)
    sent = request.client_send_ns
    if sent is not None and server.server_start_ns > sent:
        queued = Segment(
            lane=request_lane(request.id),
            state="queued",
            start_ns=sent,
            end_ns=server.server_start_ns,
            request_id=request.id,
        )
        segments.insert(0, queued)
    request.segments = segments


def _server_only(server: ServerRequest, pid: int) -> Request:
    return Request(
        id=server.id,
        method=server.method,
        path=server.path,
        route=server.route,
        status=server.status,
        client_send_ns=None,
        client_done_ns=None,
        server_start_ns=server.server_start_ns,
        server_end_ns=server.server_end_ns,
        loop_steps=server.loop_steps,
        longest_step_ns=server.longest_step_ns,
        pool_hops=server.pool_hops,
        worker=pid,
        segments=list(server.segments),
    )


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
