"""The console rendering of a bench: one row per (server, mode, rate) point, then each curve's
saturation point and its explanation from the model."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from loopscope.measure.bench import BenchResult, saturation_point
from loopscope.report.words import capacity_text, fell_behind_text, saturation_text


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def bench_table(result: BenchResult) -> Table:
    """Every point: offered and served rate, the corrected percentiles, failures, driver CPU.
    A saturated point is red and marked `*`; a point where the driver fell behind shows no
    percentiles (they would measure the driver)."""
    table = Table(
        title=(
            "latency (ms) from the intended send (open loop), req/s offered and served, "
            "driver CPU; * saturated"
        ),
        box=box.SIMPLE,
        pad_edge=False,
    )
    # One folding column for the curve's name keeps the numbers whole in 80 columns.
    table.add_column("server mode", overflow="fold", min_width=12)
    for header in ("offer", "served", "p50", "p90", "p99", "p99.9", "max", "fail", "cpu"):
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    for point in result.points:
        o, latency = point.outcome, point.outcome.latency
        cells = [
            _ms(getattr(latency, name) if latency else None)
            for name in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
        ]
        if o.fell_behind:
            cells = ["driver", "fell", "behind", "–", "–"]
        table.add_row(
            f"{point.server} {point.mode}",
            f"{point.rate:g}" + ("*" if point.saturated else ""),
            f"{o.achieved_rps:.1f}",
            *cells,
            f"{o.errors + o.timeouts}",
            f"{o.driver_cpu:.0%}",
            style="red" if point.saturated else None,
        )
    return table


def bench_summary(result: BenchResult) -> RenderableType:
    """The table, then per curve: where it saturated, and why, from the model."""
    lines: list[RenderableType] = [bench_table(result)]
    io_ms = result.options.io_ms
    for (server, mode), points in result.curves().items():
        knee = saturation_point(points)
        capacity = points[0].capacity
        said = saturation_text(
            knee.rate if knee else None,
            knee.outcome.achieved_rps if knee else None,
            points[-1].rate,
        )
        why = capacity_text(server, mode, capacity.slots, capacity.holder, capacity.queue, io_ms)
        lines.append(Text(f"{server} {mode}: {said}. {why}.", style="bold" if knee else ""))
        for point in points:
            if point.outcome.fell_behind:
                said = fell_behind_text(point.outcome.send_lag_p99_ms)
                lines.append(Text(f"  {point.rate:g} req/s: {said}."))
    return Group(*lines)
