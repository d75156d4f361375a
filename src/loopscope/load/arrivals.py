"""When an open-loop load means to send: fixed-rate arrivals, constant or Poisson, seeded.

Each shape is one function behind `ARRIVALS` (the strategy table): it returns the intended send
times, as offsets in ns from the start, of every request in `duration_s` at `rate` per second.
The driver sends each request at its offset whatever the server does, so a slow server is never
sent less (the closed loop's coordinated omission).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from loopscope.errors import UsageError

Arrivals = Callable[[float, float, int, float], list[int]]
"""`(rate, duration_s, seed, phase) -> offsets_ns`; `phase` (0..1) shifts a constant schedule
by that share of one interval, so that several driver processes interleave."""

MAX_REQUESTS = 1_000_000
"""Every load is bounded: rate × duration may not ask for more requests than this."""


def constant(rate: float, duration_s: float, seed: int, phase: float = 0.0) -> list[int]:
    """One request every `1/rate` s (`seed` is unused: there is nothing random)."""
    count = int(rate * duration_s)
    return [round((k + phase) / rate * 1e9) for k in range(count)]


def poisson(rate: float, duration_s: float, seed: int, phase: float = 0.0) -> list[int]:
    """Exponential gaps of mean `1/rate` s (a Poisson process), the same for the same `seed`."""
    draw = random.Random(seed)
    offsets, at = [], draw.expovariate(rate)
    while at < duration_s:
        offsets.append(round(at * 1e9))
        at += draw.expovariate(rate)
    return offsets


ARRIVALS: dict[str, Arrivals] = {"constant": constant, "poisson": poisson}
"""Arrival shape name → the function giving its send offsets."""


def schedule(
    shape: str, rate: float, duration_s: float, seed: int = 0, phase: float = 0.0
) -> list[int]:
    """The intended send offsets (ns) of `shape` at `rate` per second for `duration_s`."""
    if shape not in ARRIVALS:
        raise UsageError(f"Unknown arrivals {shape!r}; use one of {', '.join(ARRIVALS)}.")
    if rate <= 0 or duration_s <= 0:
        raise UsageError(f"Rate and duration must be positive, not {rate:g} and {duration_s:g}.")
    if rate * duration_s > MAX_REQUESTS:
        raise UsageError(
            f"{rate:g} req/s for {duration_s:g} s is more than {MAX_REQUESTS} requests; "
            "lower --rates or --duration."
        )
    return ARRIVALS[shape](rate, duration_s, seed, phase)
