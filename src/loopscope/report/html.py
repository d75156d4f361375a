"""The HTML report: one self-contained file with every run's explanation, timeline and tables.

Self-contained means it works from a USB stick on a plane: CSS and JS are inlined, there are no
fonts, images or scripts from elsewhere, and a Content-Security-Policy forbids fetching any.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup

from loopscope import __version__
from loopscope.errors import ReportError
from loopscope.measure.failures import Failure
from loopscope.report.overview import render_makespan_chart
from loopscope.report.palette import STATE_LABELS
from loopscope.report.timeline import render_timelines
from loopscope.report.views import run_view
from loopscope.trace.model import Trace

DEFAULT_TITLE = "loopscope: how the server scheduled the requests"


def _asset(name: str) -> str:
    return (resources.files("loopscope.report") / "templates" / name).read_text(encoding="utf-8")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(
    traces: list[Trace],
    title: str = DEFAULT_TITLE,
    shared_scale: bool = True,
    failures: Sequence[Sequence[Failure]] | None = None,
) -> str:
    """The report for `traces` as one HTML document (runs drawn on one time scale by default).

    `failures[i]`, where given, are the causes of `traces[i]`'s failed requests."""
    svgs = render_timelines(traces, shared_scale=shared_scale)
    template = _environment().from_string(_asset("report.html.j2"))
    # The SVGs, CSS and JS are built by us with every trace-derived value escaped, so they are
    # marked safe; everything else goes through autoescaping.
    causes = list(failures) if failures is not None else [None] * len(traces)
    runs = [
        run_view(trace, Markup(svg), failed)
        for trace, svg, failed in zip(traces, svgs, causes, strict=True)
    ]
    return template.render(
        title=title,
        version=__version__,
        runs=runs,
        overview=Markup(render_makespan_chart(traces)),
        css=Markup(_asset("report.css")),
        js=Markup(_asset("tooltip.js")),
        state_labels=json.dumps(STATE_LABELS),
    )


def write_html(
    traces: list[Trace],
    path: str | Path,
    title: str = DEFAULT_TITLE,
    failures: Sequence[Sequence[Failure]] | None = None,
) -> Path:
    """Write the report for `traces` to `path` and return the path."""
    target = Path(path)
    try:
        target.write_text(render_html(traces, title=title, failures=failures), encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"Cannot write the report to {target}: {exc.strerror}.") from exc
    return target
