"""A run explained in a few sentences, in the seed's words, with every number taken from the trace.

The vocabulary is the blog post's: the accept queue, the event loop, the worker thread and the
thread pool, coroutines taking turns at their `await`s. The sentences say what blocked, where and
for how long, and who waited for it, so a reader can match the run to the seed's diagrams.
"""

from __future__ import annotations

from loopscope.report.words import (
    MAIN_STORY_SHARE,
    NOT_SAMPLED,
    executor_line,
    format_duration,
    place,
    waited_before_the_app,
)
from loopscope.trace.analysis import (
    UNKNOWN_WHERE,
    BlockGroup,
    has_server_data,
    loop_blocks,
    loop_utilisation,
    makespan_ns,
    percentile,
    span_ns,
    time_by_state,
    top_loop_blocks,
)
from loopscope.trace.executors import executors
from loopscope.trace.model import PoolCall, Trace
from loopscope.trace.processes import queue_peak_during
from loopscope.trace.record import WSGI_LOOP
from loopscope.trace.saturation import (
    peak_concurrency,
    pool_saturation,
)

_LIST_FINISHES_UP_TO = 6
"""Runs this small list every request's finish time ("at 1.0 s, 2.0 s and 3.0 s")."""

NOTABLE_WAIT_NS = 10_000_000
"""Token waits shorter than this (and than 5% of the run) are thread start-up, not contention."""


def explain(trace: Trace) -> list[str]:
    """Sentences that explain `trace`, most important first."""
    if not trace.requests:
        return ["No requests were recorded in this run."]
    sentences: list[str] = []
    if trace.run.source == "simulated":
        sentences.append(
            "Simulated: these numbers come from loopscope's model of the server, not from a "
            "measurement."
        )
    sentences.append(_arrivals(trace))
    if not has_server_data(trace):
        sentences.append(_client_only(trace))
        return sentences
    if trace.run.loop == WSGI_LOOP:
        return [*sentences, _wsgi(trace), *_long_queue(trace)]
    blocked = sum(b.duration_ns for b in loop_blocks(trace))
    if blocked >= MAIN_STORY_SHARE * makespan_ns(trace):
        sentences.extend(_blocked(trace))
    else:
        sentences.extend(_thread_pool(trace) if _mostly_in_threads(trace) else [_coroutines(trace)])
        if blocked:
            sentences.append(_minor_blocks(trace))
        sentences.extend(_long_queue(trace))
    busy = loop_utilisation(trace)
    if busy is not None:
        sentences.append(
            f"The event loop was busy {busy:.1%} of the {format_duration(makespan_ns(trace))} run."
        )
    return sentences


def _mostly_in_threads(trace: Trace) -> bool:
    states = time_by_state(trace)
    total = sum(r.latency_ns for r in trace.requests)
    return states["in-thread"] + states["pool-wait"] >= MAIN_STORY_SHARE * total


def _arrivals(trace: Trace) -> str:
    sends = sorted(r.sent_ns for r in trace.requests)
    if len(sends) == 1:
        return "1 request was sent."
    firsts: dict[int | None, int] = {}
    for request in trace.requests:
        first = firsts.get(request.user)
        if first is None or request.sent_ns < first:
            firsts[request.user] = request.sent_ns
    if len(firsts) < len(sends) and None not in firsts:
        # Several requests per user: only each user's first one was sent at the barrier.
        starts = sorted(firsts.values())
        return (
            f"{len(starts)} users started within {format_duration(starts[-1] - starts[0])} of "
            f"each other and sent {len(sends)} requests in all."
        )
    spread = format_duration(sends[-1] - sends[0])
    return f"{len(sends)} requests were sent within {spread} of each other."


def _client_only(trace: Trace) -> str:
    latencies = sorted(r.latency_ns for r in trace.requests)
    return (
        "No server-side data was recorded (client view only): the requests took "
        f"{format_duration(percentile(latencies, 50))} at the median and {_finishes(trace)}."
    )


def _blocked(trace: Trace) -> list[str]:
    groups = top_loop_blocks(trace, n=3)
    sentences = [f"The event loop was blocked {_how_often(groups[0])} ({_nature(groups[0])})."]
    sentences.extend(f"It was also blocked {_how_often(g)} ({_nature(g)})." for g in groups[1:])
    queued, ready = _held_up(trace)
    serial = peak_concurrency(_in_progress(trace)) <= 1
    if queued:
        blocks = [(b.start_ns, b.end_ns) for b in loop_blocks(trace)]
        place_ = waited_before_the_app(queue_peak_during(trace, blocks))
        waited = f"{_count(len(queued), 'request')} waited {place_}"
        if ready:
            waited += f" and {_count(len(ready), 'woken coroutine')} waited for the loop"
        if serial and len(queued) > 1:
            outcome = f"they ran one after another and {_finishes(trace, subject='')}"
        else:
            outcome = _finishes(trace)
        sentences.append(f"While it was blocked, {waited}: {outcome}.")
    elif ready:
        sentences.append(
            f"While it was blocked, {_count(len(ready), 'woken coroutine')} waited for the "
            f"loop; {_finishes(trace)}."
        )
    else:
        sentences.append(f"Nobody else was waiting while it was blocked; {_finishes(trace)}.")
    return sentences


