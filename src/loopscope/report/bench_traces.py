"""The traces `loopscope bench --probe` keeps: each probed point's Trace as JSON (readable by
`loopscope report`) and as a timeline HTML page, in one folder beside the bench's report.

```
loopscope-bench.html
loopscope-bench-traces/gunicorn-sync-2-blocking-40.json   # the Trace
loopscope-bench-traces/gunicorn-sync-2-blocking-40.html   # its timeline
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from loopscope.measure.bench import BenchPoint, BenchResult, saturation_point

PointKey = tuple[str, str, float]
"""A point's (server, mode, rate)."""


@dataclass(frozen=True, slots=True)
class PointTrace:
    """Where one point's trace went: its `trace` JSON and its `timeline` HTML."""

    trace: Path
    timeline: Path


def traces_folder(beside: Path) -> Path:
    """The folder of the traces of a bench whose report is `beside`: `<stem>-traces`."""
    return beside.parent / f"{beside.stem}-traces"


def point_name(point: BenchPoint) -> str:
    """A point's file name without suffix: `uvicorn-2-async-40`."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", f"{point.server}-{point.mode}-{point.rate:g}")


def point_title(point: BenchPoint, saturated_here: bool) -> str:
    """The timeline page's title: the point, and whether its curve saturated there."""
    where = ", where it saturated" if saturated_here else ""
    return f"{point.server} {point.mode} at {point.rate:g} req/s{where}"


def write_point_traces(result: BenchResult, folder: Path) -> dict[PointKey, PointTrace]:
    """Write each probed point's trace and timeline into `folder` (made if needed); returns
    where each went, by (server, mode, rate). Points without a trace are skipped."""
    from loopscope.report.html import write_html
    from loopscope.trace.io import dump_trace

    knees = {id(k) for points in result.curves().values() if (k := saturation_point(points))}
    written: dict[PointKey, PointTrace] = {}
    for point in result.points:
        if point.trace is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        name = point_name(point)
        trace = dump_trace(point.trace, folder / f"{name}.json")
        title = point_title(point, id(point) in knees)
        timeline = write_html([point.trace], folder / f"{name}.html", title=title)
        written[(point.server, point.mode, point.rate)] = PointTrace(trace, timeline)
    return written
