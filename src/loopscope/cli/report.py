"""`loopscope report`: re-render saved traces."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from loopscope.cli._shared import console, err_console, write_html, write_json
from loopscope.errors import TraceError
from loopscope.report.console import trace_summary
from loopscope.trace import Trace, load_traces
from loopscope.trace.chrome import to_chrome


def report(
    paths: Annotated[
        list[Path], typer.Argument(metavar="TRACE.json...", help="Traces or demo JSON files.")
    ],
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the HTML report here.", dir_okay=False)
    ] = None,
    chrome: Annotated[
        Path | None,
        typer.Option("--chrome", help="Write Chrome trace-event JSON (Perfetto).", dir_okay=False),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option("--png", help="Write a PNG of the HTML report (Chromium).", dir_okay=False),
    ] = None,
) -> None:
    """Re-render saved traces: console summary, HTML, Chrome/Perfetto JSON, PNG."""
    traces: list[Trace] = []
    failures: list[TraceError] = []
    for path in paths:
        # One bad file is reported; the others are still rendered.
        try:
            traces += load_traces(path)
        except TraceError as exc:
            if len(paths) == 1:
                raise
            failures.append(exc)
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    if not traces:
        raise failures[0]
    for t in traces:
        console.rule(escape(f"{t.run.mode}: {t.run.app}"))
        for part in trace_summary(t):
            console.print(part)
    if chrome is not None:
        write_json(chrome, to_chrome(traces))
        console.print(f"Wrote {chrome} (open it in Perfetto or chrome://tracing)")
    html_path = html
    if png is not None and html_path is None:
        html_path = png.with_suffix(".html")
    if html_path is not None:
        write_html(traces, html_path, "loopscope report")
    if png is not None and html_path is not None:
        from loopscope.report.png import screenshot

        screenshot(html_path, png)
        console.print(f"Wrote {png}")
    if failures:
        raise typer.Exit(failures[0].exit_code)
