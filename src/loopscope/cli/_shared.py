"""What every command shares: the consoles, the report options, progress bars and file writing."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
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

from loopscope.errors import LoopscopeError, UsageError
from loopscope.load.driver import Progress as LoadProgress
from loopscope.measure.failures import Failure
from loopscope.measure.run import Stage
from loopscope.report.failures import failed_count
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
WarmupUnsafeOption = Annotated[
    bool,
    typer.Option(
        "--warmup-unsafe",
        help="Warm up every hit, POST/PUT/PATCH/DELETE too (by default only GET, HEAD and "
        "OPTIONS are, as replaying e.g. a register would change the app's state).",
    ),
]
AllowErrorsOption = Annotated[
    bool,
    typer.Option(
        "--allow-errors",
        help="Exit 0 even when requests failed (a 5xx answer or none).",
    ),
]


def check_writable(path: Path, option: str) -> None:
    """Raise `UsageError` now if `path` could not be written later, so that a long run is not
    lost to a typo in an output path."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory; give a file name.")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: the directory {parent} does not exist.")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise UsageError(f"{option} {path} is not writable; choose another path.")
        return
    # A file is made in the directory for real, not judged by `os.access`: root passes every
    # permission check, yet cannot write into /proc or a read-only mount.
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".loopscope-check-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"{option} {path} is not writable ({exc.strerror}); choose another path."
        ) from exc


def exit_on_failures(traces: Sequence[Trace], allow_errors: bool) -> None:
    """Exit 1 with one line on stderr when any request failed, unless `allow_errors`."""
    failed = sum(failed_count(t) for t in traces)
    if failed and not allow_errors:
        total = sum(len(t.requests) for t in traces)
        err_console.print(
            f"[bold red]error:[/] {failed} of {total} requests failed (5xx or no answer); "
            "pass --allow-errors to exit 0 anyway.",
            highlight=False,
        )
        raise typer.Exit(1)


def write_outputs(*writes: tuple[Path | None, Callable[[Path], None]]) -> LoopscopeError | None:
    """Write each output whose path is not `None`; go on past a failure and return the first,
    so the console summary is printed whatever happened to the files."""
    first: LoopscopeError | None = None
    for path, write in writes:
        if path is None:
            continue
        try:
            write(path)
        except LoopscopeError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            first = first or exc
    return first


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


def write_html(
    traces: list[Trace],
    path: Path,
    title: str,
    failures: Sequence[Sequence[Failure]] | None = None,
) -> None:
    """Render `traces` to an HTML report at `path` and say where it is; `failures[i]` are the
    causes of `traces[i]`'s failed requests."""
    from loopscope.report.html import write_html as render

    written = render(traces, path, title=title, failures=failures)
    console.print(f"Report: {written.resolve()}")