def _minor_blocks(trace: Trace) -> str:
    top = top_loop_blocks(trace, n=1)[0]
    queued, ready = _held_up(trace)
    held = len(queued | ready)
    holding = f", holding up {_count(held, 'other request')}" if held else ""
    return f"The event loop was also blocked {_how_often(top)} ({_nature(top)}){holding}."


def _how_often(group: BlockGroup) -> str:
    where = _place(group)
    if group.count == 1:
        return f"once, for {format_duration(group.total_ns)}, {where}"
    return f"{group.count} times for {format_duration(group.total_ns)} in total {where}"


def _place(group: BlockGroup) -> str:
    if group.kind == "gc":
        return "by garbage collection"
    if group.where == UNKNOWN_WHERE:
        return f"at {NOT_SAMPLED}"
    return f"at {place(group.where, group.inner)}"


def _nature(group: BlockGroup) -> str:
    if group.cpu_ns is None:
        return "CPU time not measured"
    cpu = format_duration(group.cpu_ns)
    if group.cpu_bound:
        return f"CPU work, not waiting: {cpu} of CPU"
    other = group.other_threads_cpu_ns
    if group.waits_on_threads and other is not None:
        return (
            f"the loop thread waited ({cpu} of its CPU) while other threads of the process "
            f"computed for {format_duration(other)}"
        )
    return f"waiting, not CPU: {cpu} of CPU"


def _held_up(trace: Trace) -> tuple[set[str], set[str]]:
    """(requests in the accept queue, requests ready) while a block held the loop, culprits out."""
    blocks = loop_blocks(trace)
    queued: set[str] = set()
    ready: set[str] = set()
    for request in trace.requests:
        for segment in request.segments:
            if segment.state not in ("queued", "ready"):
                continue
            for block in blocks:
                overlaps = segment.start_ns < block.end_ns and block.start_ns < segment.end_ns
                if overlaps and block.request_id != request.id:
                    (queued if segment.state == "queued" else ready).add(request.id)
    # The probe's own list catches requests whose waiting was not split into segments.
    queued |= {d for b in blocks for d in b.delayed} - ready
    return queued, ready


def _thread_pool(trace: Trace) -> list[str]:
    pool = pool_saturation(trace)
    used = executors(trace)
    if used and not pool.used:
        names = ", ".join(f"`{u.name}`" for u in used)
        sentences = [
            f"The requests' blocking work ran in the threads of {names}; the event loop stayed "
            "free to take requests from the accept queue."
        ]
        sentences += [f"Executor `{u.name}`: {executor_line(u)}." for u in used]
        sentences.append(f"{_overlap(trace)}; {_finishes(trace)}.")
        return sentences
    tokens = f" ({_count(pool.total_tokens, 'token')})" if pool.total_tokens else ""
    sentences = [
        f"The requests' blocking work ran in worker threads of the thread pool{tokens}; the "
        "event loop stayed free to take requests from the accept queue."
    ]
    if pool.peak_borrowed == 1:
        sentences.append("Only 1 worker thread ran at a time.")
    else:
        sentences.append(f"Up to {pool.peak_borrowed} worker threads ran at once.")
    notable = max(NOTABLE_WAIT_NS, 0.05 * makespan_ns(trace))
    waited = [w for w in pool.per_request if w.max_wait_ns >= notable]
    if waited and pool.peak_waiting == 0 and trace.pool_samples:
        longest = format_duration(max(w.max_wait_ns for w in waited))
        sentences.append(
            f"No task waited for a thread-pool token, but {_count(len(waited), 'request')} "
            f"waited up to {longest} for a worker thread to pick their call up (the hand-off)."
        )
    elif waited:
        longest = format_duration(max(w.max_wait_ns for w in waited))
        full = (
            f"; all tokens were in use for {format_duration(pool.full_ns)}" if pool.full_ns else ""
        )
        sentences.append(
            f"{_count(len(waited), 'request')} waited for a thread-pool token, for up to "
            f"{longest}{full}."
        )
    if pool.peak_borrowed <= 1 < len(trace.requests):
        sentences.append(f"The threads' work ran one after another; {_finishes(trace)}.")
    else:
        sentences.append(f"{_overlap(trace)}; {_finishes(trace)}.")
    later = _later_hop_wait(trace, notable)
    if later:
        sentences.append(later)
    sentences += [f"Executor `{u.name}`: {executor_line(u)}." for u in used]
    return sentences


