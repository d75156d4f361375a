"""The `loopscope` command: parse options, call the library, render, exit.

No logic lives here beyond wiring: every command builds settings, calls one library function and
hands its result to a renderer. `LoopscopeError`s become one-line messages and exit codes;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from loopscope.errors import LoopscopeError, TraceError, UsageError
from loopscope.experiment import DemoOptions, Mode, demo_record, parse_modes, run_demo
from loopscope.load import parse_hit, uniform_scenario
from loopscope.load.driver import Progress as LoadProgress
from loopscope.measure import Stage, describe_run, measure
from loopscope.report.console import demo_table, trace_summary
from loopscope.server import ServerSettings
from loopscope.trace import Trace, dump_trace, load_traces
from loopscope.trace.chrome import to_chrome

DEFAULT_HTML = Path("loopscope-report.html")
HtmlOption = Annotated[
    Path, typer.Option("--html", help="Where to write the HTML report.", dir_okay=False)
]
NoHtmlOption = Annotated[bool, typer.Option("--no-html", help="Do not write the HTML report.")]
WarmupOption = Annotated[
    bool,
    typer.Option(
        "--warmup/--no-warmup",
        help="Call each route once before measuring (not shown), so first-request work is not "
        "counted.",
    ),
]

app = typer.Typer(
    name="loopscope",
    help="Show, measure, predict and lint how a Python web server schedules requests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


def _write_json(path: Path, data: object) -> None:
    try:
        path.write_text(json.dumps(data, indent=1))
    except OSError as exc:
        raise UsageError(f"Cannot write {path}: {exc.strerror}.") from exc


@app.command()
def demo(
    io_ms: Annotated[
        float, typer.Option("--io-ms", help="How long the seed's DML takes, in ms.", min=0)
    ] = 1000.0,
    users: Annotated[
        int, typer.Option("--users", help="Users sending at the same instant.", min=1, max=5000)
    ] = 3,
    modes: Annotated[
        str, typer.Option("--modes", help="Comma-separated modes to run, in order.")
    ] = "blocking,single-thread,async-blocking,async,offload",
    threads: Annotated[
        int, typer.Option("--threads", help="Thread-pool tokens (anyio's default: 40).", min=1)
    ] = 40,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write every run's data to this JSON file.", dir_okay=False),
    ] = None,
    html: HtmlOption = DEFAULT_HTML,
    no_html: NoHtmlOption = False,
    probe: Annotated[
        bool, typer.Option("--probe/--no-probe", help="Record the loop and pool inside the server.")
    ] = True,
    warmup: WarmupOption = True,
) -> None:
    """Run the seed's experiment: every mode against a fresh uvicorn, measured."""
    chosen = parse_modes(modes)
    with _progress() as bar:

        def on_mode(mode: Mode) -> tuple[LoadProgress, Stage]:
            return _progress_callbacks(bar, mode.name, users)

        options = DemoOptions(io_ms=io_ms, users=users, threads=threads, probe=probe, warmup=warmup)
        traces = run_demo(chosen, options, on_mode)
    if json_path is not None:
        _write_json(json_path, demo_record(traces))
    console.print(demo_table(traces))
    if json_path is not None:
        console.print(f"Wrote {json_path}")
    if not no_html:
        _write_html(traces, html, "loopscope demo: the seed's experiment, measured")


@app.command()
def trace(
    app_path: Annotated[str, typer.Argument(metavar="MODULE:APP", help="The ASGI app to trace.")],
    hits: Annotated[
        list[str],
        typer.Option("--hit", help="A request each user sends: 'GET /path' or 'POST /p {json}'."),
    ],
    app_dir: Annotated[
        Path | None, typer.Option("--app-dir", help="Directory to import the app from.")
    ] = None,
    factory: Annotated[
        bool, typer.Option("--factory", help="MODULE:APP is a function that returns the app.")
    ] = False,
    users: Annotated[
        int, typer.Option("--users", help="Users sending at the same instant.", min=1, max=5000)
    ] = 1,
    rounds: Annotated[
        int, typer.Option("--rounds", help="How often each user sends its hits.", min=1, max=10000)
    ] = 1,
    block_ms: Annotated[
        float,
        # Below a few ms the watchdog would wake every millisecond and blame ordinary steps.
        typer.Option("--block-ms", help="Loop-block threshold in ms.", min=2.0),
    ] = 20.0,
    loop: Annotated[str, typer.Option("--loop", help="asyncio (precise) or uvloop.")] = "asyncio",
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="Thread-pool tokens (default: anyio's 40).", min=1),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write the trace to this JSON file.", dir_okay=False),
    ] = None,
    html: HtmlOption = DEFAULT_HTML,
    no_html: NoHtmlOption = False,
    warmup: WarmupOption = True,
) -> None:
    """Trace any ASGI app under the probe: send the hits, then say what ran where."""
    if loop not in ("asyncio", "uvloop"):
        raise UsageError(f"--loop must be asyncio or uvloop, not {loop!r}.")
    if app_dir is not None and not app_dir.is_dir():
        raise UsageError(f"--app-dir {app_dir} is not a directory.")
    scenario = uniform_scenario([parse_hit(h) for h in hits], users, rounds)
    settings = ServerSettings(
        app=app_path,
        app_dir=str(app_dir) if app_dir else None,
        factory=factory,
        loop="uvloop" if loop == "uvloop" else "asyncio",
        threads=threads,
        probe=True,
        block_ms=block_ms,
    )
    run = describe_run(settings, scenario, mode="trace")
    with _progress() as bar:
        progress, stage = _progress_callbacks(bar, "trace", scenario.total_requests)
        result = measure(settings, scenario, run, progress=progress, stage=stage, warmup=warmup)
    # The files first: a measurement is worth keeping even if rendering it fails.
    if json_path is not None:
        dump_trace(result, json_path)
    if not no_html:
        _write_html([result], html, f"loopscope trace: {app_path}")
    for part in trace_summary(result):
        console.print(part)
    if json_path is not None:
        console.print(f"Wrote {json_path}")


@app.command()
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
        _write_json(chrome, to_chrome(traces))
        console.print(f"Wrote {chrome} (open it in Perfetto or chrome://tracing)")
    html_path = html
    if png is not None and html_path is None:
        html_path = png.with_suffix(".html")
    if html_path is not None:
        _write_html(traces, html_path, "loopscope report")
    if png is not None and html_path is not None:
        from loopscope.report.png import screenshot

        screenshot(html_path, png)
        console.print(f"Wrote {png}")
    if failures:
        raise typer.Exit(failures[0].exit_code)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[mode]:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _progress_callbacks(bar: Progress, name: str, total: int) -> tuple[LoadProgress, Stage]:
    task = bar.add_task("", total=total, mode=name, stage="")

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    def stage(text: str) -> None:
        bar.update(task, stage=text)

    return progress, stage


def _write_html(traces: list[Trace], path: Path, title: str) -> None:
    from loopscope.report.html import write_html

    written = write_html(traces, path, title=title)
    console.print(f"Report: {written.resolve()}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """The console script's entry point: click handles usage errors, we handle ours."""
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every `finally` stops the server it started.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        app()
    except LoopscopeError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
