"""The at-a-glance chart: one bar per run from the first send to the last response.

This is the seed's headline — blocking code done at T4, async at T1.5 — as bars on one scale.
"""

from __future__ import annotations

from loopscope.report import _svg
from loopscope.report.words import format_duration
from loopscope.trace.analysis import makespan_ns
from loopscope.trace.model import Trace

WIDTH = 1200
LABEL_W = 260
BAR_H = 22
ROW_H = 32
BAR_COLOURS = {"measured": "#0072B2", "simulated": "#E69F00"}
"""Measured runs in blue, simulated ones in orange (Okabe–Ito), as in the run headings."""


def render_makespan_chart(traces: list[Trace]) -> str:
    """An SVG with one horizontal bar per run, its length the run's makespan, on one scale."""
    longest = max((makespan_ns(t) for t in traces), default=0) or 1
    plot_w = WIDTH - LABEL_W - 120
    height = ROW_H * len(traces) + 8
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="overview" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        'aria-label="Time until the last response, per run">'
    ]
    for index, trace in enumerate(traces):
        run = trace.run
        makespan = makespan_ns(trace)
        y = 4 + index * ROW_H
        width = max(plot_w * makespan / longest, 1.0)
        label = f"{index + 1}. {run.mode} ({run.source})"
        out.append(
            _svg.text(
                _svg.truncate(label, 36),
                x=LABEL_W - 10,
                y=y + BAR_H / 2 + 5,
                class_="label",
                font_size=13,
            )
        )
        out.append(
            _svg.rect(
                x=LABEL_W,
                y=y,
                width=width,
                height=BAR_H,
                rx=3,
                fill=BAR_COLOURS[run.source],
                class_="makespan-bar",
                data_mode=run.mode,
                data_makespan_ms=f"{makespan / 1e6:.3f}",
            )
        )
        text = f"{format_duration(makespan)} · {len(trace.requests)} requests"
        out.append(_svg.text(text, x=LABEL_W + width + 8, y=y + BAR_H / 2 + 5, class_="value"))
    out.append("</svg>")
    return "".join(out)
