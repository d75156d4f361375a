"""Hand-built Traces shaped like the seed's three runs (3 users: login, info, history; 1 s DML).

Times are what the probe would record on a quiet machine: the accept and the route's own Python
code take a fraction of a millisecond, the DML one second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from loopscope.trace import LoopBlock, PoolCall, PoolSample, Request, Run, Segment, State, Trace

T0 = 7_000_000_000_000
MS = 1_000_000
ROUTES = ("/login", "/info", "/history")
DB_LINE = "demo/db.py:41"
THREAD = "AnyIO worker thread"


@dataclass
class Part:
    """One step of a request: its state, length and, for server work, the lane it occupies."""

    state: State
    dur_ms: float
    cpu_ms: float | None = None
    where: str | None = None
    lane: str | None = None


@dataclass
class Builder:
    """Appends requests step by step, mirroring loop and thread work into `trace.lanes`."""

    trace: Trace
    pid: int = 4242
    loop_lane: str = field(init=False)

    def __post_init__(self) -> None:
        self.loop_lane = f"loop:{self.pid}"

    def request(self, rid: str, route: str, send_ns: int, parts: list[Part]) -> Request:
        t = send_ns
        request = Request(
            id=rid,
            method="POST",
            path=route,
            route=route,
            status=200,
            client_send_ns=send_ns,
            client_done_ns=send_ns,
        )
        for part in parts:
            end = t + round(part.dur_ms * MS)
            cpu = None if part.cpu_ms is None else round(part.cpu_ms * MS)
            request.segments.append(
                Segment(f"request:{rid}", part.state, t, end, cpu, part.where, rid)
            )
            lane = part.lane or (
                self.loop_lane if part.state in ("on-loop", "loop-blocked") else None
            )
            if lane is not None:
                self.trace.lanes.append(Segment(lane, part.state, t, end, cpu, part.where, rid))
            if request.server_start_ns is None and part.state != "queued":
                request.server_start_ns = t
            t = end
        request.server_end_ns = t
        request.client_done_ns = t + round(0.2 * MS)
        self.trace.requests.append(request)
        return request


def _run(mode: str, **overrides: object) -> Run:
    run = Run(
        mode=mode,
        app="demo",
        tool_version="0.1.0",
        python="3.11.9",
        users=3,
        io_ms=1000.0,
        block_ms=50.0,
        scenario="seed",
        started_ns=T0,
    )
    for name, value in overrides.items():
        setattr(run, name, value)
    return run


def blocking_trace() -> Trace:
    """Plain `def` routes: each request runs in its own worker thread, all end at ~1.0 s."""
    trace = Trace(run=_run("blocking", precise=True))
    build = Builder(trace)
    for i, route in enumerate(ROUTES):
        rid = f"R{i + 1}"
        send = T0 + round(i * 0.4 * MS)
        thread = f"thread:{THREAD} {i + 1}"
        request = build.request(
            rid,
            route,
            send,
            [
                Part("queued", 1.2),
                Part("on-loop", 0.3),
                Part("pool-wait", 0.05),
                Part("in-thread", 1001.0, cpu_ms=1.5, where=DB_LINE, lane=thread),
                Part("ready", 0.1),
                Part("on-loop", 0.4),
            ],
        )
        waiting, running = request.segments[2], request.segments[3]
        trace.pool.append(
            PoolCall(
                rid,
                "get_user_from_db",
                waiting.start_ns,
                running.start_ns,
                running.end_ns,
                thread.removeprefix("thread:"),
                running.cpu_ns,
            )
        )
        trace.pool_samples.append(PoolSample(running.start_ns, i + 1, 40, 0))
    for i, call in enumerate(sorted(trace.pool, key=lambda c: c.finished_ns or 0)):
        trace.pool_samples.append(PoolSample(call.finished_ns or 0, 2 - i, 40, 0))
    return trace


def async_blocking_trace() -> Trace:
    """`async def` + `time.sleep(1)`: the loop is blocked three times, R2 and R3 wait in the
    accept queue and the requests end at ~1, ~2 and ~3 s."""
    trace = Trace(run=_run("async-blocking", precise=True))
    build = Builder(trace)
    free_at = T0
    for i, route in enumerate(ROUTES):
        rid = f"R{i + 1}"
        send = T0 + round(i * 0.4 * MS)
        queued_ms = (max(free_at, send + round(1.2 * MS)) - send) / MS
        request = build.request(
            rid,
            route,
            send,
            [
                Part("queued", queued_ms),
                Part("on-loop", 0.3),
                Part("loop-blocked", 1001.0, cpu_ms=0.2, where=DB_LINE),
                Part("on-loop", 0.4),
            ],
        )
        block = request.segments[2]
        trace.loop_blocks.append(
            LoopBlock(
                block.start_ns,
                block.end_ns,
                block.cpu_ns,
                rid,
                DB_LINE,
                stack=["demo/routes.py:30 login", "demo/db.py:41 get_user_from_db"],
                delayed=[f"R{j + 1}" for j in range(i + 1, len(ROUTES))],
            )
        )
        free_at = request.server_end_ns or free_at
    return trace


def async_trace() -> Trace:
    """True `async def`: each coroutine gives the loop back at its await; all end at ~1.0 s."""
    trace = Trace(run=_run("async", precise=True))
    build = Builder(trace)
    for i, route in enumerate(ROUTES):
        build.request(
            f"R{i + 1}",
            route,
            T0 + round(i * 0.4 * MS),
            [
                Part("queued", 1.2),
                Part("on-loop", 0.3),
                Part("awaiting", 1000.0, where="demo/db.py:58"),
                Part("ready", 0.05),
                Part("on-loop", 0.4),
            ],
        )
    return trace


def one_thread_trace() -> Trace:
    """A simulated run of the seed's model with one worker thread: R2 and R3 wait for the token."""
    run = _run("one-thread", source="simulated", threads=1)
    run.notes.append("the seed's assumption: one worker thread W")
    trace = Trace(run=run)
    build = Builder(trace)
    free_at = T0
    for i, route in enumerate(ROUTES):
        rid = f"R{i + 1}"
        send = T0 + round(i * 0.4 * MS)
        start = send + round(1.5 * MS)
        wait_ms = max(0.0, (free_at - start) / MS)
        request = build.request(
            rid,
            route,
            send,
            [
                Part("queued", 1.2),
                Part("on-loop", 0.3),
                Part("pool-wait", wait_ms),
                Part("in-thread", 1000.0, cpu_ms=1.0, where=DB_LINE, lane=f"thread:{THREAD} 1"),
                Part("on-loop", 0.3),
            ],
        )
        free_at = request.segments[3].end_ns
    return trace


