"""The rest of the machine: other processes that take the cores from the server's threads.

The probe reads, for a loop block (`LoopBlock.runnable_ns`) and for a worker thread's trip
(`PoolCall.runnable_ns`), how long the thread was ready to run while the OS ran something else
(Linux schedstat). That time is neither the route's work nor its waiting: it is the machine's.
So the fit keeps it out of every recipe and measures instead the machine's `steal`, the share of
a runnable server thread's time that went to other processes
(`loopscope.sim.contention.measured_steal`):

    steal = Σ runnable / Σ (CPU + runnable)      over the stretches that had their process alone

A stretch counts where it was CPU-bound (the thread wanted a core at least half its wall time,
and did at least 1 ms of work) and the rest of its process did next to nothing meanwhile. A
thread that wakes from a wait together with many others (40 pool threads whose sleeps end at
once), or that hands the GIL back and forth with another CPU-bound thread (each hand-over wakes
a thread, which then queues for a core), queues behind its own process, which the model
simulates itself; that says nothing about the rest of the machine.
The model then runs each `cpu` step for `1 / (1 - steal)` of its time (a thread gets a core
`1 - steal` of the time it wants one), on top of the contention it simulates itself (the GIL,
`--cores`). This is a fair-share approximation: it holds when the other load is steady over the
run and independent of the server's own load (other processes, not the server's own threads).
`steal = 0` predicts a machine that runs only the server and its client.
"""

from __future__ import annotations

from dataclasses import replace

from loopscope.sim.recipe import Item, PoolStep, Recipe, Step

MAX_STEAL = 0.9
"""Above this the stretch (×10) says more about the measurement than about the machine."""


CPU_BOUND = 0.5
"""A stretch is CPU-bound when CPU plus run-queue time is at least this share of its wall."""
MIN_CPU_NS = 1_000_000
"""...and it did at least this much work: in a short trip (a response's validation, 20 µs) the
wake-up's own wait for a core outweighs the work and says nothing of the machine."""


def cpu_bound(wall_ns: int, cpu_ns: int, runnable_ns: int) -> bool:
    """Whether the thread wanted a core for most of the stretch (`CPU_BOUND`) and did real
    work in it (`MIN_CPU_NS`)."""
    return cpu_ns >= MIN_CPU_NS and cpu_ns + runnable_ns >= CPU_BOUND * wall_ns


def _stretch(items: tuple[Item, ...], factor: float) -> tuple[Item, ...]:
    out: list[Item] = []
    for item in items:
        if isinstance(item, PoolStep):
            out.append(PoolStep(item.kind, tuple(_step(s, factor) for s in item.steps)))
        else:
            out.append(_step(item, factor))
    return tuple(out)


def _step(step: Step, factor: float) -> Step:
    return Step("cpu", step.ms * factor) if step.kind == "cpu" else step


def on_machine(recipe: Recipe, steal: float) -> Recipe:
    """`recipe` as it runs on a machine whose other processes take `steal` of the cores:
    every `cpu` step takes `1 / (1 - steal)` of its time."""
    if steal <= 0:
        return recipe
    return replace(recipe, items=_stretch(recipe.items, 1.0 / (1.0 - min(steal, MAX_STEAL))))