def _later_hop_wait(trace: Trace, notable: float) -> str:
    """Name the longest wait of a request's second or later trip through the pool.

    FastAPI sends a `def` endpoint through the pool and then its response validation too; with
    few tokens the second trip queues behind other requests' first, which the seed's one-thread
    picture (T1, T2, T3) does not show.
    """
    calls: dict[str, list[PoolCall]] = {}
    for call in sorted(trace.pool, key=lambda c: c.submitted_ns):
        if call.request_id is not None and call.executor is None:
            calls.setdefault(call.request_id, []).append(call)
    worst: tuple[int, str, int] | None = None
    for request_id, trips in calls.items():
        for hop, call in enumerate(trips[1:], start=2):
            if call.started_ns is None:
                continue
            wait = call.started_ns - call.submitted_ns
            if wait >= notable and (worst is None or wait > worst[0]):
                worst = (wait, request_id, hop)
    if worst is None:
        return ""
    wait, request_id, hop = worst
    most = max(len(t) for t in calls.values())
    return (
        f"Each request went through the thread pool up to {most} times (FastAPI runs a `def` "
        f"endpoint there, then its response validation); {request_id}'s trip {hop} waited "
        f"{format_duration(wait)} for a token behind other requests' work."
    )


def _wsgi(trace: Trace) -> str:
    """A WSGI server's run: no event loop, each request holds one worker thread throughout."""
    run = trace.run
    threads = run.threads or 1
    return (
        "A WSGI server, no event loop: each request held one thread of one worker process "
        f"from the app's call to its answer ({_count(run.workers, 'worker')} × "
        f"{_count(threads, 'thread')}: at most {run.workers * threads} requests at once). "
        f"{_overlap(trace)}; {_finishes(trace)}."
    )


def _coroutines(trace: Trace) -> str:
    count = len(trace.requests)
    if peak_concurrency(_in_progress(trace)) >= count > 1:
        return (
            f"All {count} requests overlapped: each coroutine gave the loop back at its await; "
            f"{_finishes(trace)}."
        )
    return (
        f"{_overlap(trace)}: coroutines took turns on the loop, switching at their awaits; "
        f"{_finishes(trace)}."
    )


def _overlap(trace: Trace) -> str:
    count = len(trace.requests)
    peak = peak_concurrency(_in_progress(trace))
    if peak >= count > 1:
        return f"All {count} requests overlapped"
    if peak <= 1:
        return f"The {count} requests ran one after another"
    return f"Up to {peak} of the {count} requests were in progress at once"


def _in_progress(trace: Trace) -> list[tuple[int, int]]:
    """Each request's time inside the server (its segments after the accept queue)."""
    intervals = []
    for request in trace.requests:
        served = [s for s in request.segments if s.state != "queued"]
        if served:
            intervals.append((min(s.start_ns for s in served), max(s.end_ns for s in served)))
        elif request.server_start_ns is not None and request.server_end_ns is not None:
            intervals.append((request.server_start_ns, request.server_end_ns))
        else:
            intervals.append((request.sent_ns, request.done_ns))
    return intervals


def _finishes(trace: Trace, subject: str = "they ") -> str:
    start = (span_ns(trace) or (0, 0))[0]
    done = sorted(r.done_ns - start for r in trace.requests)
    if 1 < len(done) <= _LIST_FINISHES_UP_TO:
        times = [format_duration(t) for t in done]
        if len(set(times)) == 1:
            return f"{subject}all finished at {times[0]}"
        return f"{subject}finished at {', '.join(times[:-1])} and {times[-1]}"
    return f"the last finished at {format_duration(done[-1])}"


def _long_queue(trace: Trace) -> list[str]:
    """The longest wait in the accept queue, when it is a noticeable part of the run."""
    waits = [
        (s.duration_ns, r.id) for r in trace.requests for s in r.segments if s.state == "queued"
    ]
    if not waits:
        return []
    longest, rid = max(waits)
    if longest < max(QUEUE_NOTICE_NS, QUEUE_NOTICE_SHARE * makespan_ns(trace)):
        return []
    spans = [
        (seg.start_ns, seg.end_ns)
        for r in trace.requests
        if r.id == rid
        for seg in r.segments
        if seg.state == "queued"
    ]
    where = waited_before_the_app(queue_peak_during(trace, spans))
    return [f"{rid} waited longest before the app saw it, {where}: {format_duration(longest)}."]


QUEUE_NOTICE_NS = 10_000_000
"""Accept-queue waits shorter than this are the normal cost of taking a connection."""
QUEUE_NOTICE_SHARE = 0.05
"""...and so are waits under this share of the run."""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
