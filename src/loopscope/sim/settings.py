"""What a simulation runs: the server model's settings and the load sent to it.

Both are plain frozen records, checked once by `check()`, so an impossible setting (no cores, a
negative time) is one `UsageError` before any model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loopscope.errors import UsageError
from loopscope.sim.machine import MAX_STEAL
from loopscope.sim.recipe import Recipe


@dataclass(frozen=True, slots=True)
class ServerModel:
    """W worker processes, each one event loop with a thread pool of `threads` tokens (anyio's
    limiter) and the loop's default executor, on `cores` cores shared with the database.

    `switch_ms` is CPython's GIL switch interval (`sys.getswitchinterval()`); `block_ms` the
    loop-block threshold, as the probe's. The client is one process with one thread, as the load
    driver is: `client_ms` is its CPU work to start a request (up to its connect), which is why
    its users start a little apart; the request is written in a later turn of the client's loop,
    behind every other user's start that is ready by then (so a burst of 100 users reaches the
    server only after the client has started them all); `reply_ms` is its work to read an
    answer. Client work queues behind the client's other work, on a core of its own. `send_ms` is
    the time from the client's send to the request being ready for the server's loop (kernel,
    accept, headers).
    `steal` is the share of the cores that other processes on the machine take: each `cpu` step
    runs `1 / (1 - steal)` of its time (`loopscope.sim.machine`; a fit measures it from the
    trace's run-queue readings; 0 is a machine that runs only the server and its client).
    `exponential` draws every step's time from an exponential distribution with the recipe's
    time as its mean (for queueing checks); otherwise times are exactly the recipe's.
    """

    workers: int = 1
    threads: int = 40
    cores: int = 2
    executor_threads: int | None = None
    switch_ms: float = 5.0
    block_ms: float = 20.0
    client_ms: float = 0.0
    send_ms: float = 0.0
    reply_ms: float = 0.0
    exponential: bool = False
    steal: float = 0.0

    def check(self) -> None:
        """Raise `UsageError` for a setting no server could have."""
        for name in ("workers", "threads", "cores"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} must be at least 1, not {getattr(self, name)}.")
        if self.executor_threads is not None and self.executor_threads < 1:
            raise UsageError(f"executor threads must be at least 1, not {self.executor_threads}.")
        for name in ("switch_ms", "block_ms"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} must be positive, not {getattr(self, name)}.")
        if not 0 <= self.steal <= MAX_STEAL:
            raise UsageError(f"--steal must be from 0 to {MAX_STEAL:g}, not {self.steal}.")
        for name in ("client_ms", "send_ms", "reply_ms"):
            if not getattr(self, name) >= 0:
                raise UsageError(f"{name} must not be negative, not {getattr(self, name)}.")

    @property
    def executor_size(self) -> int:
        """The default executor's threads: `min(32, cpu + 4)`, as `ThreadPoolExecutor`'s."""
        return self.executor_threads or min(32, self.cores + 4)


@dataclass(frozen=True, slots=True)
class Load:
    """Closed loop: user `u` sends `hits_by_user[u]` (routes of `recipes`) in turn, `rounds`
    times, each after the previous answer. Open loop (`rate` set): requests arrive as a Poisson
    process of `rate` per second for `duration_s`, each a hit drawn from all users' hits.
    `seed` makes the draws reproducible."""

    recipes: dict[str, Recipe]
    hits_by_user: tuple[tuple[str, ...], ...]
    rounds: int = 1
    rate: float | None = None
    duration_s: float | None = None
    seed: int = 0
    max_requests: int = 2_000_000
    io_ms: float | None = field(default=None)

    def check(self) -> None:
        """Raise `UsageError` for a load that cannot be sent."""
        if not self.hits_by_user or any(not hits for hits in self.hits_by_user):
            raise UsageError("A simulation needs at least one user with at least one route.")
        unknown = {h for hits in self.hits_by_user for h in hits} - set(self.recipes)
        if unknown:
            raise UsageError(f"No recipe for {', '.join(sorted(unknown))}; give one with --route.")
        if self.rounds < 1:
            raise UsageError(f"--rounds must be at least 1, not {self.rounds}.")
        if (self.rate is None) != (self.duration_s is None):
            raise UsageError("--rate and --duration go together: give both or neither.")
        if self.rate is not None and self.duration_s is not None:
            if not (self.rate > 0 and self.duration_s > 0):
                raise UsageError("--rate and --duration must be positive.")
            expected = self.rate * self.duration_s
        else:
            expected = self.rounds * sum(len(h) for h in self.hits_by_user)
        if expected > self.max_requests:
            raise UsageError(
                f"The load would send about {expected:.0f} requests; the limit is "
                f"{self.max_requests}. Lower the users, rounds, rate or duration."
            )

    @property
    def users(self) -> int:
        """How many closed-loop users send at once."""
        return len(self.hits_by_user)
