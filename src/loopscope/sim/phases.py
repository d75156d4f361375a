"""A recipe compiled for the engine: runs on the loop, waits, and trips through a pool.

A *run* is what the probe sees as one loop step: the steps a task executes on the loop between
two points where it gives the loop up (an await, a pool call, the end). Every await and every pool
trip is followed by a run, possibly empty, because the task must get the loop back to go on; the
first run is the request's pick-up from the accept queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopscope.sim.recipe import BLOCKING_KINDS, PoolStep, Recipe, Step

NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Run:
    """Steps on the loop, as `(kind, ns)`; `where` names the step most to blame if it blocks."""

    steps: tuple[tuple[str, int], ...]
    where: str
    cpu_only: int = -1
    """The run's time if it is one `cpu` step (the engine's fast path), else -1."""


@dataclass(frozen=True, slots=True)
class Wait:
    """A non-blocking wait: `await` (a timer, a socket) or `adb` (the DB works on a core)."""

    kind: str
    ns: int


@dataclass(frozen=True, slots=True)
class Trip:
    """Steps in a worker thread of `kind` (`pool` or `executor`); `label` is the PoolCall's func."""

    kind: str
    steps: tuple[tuple[str, int], ...]
    label: str


Phase = Run | Wait | Trip


def _ns(step: Step) -> tuple[str, int]:
    return step.kind, round(step.ms * NS_PER_MS)


def _merged(steps: list[Step]) -> tuple[tuple[str, int], ...]:
    # Back-to-back CPU steps are one stretch of CPU work: one event in the model, not several.
    out: list[tuple[str, int]] = []
    for step in steps:
        if step.ms <= 0:
            continue
        kind, ns = _ns(step)
        if out and kind == "cpu" and out[-1][0] == "cpu":
            out[-1] = ("cpu", out[-1][1] + ns)
        else:
            out.append((kind, ns))
    return tuple(out)


def _where(route: str, steps: list[Step]) -> str:
    # A block is blamed on its longest blocking wait, else on its longest CPU step.
    blocking = [s for s in steps if s.kind in BLOCKING_KINDS]
    culprit = max(blocking or steps, key=lambda s: s.ms, default=None)
    # Step first: a `where` starting with "/" would read as a file path to the report.
    return f"{culprit} in {route}" if culprit else route


def compile_recipe(recipe: Recipe) -> tuple[Phase, ...]:
    """The phases of `recipe`, always starting and ending with a `Run`."""
    phases: list[Phase] = []
    pending: list[Step] = []
    trips = 0

    def close_run() -> None:
        steps = [s for s in pending if s.ms > 0]
        merged = _merged(steps)
        cpu_only = merged[0][1] if len(merged) == 1 and merged[0][0] == "cpu" else -1
        phases.append(Run(merged, _where(recipe.route, steps), cpu_only))
        pending.clear()

    for item in recipe.items:
        if isinstance(item, PoolStep):
            close_run()
            trips += 1
            label = f"{recipe.route} {item.kind}#{trips}"
            phases.append(Trip(item.kind, _merged(list(item.steps)), label))
        elif item.kind in ("await", "adb"):
            close_run()
            phases.append(Wait(item.kind, _ns(item)[1]))
        else:
            pending.append(item)
    close_run()
    return tuple(phases)