def client_only_trace() -> Trace:
    """A run measured without the probe: the client's stamps and nothing else."""
    trace = Trace(run=_run("blocking", notes=["measured without the probe"]))
    for i, route in enumerate(ROUTES):
        send = T0 + i * MS
        trace.requests.append(
            Request(f"R{i + 1}", "POST", route, route, 200, send, send + round(1003.0 * MS))
        )
    return trace


def many_requests_trace(n: int, mode: str = "async-many") -> Trace:
    """`n` true-async requests arriving over 50 ms, each with a few short loop steps."""
    trace = Trace(run=_run(mode, users=n))
    build = Builder(trace)
    for i in range(n):
        parts = [Part("queued", 0.5 + (i % 7) * 0.3)]
        for step in range(4):
            parts += [
                Part("on-loop", 0.05 + (i * step % 5) * 0.02),
                Part("awaiting", 20.0 + (i * 13 + step * 7) % 40),
                Part("ready", 0.02 + (i % 3) * 0.1),
            ]
        parts.append(Part("on-loop", 0.2))
        build.request(f"R{i + 1}", ROUTES[i % 3], T0 + round(i * 50 * MS / n), parts)
    return trace


@pytest.fixture
def seed_traces() -> list[Trace]:
    """The seed's three runs: blocking (thread pool), async-blocking, async."""
    return [blocking_trace(), async_blocking_trace(), async_trace()]


@pytest.fixture
def one_thread() -> Trace:
    """The seed's one-worker-thread model, simulated."""
    return one_thread_trace()


@pytest.fixture
def client_only() -> Trace:
    """A run with the client's stamps only."""
    return client_only_trace()


@pytest.fixture
def make_many() -> Callable[[int], Trace]:
    """A factory of true-async runs with `n` requests."""
    return many_requests_trace
