"""HdrHistogram percentiles: close to the exact ones, and exact when merged across processes."""

from __future__ import annotations

import math
import random

import pytest

from loopscope.load.histogram import LatencyHistogram


def exact(values: list[int], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * percent / 100) - 1)] / 1e6


def test_percentiles_are_within_a_tenth_of_a_percent_of_the_exact_ones() -> None:
    draw = random.Random(3)
    latencies = [int(draw.lognormvariate(17, 1.2)) for _ in range(20_000)]  # ~24 ms median
    histogram = LatencyHistogram()
    for value in latencies:
        histogram.record_ns(value)
    got = histogram.percentiles()
    assert got is not None and got.count == len(latencies)
    for name, percent in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p999_ms", 99.9)):
        assert getattr(got, name) == pytest.approx(exact(latencies, percent), rel=2e-3)
    assert got.max_ms == pytest.approx(max(latencies) / 1e6, rel=2e-3)


def test_merged_histograms_equal_one_histogram_of_everything() -> None:
    draw = random.Random(5)
    parts = [[draw.randrange(1_000, 5_000_000_000) for _ in range(3000)] for _ in range(3)]
    whole, merged = LatencyHistogram(), LatencyHistogram()
    for part in parts:
        one = LatencyHistogram()
        for value in part:
            one.record_ns(value)
            whole.record_ns(value)
        merged.merge(one.encode())
    assert merged.percentiles() == whole.percentiles()


def test_an_empty_histogram_has_no_percentiles() -> None:
    assert LatencyHistogram().percentiles() is None
