"""The SimPy model: requests flowing through W workers' loops and pools on C shared cores.

Each request is one SimPy process walking its recipe's phases (`loopscope.sim.phases`). What
holds what:

- a run on the loop holds the worker's loop; its `cpu` steps also take the worker's GIL and a
  core, `io` holds nothing more, `db` makes a core busy for the database;
- a pool trip first waits for a token of anyio's limiter (or the executor), then runs its steps
  in a worker thread: `cpu` takes the GIL and a core, `io` only the thread;
- awaits hold nothing; the task is `ready` from its wake-up until the loop is free.

The GIL: Python code of one process never runs in parallel. CPU steps run in slices of the switch
interval; a slice ends by releasing the GIL, and a thread that wants it back queues behind those
already waiting — CPython's forced switch after `sys.getswitchinterval()` (5 ms). `io`/`db` waits
release the GIL, as `time.sleep` and sqlite3 do. Cores are one FIFO pool shared by every
worker's GIL holder and the database.

Time is virtual: integer ns from 0, the start of the run (no wall clock is read).
"""

from __future__ import annotations

import gc
import random
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import simpy

from loopscope.sim.machine import on_machine
from loopscope.sim.phases import NS_PER_MS, Phase, Run, Trip, Wait, compile_recipe
from loopscope.sim.primitives import Clock, Fused, Plenty, Semaphore, Worker
from loopscope.sim.record import Recorder
from loopscope.sim.settings import Load, ServerModel
from loopscope.trace.model import PoolCall, Request, Segment, State

Proc = Generator[simpy.Event, Any, Any]
_POOLS = {"pool": "pool", "executor": "executor", "thread": "own"}
MAX_DELAYED = 50
"""At most this many delayed requests are named per loop block (bounded memory)."""


def _kinds(phase: Phase) -> list[str]:
    if type(phase) is Wait:
        return [phase.kind]
    return [kind for kind, _ in phase.steps]  # type: ignore[union-attr]


@contextmanager
def paused_collection() -> Iterator[None]:
    """Pause Python's cycle collector while a model runs and its trace is built, then file what
    was built straight into the oldest generation.

    A simulated trace is ~35 tracked objects per request that all stay alive: each automatic
    collection would rescan the growing heap for nothing, and the first one after the run would
    scan every new object once more (as long as the run itself took). Freezing and unfreezing
    moves them, unscanned, to the oldest generation, which the collector visits rarely; the
    model's only cycles (SimPy's environment and its bound methods) are collected there."""
    collecting = gc.isenabled()
    # Someone else's frozen objects (the load driver freezes its heap during a run) must stay
    # frozen: then the new objects are left where they are.
    ours = gc.get_freeze_count() == 0
    gc.disable()
    try:
        yield
    finally:
        if ours:
            gc.freeze()
            gc.unfreeze()
        if collecting:
            gc.enable()


