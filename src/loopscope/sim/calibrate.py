"""Fit the model from a measured trace: each route's recipe, the client's times, the scenario.

A request's segments are read in order and turned into steps:

- `on-loop` → `cpu` (the loop thread was running Python for this request);
- `loop-blocked` → `cpu` for its measured CPU time, `io` for the rest (wall minus CPU), less
  the CPU time the process's worker threads spent meanwhile (the GIL: `loopscope.sim.contention`);
- `awaiting` → `await`; a `ready` or `pool-wait` straight after running on the loop and followed
  by running again is a checkpoint (`await:0`): the task gave the loop up and queued for it again;
- `pool-wait` followed by `in-thread` → a trip: `pool(cpu, io)` (or `executor(...)` for threads
  not named by anyio) with the thread's CPU time and wall minus CPU, less the CPU time the rest
  of the process spent meanwhile (waiting for the GIL is not I/O; the model adds it itself);
- `queued`, other `ready` and the token wait itself are queueing, which the model reproduces.

Per route, the most common sequence of steps wins and each step's time is the median over the
requests that had it. Loop time spent outside any request (accepting connections, parsing
headers) is shared out as a `cpu` step at the start of every request.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from loopscope.errors import UsageError
from loopscope.sim.contention import GilShare, block_runnable, measured_steal
from loopscope.sim.recipe import Item, PoolStep, Recipe, Step
from loopscope.sim.settings import Load, ServerModel
from loopscope.trace.model import Request, Trace

MS = 1e6
Token = tuple[str, float, float]
"""A fitted step before merging: `(kind, ms, cpu_ms)`; kind is cpu, io, await, pool or executor."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """What was fitted: the server model, the load that reproduces the measured run, and the
    routes the fit could not read (no request of theirs had server segments)."""

    server: ServerModel
    load: Load
    skipped: tuple[str, ...] = ()


def _threads(trace: Trace) -> dict[tuple[str, int], str]:
    return {
        (s.request_id or "", s.start_ns): s.lane.removeprefix("thread:")
        for s in trace.lanes
        if s.lane.startswith("thread:")
    }


def _thread_runnable(trace: Trace) -> dict[tuple[str, int], int]:
    # A trip's run-queue time, by its `in-thread` segment (same request, same start).
    return {
        (c.request_id or "", c.started_ns): c.runnable_ns
        for c in trace.pool
        if c.runnable_ns is not None and c.started_ns is not None
    }


def _tokens(
    request: Request,
    threads: dict[tuple[str, int], str],
    runnable_ns: dict[int, int],
    thread_runnable_ns: dict[tuple[str, int], int],
    gil: GilShare,
    steal: float,
) -> list[Token]:
    segs = sorted(request.segments, key=lambda s: s.start_ns)
    tokens: list[Token] = []
    # Where a stretch's run-queue time was not read (a short loop block between two watchdog
    # samples, an older trace), the machine's measured steal estimates it from its CPU.
    unread = steal / (1.0 - steal)
    for i, seg in enumerate(segs):
        ms = seg.duration_ns / MS
        prev = segs[i - 1].state if i else None
        after = segs[i + 1].state if i + 1 < len(segs) else None
        if seg.state == "on-loop":
            # The loop ran this request the whole time, or wanted to: other processes' share
            # of it is the machine's, which the model adds back itself (`sim.machine`).
            cpu = ms * (1.0 - steal)
            tokens.append(("cpu", cpu, cpu))
        elif seg.state == "loop-blocked":
            cpu = min(ms, (seg.cpu_ns or 0) / MS)
            read = runnable_ns.get(seg.start_ns)
            runnable = read / MS if read is not None else cpu * unread
            wait = max(0.0, ms - cpu - runnable - gil.others_cpu_ns(request.id, seg) / MS)
            tokens += [("cpu", cpu, cpu), ("io", wait, 0.0)]
        elif seg.state == "awaiting":
            tokens.append(("await", ms, 0.0))
        elif seg.state in ("ready", "pool-wait"):
            if prev in ("on-loop", "loop-blocked") and after in ("on-loop", "loop-blocked"):
                tokens.append(("await", 0.0, 0.0))
        elif seg.state == "in-thread":
            thread = threads.get((request.id, seg.start_ns), "AnyIO worker thread")
            kind = "pool" if "AnyIO" in thread else "executor"
            cpu = min(ms, (seg.cpu_ns or 0) / MS)
            # Neither the GIL held by the rest of the process nor the time the thread was
            # runnable with no core free is work of the route: both are contention, which the
            # model simulates itself (the GIL; `--cores` and the machine's steal).
            read = thread_runnable_ns.get((request.id, seg.start_ns))
            runnable = read / MS if read is not None else cpu * unread
            others = gil.others_cpu_ns(request.id, seg) / MS
            wait = max(0.0, ms - cpu - runnable - others)
            tokens.append((kind, cpu + wait, cpu))
    return _merge(tokens)


def _merge(tokens: list[Token]) -> list[Token]:
    # Adjacent loop steps of one kind are one step: the probe splits a run where it sees a
    # callback boundary, the model does not need to.
    merged: list[Token] = []
    for kind, ms, cpu in tokens:
        if merged and kind in ("cpu", "io") and merged[-1][0] == kind:
            _, ms0, cpu0 = merged[-1]
            merged[-1] = (kind, ms0 + ms, cpu0 + cpu)
        else:
            merged.append((kind, ms, cpu))
    return merged


def _items(tokens: list[list[Token]]) -> tuple[Item, ...]:
    # Median of each step over the requests that share the shape; pool trips keep CPU and wait.
    items: list[Item] = []
    for position in zip(*tokens, strict=True):
        kind = position[0][0]
        ms = statistics.median(t[1] for t in position)
        if kind in ("pool", "executor"):
            cpu = statistics.median(t[2] for t in position)
            inner = (Step("cpu", _round(cpu)), Step("io", _round(max(0.0, ms - cpu))))
            items.append(PoolStep(kind, tuple(s for s in inner if s.ms > 0) or inner[:1]))
        else:
            items.append(Step(kind, _round(ms)))
    return tuple(items)


def _round(ms: float) -> float:
    return round(ms, 3)


def fit_recipes(trace: Trace) -> tuple[dict[str, Recipe], tuple[str, ...]]:
    """Each route's recipe from the trace's segments, and the routes that could not be fitted:
    the routes' own work, without the machine's steal (`loopscope.sim.machine`)."""
    steal = measured_steal(trace)
    threads = _threads(trace)
    runnable = block_runnable(trace)
    thread_runnable = _thread_runnable(trace)
    gil = GilShare(trace, steal)
    shapes: dict[str, list[list[Token]]] = defaultdict(list)
    methods: dict[str, str] = {}
    routes: list[str] = []
    for request in trace.requests:
        if request.route not in routes:
            routes.append(request.route)
        methods.setdefault(request.route, request.method)
        if any(s.state not in ("queued",) for s in request.segments):
            shapes[request.route].append(
                _tokens(request, threads, runnable, thread_runnable, gil, steal)
            )
    overhead = _unattributed_ms(trace) * (1.0 - steal)
    recipes: dict[str, Recipe] = {}
    for route in routes:
        fitted = [t for t in shapes.get(route, []) if t]
        if not fitted:
            continue
        common = Counter(tuple(k for k, _, _ in t) for t in fitted).most_common(1)[0][0]
        items = _items([t for t in fitted if tuple(k for k, _, _ in t) == common])
        if overhead > 0:
            items = (Step("cpu", _round(overhead)), *items)
        recipes[route] = Recipe(route=route, items=items, method=methods[route])
    skipped = tuple(r for r in routes if r not in recipes)
    return recipes, skipped


def _unattributed_ms(trace: Trace) -> float:
    # Loop time outside every request while the run lasted, per request.
    if not trace.requests:
        return 0.0
    start = min(r.sent_ns for r in trace.requests)
    end = max(r.done_ns for r in trace.requests)
    loose = [
        s
        for s in trace.lanes
        if s.lane.startswith("loop:") and s.request_id is None and start <= s.start_ns <= end
    ]
    return sum(s.duration_ns for s in loose) / MS / len(trace.requests)


def _median_ms(values: list[int]) -> float:
    return statistics.median(values) / MS if values else 0.0


def fit_client(trace: Trace) -> tuple[float, float, float]:
    """`(client_ms, send_ms, reply_ms)`: the client's work per send (how far apart its users'
    first sends are), the least remaining time from send to the loop's pick-up, and the median
    time from the server's end to the client's done."""
    queued = [s.duration_ns for r in trace.requests for s in r.segments[:1] if s.state == "queued"]
    replies = [r.done_ns - r.server_end_ns for r in trace.requests if r.server_end_ns is not None]
    firsts: dict[int, int] = {}
    for r in trace.requests:
        if r.user is not None:
            firsts[r.user] = min(firsts.get(r.user, r.sent_ns), r.sent_ns)
    sends = sorted(firsts.values())
    client = (sends[-1] - sends[0]) / MS / (len(sends) - 1) if len(sends) > 1 else 0.0
    send = max(0.0, (min(queued) / MS if queued else 0.0) - client)
    return client, send, max(0.0, _median_ms(replies))


def _hits(trace: Trace) -> tuple[tuple[str, ...], ...]:
    by_user: dict[int, list[Request]] = defaultdict(list)
    for i, r in enumerate(trace.requests):
        by_user[r.user if r.user is not None else i].append(r)
    rounds = max(1, trace.run.rounds)
    hits = []
    for user in sorted(by_user):
        ordered = sorted(by_user[user], key=lambda r: r.sent_ns)
        per_round = max(1, len(ordered) // rounds)
        hits.append(tuple(r.route for r in ordered[:per_round]))
    return tuple(hits)


def calibrate(trace: Trace, cores: int = 2) -> Calibration:
    """Fit the model to a measured `trace`; a trace without server segments is a `UsageError`."""
    if not trace.requests:
        raise UsageError("The trace holds no requests: there is nothing to calibrate from.")
    if not any(s.state != "queued" for r in trace.requests for s in r.segments):
        raise UsageError(
            "The trace has only the client's view (no probe ran in the server), so the routes' "
            "steps cannot be fitted; record it with `loopscope trace` (the probe is on there)."
        )
    recipes, skipped = fit_recipes(trace)
    client, send, reply = fit_client(trace)
    run = trace.run
    server = ServerModel(
        workers=max(1, run.workers),
        threads=run.threads or 40,
        cores=cores,
        block_ms=run.block_ms or 20.0,
        client_ms=_round(client),
        send_ms=_round(send),
        reply_ms=_round(reply),
        steal=round(measured_steal(trace), 3),
    )
    hits = tuple(h for h in (tuple(r for r in u if r in recipes) for u in _hits(trace)) if h)
    load = Load(recipes=recipes, hits_by_user=hits, rounds=max(1, run.rounds), io_ms=run.io_ms)
    return Calibration(server=server, load=load, skipped=skipped)
