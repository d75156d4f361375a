"""`loopscope demo`: the seed's experiment, every mode against a fresh uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopscope.cli._shared import (
    DEFAULT_HTML,
    AllowErrorsOption,
    HtmlOption,
    NoHtmlOption,
    WarmupOption,
    check_writable,
    console,
    exit_on_failures,
    progress_bar,
    progress_callbacks,
    write_html,
    write_json,
    write_outputs,
)
from loopscope.errors import ServerDiedError
from loopscope.load.driver import Progress as LoadProgress
from loopscope.measure.experiment import DemoOptions, Mode, demo_record, parse_modes, run_mode
from loopscope.measure.run import Stage
from loopscope.report.console import demo_table
from loopscope.sim import simulate_like
from loopscope.trace.constants import ANYIO_DEFAULT_TOKENS
from loopscope.trace.model import Trace


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
        int,
        typer.Option(
            "--threads",
            help=f"Thread-pool tokens (anyio's default: {ANYIO_DEFAULT_TOKENS}).",
            min=1,
        ),
    ] = ANYIO_DEFAULT_TOKENS,
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
    allow_errors: AllowErrorsOption = False,
    compare_sim: Annotated[
        bool, typer.Option("--compare-sim", help="Add the model's prediction of each run.")
    ] = False,
) -> None:
    """Run the seed's experiment: every mode against a fresh uvicorn, measured."""
    chosen = parse_modes(modes)
    if json_path is not None:
        check_writable(json_path, "--json")
    if not no_html:
        check_writable(html, "--html")
    with progress_bar() as bar:

        def on_mode(mode: Mode) -> tuple[LoadProgress, Stage]:
            return progress_callbacks(bar, mode.name, users)

        options = DemoOptions(io_ms=io_ms, users=users, threads=threads, probe=probe, warmup=warmup)
        traces: list[Trace] = []
        died: ServerDiedError | None = None
        try:
            for mode in chosen:
                traces.append(run_mode(mode, options, *on_mode(mode)))
        except ServerDiedError as exc:
            # A server killed mid-run: the modes measured so far and this one's part are
            # written and shown, marked partial; the later modes are not run.
            if exc.partial is None:
                raise
            traces.append(exc.partial)
            died = exc
    if compare_sim:
        traces = [t for measured in traces for t in (measured, simulate_like(measured.run))]

    def write_record(path: Path) -> None:
        write_json(path, demo_record(traces))
        console.print(f"Wrote {path}")

    error = write_outputs(
        (json_path, write_record),
        (
            None if no_html else html,
            lambda path: write_html(
                traces, path, "loopscope demo: the seed's experiment, measured"
            ),
        ),
    )
    console.print(demo_table(traces))
    if died is not None:
        raise died
    if error is not None:
        raise typer.Exit(error.exit_code)
    exit_on_failures(traces, allow_errors)
