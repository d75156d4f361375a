"""Arrival schedules: constant spacing, seeded Poisson, and the bounds on what a load may ask."""

from __future__ import annotations

import itertools
import statistics

import pytest

from loopscope.errors import UsageError
from loopscope.load.arrivals import MAX_REQUESTS, schedule


def test_constant_arrivals_are_evenly_spaced_at_the_rate() -> None:
    offsets = schedule("constant", 40, 2.0)
    assert len(offsets) == 80
    gaps = {b - a for a, b in itertools.pairwise(offsets)}
    assert gaps == {25_000_000}


def test_a_phase_shifts_a_constant_schedule_by_that_share_of_an_interval() -> None:
    assert schedule("constant", 10, 1.0, phase=0.5)[0] == 50_000_000


def test_poisson_arrivals_repeat_for_a_seed_and_average_the_rate() -> None:
    first = schedule("poisson", 200, 20.0, seed=7)
    assert first == schedule("poisson", 200, 20.0, seed=7)
    assert first != schedule("poisson", 200, 20.0, seed=8)
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(first)]
    # 4000 exponential gaps: the mean is within 5% of 1/rate, and they spread like one
    # (standard deviation equal to the mean), unlike constant arrivals.
    assert statistics.mean(gaps) == pytest.approx(1 / 200, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(1 / 200, rel=0.1)


@pytest.mark.parametrize(
    ("shape", "rate", "duration"),
    [("uniform", 10, 1), ("constant", 0, 1), ("constant", 10, -1), ("constant", MAX_REQUESTS, 2)],
)
def test_bad_schedules_are_usage_errors(shape: str, rate: float, duration: float) -> None:
    with pytest.raises(UsageError):
        schedule(shape, rate, duration)
