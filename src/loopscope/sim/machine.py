"""The rest of the machine: other processes that take the cores from the server's threads.

The probe reads, for a loop block (`LoopBlock.runnable_ns`) and for a worker thread's trip
(`PoolCall.runnable_ns`), how long the thread was ready to run while the OS ran something else
(Linux schedstat). That time is neither the route's work nor its waiting: it is the machine's.
So the fit keeps it out of every recipe and measures instead the machine's `steal`, the share of
a runnable server thread's time that went to other processes:

    steal = Σ runnable / Σ (CPU + runnable)      over every stretch where both were measured

The model then runs each `cpu` step for `1 / (1 - steal)` of its time (a thread gets a core
`1 - steal` of the time it wants one), on top of the contention it simulates itself (the GIL,
`--cores`). This is a fair-share approximation: it holds when the other load is steady over the
run and independent of the server's own load (other processes, not the server's own threads).
`steal = 0` predicts a machine that runs only the server and its client.
"""

from __future__ import annotations

from dataclasses import replace

from loopscope.sim.recipe import Item, PoolStep, Recipe, Step
from loopscope.trace.model import Trace

MAX_STEAL = 0.9
"""Above this the stretch (×10) says more about the measurement than about the machine."""


def measured_steal(trace: Trace) -> float:
    """Other processes' share of the server threads' runnable time in `trace` (0 when the
    trace has no run-queue readings: an older trace, or not Linux)."""
    cpu = runnable = 0
    for block in trace.loop_blocks:
        if block.runnable_ns is not None and block.cpu_ns is not None:
            cpu, runnable = cpu + block.cpu_ns, runnable + block.runnable_ns
    for call in trace.pool:
        if call.runnable_ns is not None and call.cpu_ns is not None:
            cpu, runnable = cpu + call.cpu_ns, runnable + call.runnable_ns
    if cpu + runnable <= 0:
        return 0.0
    return min(MAX_STEAL, max(0.0, runnable / (cpu + runnable)))


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
