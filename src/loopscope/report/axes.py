"""The frame around the timeline's lanes: the legend, the time axis and the makespan marker.

Also the page geometry the timeline lays its lanes out in (`WIDTH`, `LABEL_W`, `PLOT_W`).
"""

from __future__ import annotations

import math

from loopscope.report import _svg
from loopscope.report.palette import CLIENT_COLOUR, MAKESPAN_COLOUR, STATE_COLOURS, STATE_LABELS
from loopscope.report.words import format_duration

WIDTH = 1200
"""Width of a timeline's SVG in px (it scales down with the page)."""
LABEL_W = 210
"""Room for the lane labels left of the plot."""
PLOT_W = WIDTH - LABEL_W - 40
"""Width of the plot area: the run's time span (plus 2%) maps onto it."""


def legend() -> str:
    """Swatches for every state (always all, so runs side by side read the same)."""
    items = [_svg.rect(width=16, height=12, fill=STATE_COLOURS[s], rx=2) for s in STATE_COLOURS]
    labels = list(STATE_LABELS.values())
    items.append(_svg.rect(y=5.5, width=16, height=1, fill=CLIENT_COLOUR))
    labels.append("in flight (client view)")
    items.append(_svg.rect(y=8, width=16, height=4, class_="cpu"))
    labels.append("CPU share")
    out = ['<g class="legend">']
    x, y = 8, 8
    for swatch, label in zip(items, labels, strict=True):
        # 6.6 px per character approximates 12 px sans-serif well enough to lay out one row.
        item_w = 34 + round(6.6 * len(label))
        if x + item_w > WIDTH:
            x, y = 8, y + 20
        out.append(f'<g transform="translate({x} {y})">{swatch}')
        out.append(_svg.text(label, x=21, y=10, class_="legend-text") + "</g>")
        x += item_w
    out.append("</g>")
    return "".join(out)


def time_axis(span: int, scale: float, top: int, bottom: int) -> str:
    """Gridlines and tick labels in ms since the first request was sent."""
    span_ms = span * 1.02 / 1e6
    step = _svg.nice_step(span_ms)
    out = ['<g class="axis">']
    ticks = int(span_ms / step) + 1
    for i in range(ticks):
        ms = i * step
        x = LABEL_W + ms * 1e6 * scale
        out.append(_svg.line(x1=x, y1=top - 4, x2=x, y2=bottom + 4, class_="grid"))
        label = f"{ms:g}" if step >= 1 else f"{ms:.{_decimals(step)}f}"
        out.append(_svg.text(label, x=x, y=bottom + 18, class_="tick"))
    out.append(
        _svg.text(
            "ms since the first request was sent",
            x=LABEL_W + PLOT_W / 2,
            y=bottom + 34,
            class_="axis-title",
        )
    )
    out.append("</g>")
    return "".join(out)


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step)))


def makespan_marker(makespan_ns: int, x: float, top: int, bottom: int) -> str:
    """A dashed line at `x`, where the last response arrived, labelled with the makespan."""
    label = f"all done at {format_duration(makespan_ns)}"
    anchor = "end" if x > LABEL_W + PLOT_W * 0.85 else "start"
    return (
        f'<g class="makespan"{_svg.attrs(data_makespan_ms=f"{makespan_ns / 1e6:.3f}")}>'
        + _svg.line(
            x1=x,
            y1=top - 6,
            x2=x,
            y2=bottom + 4,
            stroke=MAKESPAN_COLOUR,
            stroke_width=1.5,
            stroke_dasharray="5 3",
        )
        + _svg.text(
            label,
            x=x + (-4 if anchor == "end" else 4),
            y=top - 8,
            class_="makespan-label",
            text_anchor=anchor,
        )
        + "</g>"
    )
