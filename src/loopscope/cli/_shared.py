"""What every command shares: the consoles, the report options, progress bars and file writing."""

from __future__ import annotations

import json
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

from loopscope.errors import UsageError
from loopscope.load.driver import Progress as LoadProgress
from loopscope.measure.run import Stage
from loopscope.trace import Trace

console = Console()
err_console = Console(stderr=True)

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


def write_json(path: Path, data: object) -> None:
    """Write `data` as JSON to `path`; an unwritable path is a `UsageError`."""
    try:
        path.write_text(json.dumps(data, indent=1))
    except OSError as exc:
        raise UsageError(f"Cannot write {path}: {exc.strerror}.") from exc


def progress_bar() -> Progress:
    """The progress bar every long command shows: one task per run."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[mode]:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=console,
    )


def progress_callbacks(bar: Progress, name: str, total: int) -> tuple[LoadProgress, Stage]:
    """A new task on `bar` and the two callbacks that advance it and name its stage."""
    task = bar.add_task("", total=total, mode=name, stage="")

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    def stage(text: str) -> None:
        bar.update(task, stage=text)

    return progress, stage


def write_html(traces: list[Trace], path: Path, title: str) -> None:
    """Render `traces` to an HTML report at `path` and say where it is."""
    from loopscope.report.html import write_html as render

    written = render(traces, path, title=title)
    console.print(f"Report: {written.resolve()}")
