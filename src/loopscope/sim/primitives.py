"""The model's primitives on SimPy: a clock that skips idle waits, a FIFO semaphore, and a
worker process's parts.

SimPy's `Resource` costs several events per request; a request in the model takes a loop, a GIL,
a core or a token many times, so these take a free unit without any event (`try_acquire`) and
hand a released unit straight to the first waiter, starting the waiter's CPU stretch at once
when it can (`Fused`). A wait that nothing else can interrupt costs no event either
(`Clock.skip`). Events are what a simulated request costs in wall time (about 1.5 µs each here).
"""

from __future__ import annotations

from collections import deque
from heapq import heappop

import simpy


class Clock(simpy.Environment):
    """SimPy's environment, with waits that cost no event when nothing can happen meanwhile.
    Its time is integer ns (the model reads `_now` directly: the `now` property is a call)."""

    _now: int

    def __init__(self) -> None:
        super().__init__()
        # SimPy binds `timeout`, `event` and `process` to its own class's instances only; a
        # subclass would build a bound method at every call.
        for name in ("event", "process", "timeout"):
            setattr(self, name, getattr(self, name))

    def run_all(self) -> None:
        """Process every event until none is left: SimPy's `run()` with its `step()` inlined
        (a call per event), for the model's events, which never fail."""
        queue = self._queue
        while queue:
            self._now, _, _, event = heappop(queue)  # type: ignore[assignment]
            callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                raise event._value

    def skip(self, until: int) -> bool:
        """Move the clock to `until` now, if no other event is due by then; `False` if one is
        (then wait with a timeout). This is exactly what a timeout that is the next event would
        do, without creating, queueing and resuming it: nothing else runs in between, so
        nothing could have changed."""
        queue = self._queue
        if queue and queue[0][0] <= until:
            return False
        self._now = until
        return True


class Fused:
    """A short CPU stretch to start the moment a waiter gets its unit, if the other units it
    needs (`needs`: the GIL and a core for the loop, a core for the GIL) are free then: the
    waiter wakes when the stretch is done, one event instead of two. `started` is when it got
    the unit; `done` says whether the stretch ran (else the waiter runs it itself)."""

    __slots__ = ("done", "needs", "ns", "started")

    def __init__(self, ns: int, needs: tuple[Semaphore, ...]) -> None:
        self.ns = ns
        self.needs = needs
        self.started = 0
        self.done = False


class Semaphore:
    """`total` units taken first come, first served; waiters carry a tag (a request id)."""

    __slots__ = ("env", "free", "total", "waiters")

    def __init__(self, env: Clock, total: int) -> None:
        self.env = env
        self.total = total
        self.free = total
        # (event, tag, turns, fused): `turns` > 1 goes to the back of the queue again when its turn
        # comes (a loop callback that only schedules the task), without an event.
        self.waiters: deque[tuple[simpy.Event, str, int, Fused | None]] = deque()

    def try_acquire(self) -> bool:
        """Take a unit if one is free and nobody is queued before us."""
        if self.free and not self.waiters:
            self.free -= 1
            return True
        return False

    def acquire(self, tag: str = "", turns: int = 1, fused: Fused | None = None) -> simpy.Event:
        """An event that fires when a unit is ours (call after `try_acquire` failed), after
        queueing `turns` times."""
        event = self.env.event()
        self.waiters.append((event, tag, turns, fused))
        return event

    def release(self) -> None:
        """Give a unit back; the first waiter, if any, gets it at once."""
        waiters = self.waiters
        while waiters:
            event, tag, turns, fused = waiters.popleft()
            if turns > 1:
                waiters.append((event, tag, turns - 1, fused))
                continue
            if fused is not None and _take_all(fused.needs):
                env = self.env
                fused.started, fused.done = env._now, True
                # What `Event.succeed` does, `ns` later (as SimPy's own `Timeout` does).
                event._ok, event._value = True, None
                env.schedule(event, delay=fused.ns)
                return
            event.succeed()
            return
        self.free += 1

    @property
    def borrowed(self) -> int:
        """Units in use."""
        return self.total - self.free


class Plenty(Semaphore):
    """Units that never run out: the cores, when there are at least as many as GIL holders
    and nothing else (a database) takes one. Taking and giving back then cost nothing."""

    __slots__ = ()

    def try_acquire(self) -> bool:
        """Always `True`: a unit is always free."""
        return True

    def release(self) -> None:
        """Nothing to give back."""


def _take_all(needs: tuple[Semaphore, ...]) -> bool:
    # All or nothing (at most two: the GIL and a core): a unit taken before a busy one is given
    # back.
    if not needs:
        return True
    first = needs[0]
    if not first.try_acquire():
        return False
    if len(needs) > 1 and not needs[1].try_acquire():
        first.release()
        return False
    return True


class Worker:
    """One server process: its event loop, its GIL, anyio's limiter and the default executor,
    with the names of the threads each pool has started (idle ones are reused last-in first-out,
    as anyio's `idle_workers`)."""

    __slots__ = (
        "active",
        "executor",
        "gil",
        "idle",
        "index",
        "lane",
        "loop",
        "own",
        "pid",
        "pool",
        "started",
    )

    def __init__(self, env: Clock, index: int, threads: int, executor: int) -> None:
        self.index = index
        # Virtual pids: a simulated trace names its loop lane like a measured one.
        self.pid = 1000 + index
        self.lane = f"loop:{self.pid}"
        self.loop = Semaphore(env, 1)
        self.gil = Semaphore(env, 1)
        self.pool = Semaphore(env, threads)
        self.executor = Semaphore(env, executor)
        self.active = 0
        # A call's own thread has no limit: as many units as a run could ever need.
        self.own = Semaphore(env, 1 << 40)
        self.idle: dict[str, list[str]] = {"pool": [], "executor": [], "thread": []}
        self.started: dict[str, int] = {"pool": 0, "executor": 0, "thread": 0}

    def take_thread(self, kind: str, prefix: str) -> str:
        """A worker thread's name for a call in `kind`: an idle one, or a new one."""
        idle = self.idle[kind]
        if idle:
            return idle.pop()
        self.started[kind] += 1
        n = self.started[kind]
        names = {"pool": f"AnyIO worker thread #{n}", "executor": f"asyncio_{n - 1}"}
        name = names.get(kind, f"Thread-{n}")
        return f"{prefix}{name}"

    def give_thread(self, kind: str, name: str) -> None:
        """`name` is idle again (a call's own thread ends with it; its name is not reused)."""
        if kind != "thread":
            self.idle[kind].append(name)