class Engine:
    """One simulation: build with the settings, `run()`, then read the recorded lists."""

    def __init__(self, server: ServerModel, load: Load) -> None:
        self.env = Clock()
        self.server = server
        self.load = load
        self.rng = random.Random(load.seed)
        self.phases = {
            route: compile_recipe(on_machine(r, server.steal)) for route, r in load.recipes.items()
        }
        # Each worker's GIL lets one thread compute at a time; only a database step takes a core
        # besides, so with a core per worker and no database the cores are never short.
        database = any(
            kind in ("db", "adb")
            for phases in self.phases.values()
            for phase in phases
            for kind in _kinds(phase)
        )
        scarce = database or server.cores < server.workers
        self.cores = Semaphore(self.env, server.cores) if scarce else Plenty(self.env, server.cores)
        self.client_free = 0
        self.workers = [
            Worker(self.env, i, server.threads, server.executor_size) for i in range(server.workers)
        ]
        self.switch = max(1, round(server.switch_ms * NS_PER_MS))
        self.block = round(server.block_ms * NS_PER_MS)
        self.sending = round(server.client_ms * NS_PER_MS)
        self.before = round(server.send_ms * NS_PER_MS)
        self.after = round(server.reply_ms * NS_PER_MS)
        self.record = Recorder(round(server.block_ms * NS_PER_MS))

    def run(self) -> None:
        """Send the load and run the model until every request is answered.

        Call with the cycle collector paused (`paused_collection`): the trace's records stay
        alive to the end, so it would rescan a growing heap again and again for nothing."""
        load = self.load
        if load.rate is not None and load.duration_s is not None:
            self.env.process(self._arrivals(load.rate, load.duration_s))
        else:
            for user, plan in enumerate(self._plans()):
                self.env.process(self._serve(plan, user))
        self.env.run_all()
        self.record.requests.sort(key=lambda r: int(r.id[1:]))

    def _plans(self) -> list[list[tuple[str, str]]]:
        # Ids in the order the load driver numbers them: every user's first hit, then second...
        hits = self.load.hits_by_user
        plans: list[list[tuple[str, str]]] = [[] for _ in hits]
        number = 0
        for _ in range(self.load.rounds):
            for k in range(max(len(h) for h in hits)):
                for user, routes in enumerate(hits):
                    if k < len(routes):
                        number += 1
                        plans[user].append((f"R{number}", routes[k]))
        return plans

    def _arrivals(self, rate: float, duration_s: float) -> Proc:
        routes = [route for hits in self.load.hits_by_user for route in hits]
        end = duration_s * 1e9
        number = 0
        while True:
            yield self.env.timeout(round(self.rng.expovariate(rate) * 1e9))
            if self.env.now >= end:
                return
            number += 1
            route = self.rng.choice(routes)
            self.env.process(self._serve([(f"R{number}", route)], None, intended=True))

    def _time(self, ns: int) -> int:
        if self.server.exponential and ns > 0:
            return round(self.rng.expovariate(1.0 / ns))
        return ns

    def _wait(self, ns: int) -> Proc:
        # A wait that nothing can interrupt moves the clock without an event.
        env = self.env
        if not env.skip(env._now + ns):
            yield env.timeout(ns)

    def _compute(self, worker: Worker, ns: int) -> Proc:
        env, gil, cores, switch = self.env, worker.gil, self.cores, self.switch
        need_core = (cores,) if type(cores) is Semaphore else ()
        while ns > 0:
            piece = ns if ns <= switch else switch
            fused = None
            if not gil.try_acquire():
                # The slice starts the moment the GIL is handed over, if a core is free then.
                fused = Fused(piece, need_core)
                yield gil.acquire("", 1, fused)
            if fused is None or not fused.done:
                if not cores.try_acquire():
                    yield cores.acquire()
                if not env.skip(env._now + piece):
                    yield env.timeout(piece)
            ns -= piece
            cores.release()
            gil.release()

    def _on_core(self, ns: int) -> Proc:
        # The database (or the client) works on a core while the caller waits for it.
        env = self.env
        if not self.cores.try_acquire():
            yield self.cores.acquire()
        if not env.skip(env._now + ns):
            yield env.timeout(ns)
        self.cores.release()

    def _steps(self, worker: Worker, steps: tuple[tuple[str, int], ...]) -> Proc:
        """Run `steps` in the current thread of `worker`; returns their CPU time."""
        cpu = 0
        env, gil, cores, switch = self.env, worker.gil, self.cores, self.switch
        fixed = not self.server.exponential
        for kind, planned in steps:
            if fixed:
                # The common cases without a generator of their own: a wait, or a short CPU
                # stretch with the GIL and a core free (one event at most).
                if kind == "io":
                    if not env.skip(env._now + planned):
                        yield env.timeout(planned)
                    continue
                if kind == "cpu" and planned <= switch and gil.try_acquire():
                    if cores.try_acquire():
                        if not env.skip(env._now + planned):
                            yield env.timeout(planned)
                        cores.release()
                        gil.release()
                        cpu += planned
                        continue
                    gil.release()
            ns = self._time(planned)
            if kind == "cpu":
                cpu += ns
                yield from self._compute(worker, ns)
            elif kind == "io":
                yield from self._wait(ns)
            else:
                yield from self._on_core(ns)
        return cpu

    def _client(self, ns: int) -> int:
        # The client's one thread serves its work first come, first served: a reservation on
        # its timeline (Lindley's recursion) instead of a queue, so it costs no event. Returns
        # when this piece of work is done.
        now = self.env._now
        start = self.client_free if self.client_free > now else now
        self.client_free = start + ns
        return self.client_free

    def _serve(self, plan: list[tuple[str, str]], user: int | None, intended: bool = False) -> Proc:
        """Send the requests of `plan` (`(id, route)`) one after the other, each after the
        previous answer: one SimPy process per user (a process per request would add a
        generator to every resumption)."""
        env = self.env
        record = self.record
        fixed = not self.server.exponential
        switch, cores, block = self.switch, self.cores, self.block
        phases = self.phases
        for rid, route in plan:
            send = env._now
            if self.sending:
                # A closed-loop user's send is stamped when the client gets to it; an open-loop
                # request's latency counts from its intended send time.
                started = self._client(self.sending)
                if not intended:
                    send = started - self.sending
                if not env.skip(started):
                    yield env.timeout(started - env._now)
                # The request is written when the connection is up, a later turn of the
                # client's loop: behind every other user's start that is ready by then.
                arrives = self._client(0) + self.before
                if arrives > env._now and not env.skip(arrives):
                    yield env.timeout(arrives - env._now)
            elif self.before:
                yield from self._wait(self.before)
            workers = self.workers
            # A new connection goes to the least busy worker, as the one idle in accept() wins.
            worker = workers[0] if len(workers) == 1 else min(workers, key=lambda w: w.active)
            worker.active += 1
            prefix = f"{worker.pid}/" if len(workers) > 1 else ""
            gil, loop = worker.gil, worker.loop
            # One hand-over stretch per request, reused: it waits in one queue at a time.
            fused = Fused(0, (gil, cores) if type(cores) is Semaphore else (gil,))
            handed = Fused(0, (cores,) if type(cores) is Semaphore else ())
            lane = f"request:{rid}"
            segs: list[Segment] = []
            mark = send
            state: State = "queued"
            server_start: int | None = None
            server_end = send
            steps = hops = longest = 0
            turns = 1
            call: PoolCall | None = None
            for phase in phases[route]:
                if type(phase) is Run:
                    ran = False
                    if not loop.try_acquire():
                        # A wake-up takes two turns of the loop: the timer's or the thread's
                        # callback (`call_soon_threadsafe`) sets the future, which schedules
                        # the task's step.
                        ns = phase.cpu_only
                        if fixed and 0 <= ns <= switch:
                            fused.ns, fused.done = ns, False
                            yield loop.acquire(rid, turns, fused)
                            ran = fused.done
                        else:
                            yield loop.acquire(rid, turns)
                    start = fused.started if ran else env._now
                    if start > mark:
                        segs.append(Segment(lane, state, mark, start, None, None, rid))
                    if server_start is None:
                        server_start = start
                    if call is not None:
                        call.resumed_ns, call = start, None
                    if ran:
                        cores.release()
                        gil.release()
                        cpu = phase.cpu_only
                    else:
                        cpu = 0
                        for kind, planned in phase.steps:
                            # Inline fast path (no generator): a short CPU stretch with the GIL
                            # and a core free; anything else goes through `_steps`.
                            if fixed and kind == "cpu" and planned <= switch and gil.try_acquire():
                                if cores.try_acquire():
                                    if not env.skip(env._now + planned):
                                        yield env.timeout(planned)
                                    cores.release()
                                    gil.release()
                                    cpu += planned
                                    continue
                                gil.release()
                            cpu += yield from self._steps(worker, ((kind, planned),))
                    end = env._now
                    if end - start > block:
                        # Those queued for the loop now are the ones the block delayed.
                        delayed = [t for _, t, _, _ in loop.waiters][:MAX_DELAYED]
                        loop.release()
                        record.block(
                            worker.lane, segs, rid, (start, end), cpu, phase.where, delayed
                        )
                    else:
                        loop.release()
                        if end > start:
                            record.run(worker.lane, lane, segs, rid, start, end)
                    if end - start > longest:
                        longest = end - start
                    steps += 1
                    mark = server_end = end
                elif type(phase) is Wait:
                    if phase.ns == 0 and phase.kind == "await":
                        # A checkpoint (`await sleep(0)`): the task is scheduled again at once,
                        # one turn behind whatever is ready (no turn at all when nothing is).
                        state, turns = "ready", 1
                        continue
                    if phase.kind == "adb":
                        yield from self._on_core(self._time(phase.ns))
                    else:
                        ns = self._time(phase.ns)
                        if not env.skip(env._now + ns):
                            yield env.timeout(ns)
                    woke = env._now
                    if woke > mark:
                        segs.append(Segment(lane, "awaiting", mark, woke, None, None, rid))
                    mark, state, turns = woke, "ready", 2
                else:
                    assert type(phase) is Trip
                    hops += 1
                    anyio = phase.kind == "pool"
                    sem = worker.pool if anyio else getattr(worker, _POOLS[phase.kind])
                    if not sem.try_acquire():
                        if anyio:
                            # The probe samples the limiter when a call must wait; so does
                            # the model.
                            record.sample(env._now, sem, 1)
                        yield sem.acquire(rid)
                    started = env._now
                    if anyio:
                        record.sample(started, sem)
                    thread = worker.take_thread(phase.kind, prefix)
                    cpu = 0
                    for kind, planned in phase.steps:
                        # Inline fast paths (no generator): a wait, or a short CPU stretch that
                        # starts at once or the moment the GIL is handed over with a core free.
                        if fixed and kind == "io":
                            if not env.skip(env._now + planned):
                                yield env.timeout(planned)
                            continue
                        if fixed and kind == "cpu" and planned <= switch:
                            if gil.try_acquire():
                                if cores.try_acquire():
                                    if not env.skip(env._now + planned):
                                        yield env.timeout(planned)
                                    cores.release()
                                    gil.release()
                                    cpu += planned
                                    continue
                                gil.release()
                            else:
                                handed.ns, handed.done = planned, False
                                yield gil.acquire("", 1, handed)
                                if not handed.done:
                                    if not cores.try_acquire():
                                        yield cores.acquire()
                                    if not env.skip(env._now + planned):
                                        yield env.timeout(planned)
                                cores.release()
                                gil.release()
                                cpu += planned
                                continue
                        cpu += yield from self._steps(worker, ((kind, planned),))
                    finished = env._now
                    worker.give_thread(phase.kind, thread)
                    sem.release()
                    if anyio:
                        record.sample(finished, sem)
                    call = record.trip(
                        segs, rid, phase.label, (mark, started, finished), thread, cpu
                    )
                    mark, state, turns = finished, "ready", 2
            worker.active -= 1
            if self.after:
                replied = self._client(self.after)
                if not env.skip(replied):
                    yield env.timeout(replied - env._now)
            done = env._now
            record.requests.append(
                Request(
                    id=rid,
                    method=self.load.recipes[route].method,
                    path=route,
                    route=route,
                    status=200,
                    client_send_ns=send,
                    client_done_ns=done,
                    client_first_byte_ns=done,
                    server_start_ns=server_start,
                    server_end_ns=server_end,
                    user=user,
                    loop_steps=steps,
                    longest_step_ns=longest,
                    pool_hops=hops,
                    segments=segs,
                )
            )
