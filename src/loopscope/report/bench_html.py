"""The bench's HTML report: latency-vs-offered-rate curves, one per (server, mode), p50 and p99
on a log scale, each curve's saturation point marked and explained from its model, and every
point's numbers with Little's law checked. Self-contained (inline CSS, no fetches), like the
trace report; `report.png.screenshot` turns it into a PNG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from html import escape
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup

from loopscope import __version__
from loopscope.errors import ReportError
from loopscope.measure.bench import BenchPoint, BenchResult, saturation_point
from loopscope.report._svg import attrs, line, text
from loopscope.report.bench_traces import PointKey, PointTrace
from loopscope.report.words import (
    capacity_text,
    fell_behind_text,
    little_text,
    saturation_text,
)

CURVE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
"""Okabe–Ito, one colour per curve (both of its lines), in the order the curves were run."""

WIDTH, HEIGHT = 1000, 460
LEFT, RIGHT, TOP, BOTTOM = 70, 250, 20, 50


def _y_range(points: list[BenchPoint]) -> tuple[float, float]:
    values = [
        v
        for p in points
        if (lat := p.outcome.latency) is not None
        for v in (lat.p50_ms, lat.p99_ms)
        if v > 0
    ]
    if not values:
        return 0.0, 3.0
    return math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)) + 1e-9)


def _polyline(coords: str, colour: str, dash: str | None) -> str:
    shape = attrs(points=coords, fill="none", stroke=colour, stroke_width=2, stroke_dasharray=dash)
    return f"<polyline{shape}/>"


def _dot(cx: float, cy: float, colour: str, tip: str) -> str:
    return f"<circle{attrs(cx=cx, cy=cy, r=3.5, fill=colour)}><title>{escape(tip)}</title></circle>"


def render_curves(result: BenchResult) -> str:
    """The SVG chart: x the offered rate (req/s), y latency (ms, log), p50 solid, p99 dashed."""
    points = result.points
    x_max = max(p.rate for p in points) * 1.08 if points else 1.0
    lo, hi = _y_range(points)
    hi = max(hi, lo + 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(rate: float) -> float:
        return LEFT + rate / x_max * plot_w

    def y(ms: float) -> float:
        return TOP + plot_h - (math.log10(max(ms, 10**lo)) - lo) / (hi - lo) * plot_h

    parts = [
        f"<svg{attrs(xmlns='http://www.w3.org/2000/svg', width=WIDTH, height=HEIGHT, role='img')}>"
    ]
    parts.append("<title>Latency (from intended send) against offered rate</title>")
    for decade in range(int(lo), int(hi) + 1):
        for factor in (1, 2, 5):
            ms = factor * 10.0**decade
            if ms > 10**hi:
                continue
            parts.append(
                line(
                    x1=LEFT,
                    x2=LEFT + plot_w,
                    y1=y(ms),
                    y2=y(ms),
                    class_="grid" if factor == 1 else "grid minor",
                )
            )
            label = f"{ms:g}" if ms < 1000 else f"{ms / 1000:g} s"
            parts.append(text(label, x=LEFT - 6, y=y(ms) + 4, class_="tick end"))
    for rate in sorted({p.rate for p in points}):
        parts.append(line(x1=x(rate), x2=x(rate), y1=TOP, y2=TOP + plot_h, class_="grid minor"))
        parts.append(text(f"{rate:g}", x=x(rate), y=TOP + plot_h + 16, class_="tick mid"))
    parts.append(
        text("offered rate (req/s)", x=LEFT + plot_w / 2, y=HEIGHT - 10, class_="axis mid")
    )
    middle = TOP + plot_h / 2
    turn = f"rotate(-90 14 {middle})"
    parts.append(text("latency, ms (log)", x=14, y=middle, class_="axis mid", transform=turn))
    legend_y = TOP + 10
    for index, ((server, mode), curve) in enumerate(result.curves().items()):
        colour = CURVE_COLOURS[index % len(CURVE_COLOURS)]
        shown = [p for p in curve if p.outcome.latency is not None]
        for name, dash in (("p50_ms", None), ("p99_ms", "6 4")):
            coords = " ".join(
                f"{x(p.rate):.1f},{y(getattr(p.outcome.latency, name)):.1f}" for p in shown
            )
            if coords:
                parts.append(_polyline(coords, colour, dash))
            for p in shown:
                ms = getattr(p.outcome.latency, name)
                tip = (
                    f"{server} {mode} at {p.rate:g} req/s: {name[:-3]} {ms:,.1f} ms, "
                    f"served {p.outcome.achieved_rps:.1f} req/s"
                )
                parts.append(_dot(x(p.rate), y(ms), colour, tip))
        knee = saturation_point(curve)
        if knee is not None and knee.outcome.latency is not None:
            cy = y(knee.outcome.latency.p99_ms)
            ring = attrs(cx=x(knee.rate), cy=cy, r=9, fill="none", stroke=colour, stroke_width=2.5)
            parts.append(f"<circle{ring}/>")
            parts.append(
                text("saturated", x=x(knee.rate) + 12, y=cy - 8, fill=colour, class_="note")
            )
        capacity = curve[0].capacity.max_rps(result.options.io_ms)
        if capacity is not None and capacity <= x_max:
            parts.append(
                line(
                    x1=x(capacity),
                    x2=x(capacity),
                    y1=TOP,
                    y2=TOP + plot_h,
                    stroke=colour,
                    stroke_dasharray="2 3",
                    class_="model",
                )
            )
            parts.append(
                text(
                    f"model: {capacity:g}/s",
                    x=x(capacity) + 3,
                    y=TOP + 12 + 14 * index,
                    fill=colour,
                    class_="note",
                )
            )
        lx = LEFT + plot_w + 16
        parts.append(
            line(x1=lx, x2=lx + 22, y1=legend_y, y2=legend_y, stroke=colour, stroke_width=2)
        )
        parts.append(text(f"{server} {mode}", x=lx + 28, y=legend_y + 4, class_="legend"))
        legend_y += 20
    lx = LEFT + plot_w + 16
    parts.append(
        line(x1=lx, x2=lx + 22, y1=legend_y + 6, y2=legend_y + 6, stroke="#444", stroke_width=2)
    )
    parts.append(text("p50", x=lx + 28, y=legend_y + 10, class_="legend"))
    parts.append(
        line(
            x1=lx,
            x2=lx + 22,
            y1=legend_y + 26,
            y2=legend_y + 26,
            stroke="#444",
            stroke_width=2,
            stroke_dasharray="6 4",
        )
    )
    parts.append(text("p99", x=lx + 28, y=legend_y + 30, class_="legend"))
    parts.append(line(x1=LEFT, x2=LEFT, y1=TOP, y2=TOP + plot_h, class_="frame"))
    parts.append(line(x1=LEFT, x2=LEFT + plot_w, y1=TOP + plot_h, y2=TOP + plot_h, class_="frame"))
    parts.append("</svg>")
    return "".join(parts)


def _page() -> str:
    return (resources.files("loopscope.report") / "templates" / "bench.html.j2").read_text(
        encoding="utf-8"
    )


def _fmt(ms: float) -> str:
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}"


def _address(path: Path, base: Path | None) -> str:
    """`path` as a link from a page in `base` (relative where it can be)."""
    if base is None:
        return path.as_posix()
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def render_bench_html(
    result: BenchResult,
    title: str = "loopscope bench: server models under open-loop load",
    trace_links: Mapping[PointKey, PointTrace] | None = None,
    base: Path | None = None,
) -> str:
    """The report as one HTML document; `trace_links[(server, mode, rate)]` is where that
    point's trace and timeline were written, where one was kept (linked relative to `base`,
    the folder of the page)."""
    links = trace_links or {}
    options = result.options
    curves = []
    for (server, mode), points in result.curves().items():
        knee = saturation_point(points)
        capacity = points[0].capacity
        rows = []
        for p in points:
            o, lat = p.outcome, p.outcome.latency
            link = links.get((server, mode, p.rate))
            rows.append(
                {
                    "css": "saturated" if p.saturated else "",
                    "rate": f"{p.rate:g}",
                    "served": f"{o.achieved_rps:.1f}",
                    "behind": fell_behind_text(o.send_lag_p99_ms) if o.fell_behind else "",
                    "latency": [
                        _fmt(getattr(lat, n)) if lat else "–"
                        for n in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
                    ],
                    "sent": o.sent,
                    "errors": o.errors,
                    "timeouts": o.timeouts,
                    "cpu": f"{o.driver_cpu:.0%}",
                    "little": little_text(o.in_flight, o.littles_in_flight),
                    "timeline": _address(link.timeline, base) if link else None,
                    "trace": _address(link.trace, base) if link else None,
                }
            )
        curves.append(
            {
                "name": f"{server} · {mode}",
                "saturation": saturation_text(
                    knee.rate if knee else None,
                    knee.outcome.achieved_rps if knee else None,
                    points[-1].rate,
                ),
                "why": capacity_text(
                    server, mode, capacity.slots, capacity.holder, capacity.queue, options.io_ms
                ),
                "rows": rows,
            }
        )
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.from_string(_page()).render(
        title=title,
        version=__version__,
        chart=Markup(render_curves(result)),  # built here with every value escaped
        curves=curves,
        arrivals=options.arrivals,
        duration=f"{options.duration_s:g}",
        io_ms=f"{options.io_ms:g}",
        processes=options.processes,
    )


def write_bench_html(
    result: BenchResult,
    path: str | Path,
    trace_links: Mapping[PointKey, PointTrace] | None = None,
) -> Path:
    """Write the bench report to `path` and return the path; each point with a kept trace
    links to its timeline and its trace JSON."""
    target = Path(path)
    try:
        page = render_bench_html(result, trace_links=trace_links, base=target.parent)
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"Cannot write the report to {target}: {exc.strerror}.") from exc
    return target
