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
from collections.abc import Generator
from typing import Any

import simpy

from loopscope.sim.phases import NS_PER_MS, Run, Trip, Wait, compile_recipe
from loopscope.sim.primitives import Fused, Semaphore, Worker
from loopscope.sim.record import Recorder
from loopscope.sim.settings import Load, ServerModel
from loopscope.trace.model import PoolCall, Request, Segment, State

Proc = Generator[simpy.Event, Any, Any]
_POOLS = {"pool": "pool", "executor": "executor", "thread": "own"}
MAX_DELAYED = 50
"""At most this many delayed requests are named per loop block (bounded memory)."""


class Engine:
    """One simulation: build with the settings, `run()`, then read the recorded lists."""

    def __init__(self, server: ServerModel, load: Load) -> None:
        self.env = simpy.Environment()
        self.server = server
        self.load = load
        self.rng = random.Random(load.seed)
        self.cores = Semaphore(self.env, server.cores)
        self.client_free = 0
        self.workers = [
            Worker(self.env, i, server.threads, server.executor_size) for i in range(server.workers)
        ]
        self.phases = {route: compile_recipe(r) for route, r in load.recipes.items()}
        self.switch = max(1, round(server.switch_ms * NS_PER_MS))
        self.block = round(server.block_ms * NS_PER_MS)
        self.sending = round(server.client_ms * NS_PER_MS)
        self.before = round(server.send_ms * NS_PER_MS)
        self.after = round(server.reply_ms * NS_PER_MS)
        self.record = Recorder(round(server.block_ms * NS_PER_MS))

    def run(self) -> None:
        """Send the load and run the model until every request is answered."""
        load = self.load
        if load.rate is not None and load.duration_s is not None:
            self.env.process(self._arrivals(load.rate, load.duration_s))
        else:
            for user, plan in enumerate(self._plans()):
                self.env.process(self._user(user, plan))
        # The trace's records stay alive to the end, so the cycle collector would rescan a
        # growing heap again and again for nothing; pausing it doubles the model's speed.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.env.run()
        finally:
            if collecting:
                gc.enable()
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

    def _user(self, user: int, plan: list[tuple[str, str]]) -> Proc:
        for rid, route in plan:
            yield from self._serve(rid, route, user)

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
            self.env.process(self._serve(f"R{number}", route, None, intended=True))

    def _time(self, ns: int) -> int:
        if self.server.exponential and ns > 0:
            return round(self.rng.expovariate(1.0 / ns))
        return ns

    def _compute(self, worker: Worker, ns: int) -> Proc:
        env, gil, cores, switch = self.env, worker.gil, self.cores, self.switch
        while ns > 0:
            if not gil.try_acquire():
                yield gil.acquire()
            if not cores.try_acquire():
                yield cores.acquire()
            piece = ns if ns <= switch else switch
            yield env.timeout(piece)
            ns -= piece
            cores.release()
            gil.release()

    def _on_core(self, ns: int) -> Proc:
        # The database (or the client) works on a core while the caller waits for it.
        if not self.cores.try_acquire():
            yield self.cores.acquire()
        yield self.env.timeout(ns)
        self.cores.release()

    def _steps(self, worker: Worker, steps: tuple[tuple[str, int], ...]) -> Proc:
        cpu = 0
        env, gil, cores, switch = self.env, worker.gil, self.cores, self.switch
        fixed = not self.server.exponential
        for kind, planned in steps:
            if fixed:
                # The common cases without a generator of their own: a wait, or a short CPU
                # stretch with the GIL and a core free (one event each).
                if kind == "io":
                    yield env.timeout(planned)
                    continue
                if kind == "cpu" and planned <= switch and gil.try_acquire():
                    if cores.try_acquire():
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
                yield self.env.timeout(ns)
            else:
                yield from self._on_core(ns)
        return cpu

    def _client(self, ns: int) -> int:
        # The client's one thread serves its work first come, first served: a reservation on
        # its timeline (Lindley's recursion) instead of a queue, so it costs no event. Returns
        # when this piece of work is done.
        now = int(self.env.now)
        start = self.client_free if self.client_free > now else now
        self.client_free = start + ns
        return self.client_free

    def _serve(self, rid: str, route: str, user: int | None, intended: bool = False) -> Proc:
        env = self.env
        send = int(env.now)
        if self.sending:
            # A closed-loop user's send is stamped when the client gets to it; an open-loop
            # request's latency counts from its intended send time.
            started = self._client(self.sending)
            if not intended:
                send = started - self.sending
            yield env.timeout(started - int(env.now))
            # The request is written when the connection is up, a later turn of the client's
            # loop: behind every other user's start that is ready by then.
            written = self._client(0)
            if written + self.before > env.now:
                yield env.timeout(written + self.before - int(env.now))
        elif self.before:
            yield env.timeout(self.before)
        workers = self.workers
        # A new connection goes to the least busy worker, as the one idle in accept() wins it.
        worker = workers[0] if len(workers) == 1 else min(workers, key=lambda w: w.active)
        worker.active += 1
        prefix = f"{worker.pid}/" if len(self.workers) > 1 else ""
        gil, cores, switch = worker.gil, self.cores, self.switch
        fixed = not self.server.exponential
        lane = f"request:{rid}"
        record = self.record
        segs: list[Segment] = []
        mark = send
        state: State = "queued"
        server_start: int | None = None
        server_end = send
        steps = hops = longest = 0
        turns = 1
        call: PoolCall | None = None
        for phase in self.phases[route]:
            if type(phase) is Run:
                loop = worker.loop
                fused = None
                if not loop.try_acquire():
                    # A wake-up takes two turns of the loop: the timer's or the thread's callback
                    # (`call_soon_threadsafe`) sets the future, which schedules the task's step.
                    ns = phase.cpu_only
                    if fixed and 0 <= ns <= switch:
                        fused = Fused(ns, gil, cores)
                    yield loop.acquire(rid, turns, fused)
                start = fused.started if fused is not None and fused.done else int(env.now)
                if start > mark:
                    segs.append(Segment(lane, state, mark, start, None, None, rid))
                if server_start is None:
                    server_start = start
                if call is not None:
                    call.resumed_ns, call = start, None
                cpu = 0
                if fused is not None and fused.done:
                    cores.release()
                    gil.release()
                    cpu = fused.ns
                for kind, planned in () if fused is not None and fused.done else phase.steps:
                    # Inline fast paths (no generator): a wait, or a short CPU stretch with the
                    # GIL and a core free; anything else goes through `_steps`.
                    if fixed:
                        if kind == "io":
                            yield env.timeout(planned)
                            continue
                        if kind == "cpu" and planned <= switch and gil.try_acquire():
                            if cores.try_acquire():
                                yield env.timeout(planned)
                                cores.release()
                                gil.release()
                                cpu += planned
                                continue
                            gil.release()
                    cpu += yield from self._steps(worker, ((kind, planned),))
                end = int(env.now)
                # Those queued for the loop now are the ones a block delayed: read before release.
                delayed = (
                    [t for _, t, _, _ in loop.waiters][:MAX_DELAYED]
                    if end - start > self.block
                    else []
                )
                loop.release()
                if end > start:
                    record.run(worker.lane, segs, rid, (start, end), cpu, phase.where, delayed)
                    longest = max(longest, end - start)
                steps += 1
                mark = server_end = end
            elif type(phase) is Wait:
                if phase.ns == 0 and phase.kind == "await":
                    # A checkpoint (`await sleep(0)`): the task is scheduled again at once, one
                    # turn behind whatever is ready (no turn at all when nothing is).
                    state, turns = "ready", 1
                    continue
                if phase.kind == "adb":
                    yield from self._on_core(self._time(phase.ns))
                else:
                    yield env.timeout(self._time(phase.ns))
                woke = int(env.now)
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
                        # The probe samples the limiter when a call must wait; so does the model.
                        record.sample(int(env.now), sem, 1)
                    yield sem.acquire(rid)
                started = int(env.now)
                if anyio:
                    record.sample(started, sem)
                thread = worker.take_thread(phase.kind, prefix)
                cpu = 0
                for kind, planned in phase.steps:
                    # Inline fast paths (no generator): a wait, or a short CPU stretch with the
                    # GIL and a core free; anything else goes through `_steps`.
                    if fixed:
                        if kind == "io":
                            yield env.timeout(planned)
                            continue
                        if kind == "cpu" and planned <= switch and gil.try_acquire():
                            if cores.try_acquire():
                                yield env.timeout(planned)
                                cores.release()
                                gil.release()
                                cpu += planned
                                continue
                            gil.release()
                    cpu += yield from self._steps(worker, ((kind, planned),))
                finished = int(env.now)
                worker.give_thread(phase.kind, thread)
                sem.release()
                if anyio:
                    record.sample(finished, sem)
                call = record.trip(segs, rid, phase.label, (mark, started, finished), thread, cpu)
                mark, state, turns = finished, "ready", 2
        worker.active -= 1
        if self.after:
            yield env.timeout(self._client(self.after) - int(env.now))
        done = int(env.now)
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
