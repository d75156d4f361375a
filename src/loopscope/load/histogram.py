"""Latency percentiles from an HdrHistogram (the `hdrhistogram` package, as wrk2 uses).

Values are recorded in microseconds from 1 µs to one hour with three significant digits, so a
percentile is within 0.1% of the true value whatever the spread; histograms from several driver
processes merge exactly (`merge`), which averaging percentiles never could.
"""

from __future__ import annotations

from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_DIGITS = 3

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p999", 99.9),
)
"""The percentiles a bench reports (with the maximum), by name."""


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Latency percentiles and the maximum, in ms, over `count` requests."""

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float


class LatencyHistogram:
    """An HdrHistogram of latencies recorded in ns (stored as µs)."""

    def __init__(self) -> None:
        self._hdr = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)

    def record_ns(self, latency_ns: int) -> None:
        """Count one latency (clamped into the histogram's range)."""
        self._hdr.record_value(min(_HIGHEST_US, max(_LOWEST_US, latency_ns // 1000)))

    @property
    def count(self) -> int:
        """How many latencies were recorded."""
        total: int = self._hdr.get_total_count()
        return total

    def percentiles(self) -> Percentiles | None:
        """The percentiles, or `None` when nothing was recorded."""
        if self.count == 0:
            return None
        at = {name: self._hdr.get_value_at_percentile(p) / 1000 for name, p in PERCENTILES}
        return Percentiles(
            count=self.count,
            p50_ms=at["p50"],
            p90_ms=at["p90"],
            p99_ms=at["p99"],
            p999_ms=at["p999"],
            max_ms=self._hdr.get_max_value() / 1000,
            mean_ms=self._hdr.get_mean_value() / 1000,
        )

    def encode(self) -> str:
        """The histogram in HdrHistogram's compressed base64 form (to cross a process)."""
        encoded: bytes = self._hdr.encode()
        return encoded.decode("ascii")

    def merge(self, encoded: str) -> None:
        """Add the latencies of an `encode`d histogram to this one."""
        self._hdr.add(HdrHistogram.decode(encoded.encode("ascii")))
