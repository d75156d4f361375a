"""Reports: a run's Trace turned into words, pictures and files people can open.

`explain` words a run in the seed's vocabulary (accept queue, event loop, worker thread, coroutines
taking turns); `render_timelines` draws the seed's diagrams as SVG from the trace; `render_html` /
`write_html` put explanations, timelines and tables for several runs into one self-contained HTML
file; `screenshot` turns that file into a PNG with headless Chromium. Everything here reads Traces
and their analysis (`loopscope.trace.analysis`) and never runs a server or a load.
"""

from loopscope.errors import ChromiumNotFoundError, ReportError
from loopscope.report.explain import explain
from loopscope.report.html import DEFAULT_TITLE, render_html, write_html
from loopscope.report.overview import render_makespan_chart
from loopscope.report.png import find_chromium, screenshot
from loopscope.report.timeline import render_timeline, render_timelines

__all__ = [
    "DEFAULT_TITLE",
    "ChromiumNotFoundError",
    "ReportError",
    "explain",
    "find_chromium",
    "render_html",
    "render_makespan_chart",
    "render_timeline",
    "render_timelines",
    "screenshot",
    "write_html",
]
