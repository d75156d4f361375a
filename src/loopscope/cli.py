"""The `loopscope` command: parse options, call the library, render, exit.

No logic lives here beyond wiring: every command builds settings, calls one library function and
hands its result to a renderer. `LoopscopeError`s become one-line messages and exit codes;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from loopscope.errors import LoopscopeError, UsageError
from loopscope.experiment import Mode, demo_record, parse_modes, run_demo
from loopscope.load.driver import Progress as LoadProgress
from loopscope.measure import Stage
from loopscope.report.console import demo_table

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
        Path | None, typer.Option("--json", help="Write every run's data to this JSON file.")
    ] = None,
    probe: Annotated[
        bool, typer.Option("--probe/--no-probe", help="Record the loop and pool inside the server.")
    ] = True,
) -> None:
    """Run the seed's experiment: every mode against a fresh uvicorn, measured."""
    chosen = parse_modes(modes)
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[mode]:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:

        def on_mode(mode: Mode) -> tuple[LoadProgress, Stage]:
            task = bar.add_task("", total=users, mode=mode.name, stage="")

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            def stage(text: str) -> None:
                bar.update(task, stage=text)

            return progress, stage

        traces = run_demo(
            chosen, io_ms=io_ms, users=users, threads=threads, probe=probe, on_mode=on_mode
        )
    console.print(demo_table(traces))
    if json_path is not None:
        _write_json(json_path, demo_record(traces))
        console.print(f"Wrote {json_path}")


def main() -> None:
    """The console script's entry point: click handles usage errors, we handle ours."""
    try:
        app()
    except LoopscopeError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
