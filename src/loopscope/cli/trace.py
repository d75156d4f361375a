"""`loopscope trace`: any ASGI app under the probe, with the hits the user names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar, get_args

import typer

from loopscope.cli._shared import (
    DEFAULT_HTML,
    AllowErrorsOption,
    HtmlOption,
    NoHtmlOption,
    WarmupOption,
    WarmupUnsafeOption,
    check_writable,
    console,
    exit_on_failures,
    progress_bar,
    progress_callbacks,
    write_html,
    write_outputs,
)
from loopscope.errors import ServerDiedError, UsageError
from loopscope.load import parse_hit, uniform_scenario
from loopscope.measure.failures import Failure
from loopscope.measure.run import describe_run, measure
from loopscope.measure.sampler import DEFAULT_PERIOD_MS
from loopscope.report.console import trace_summary
from loopscope.server import ServerSettings
from loopscope.server.process import HttpName, LoopName
from loopscope.trace import dump_trace
from loopscope.trace.constants import ANYIO_DEFAULT_TOKENS, DEFAULT_BLOCK_MS

LOOP_NAMES: tuple[LoopName, ...] = get_args(LoopName)
HTTP_NAMES: tuple[HttpName, ...] = get_args(HttpName)
TRACE_SERVERS = ("uvicorn", "gunicorn")
"""The server kinds that run an ASGI app under the probe (the WSGI kinds are `bench`'s)."""
_Name = TypeVar("_Name", bound=str)


def _choice(option: str, value: str, names: tuple[_Name, ...]) -> _Name:
    for name in names:
        if value == name:
            return name
    raise UsageError(f"{option} must be one of {', '.join(names)}, not {value!r}.")


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
    ] = DEFAULT_BLOCK_MS,
    loop: Annotated[
        str,
        typer.Option(
            "--loop",
            help="auto (what uvicorn picks: uvloop if installed), asyncio or uvloop.",
        ),
    ] = "auto",
    http: Annotated[
        str,
        typer.Option(
            "--http", help="auto (what uvicorn picks: httptools if installed), h11 or httptools."
        ),
    ] = "auto",
    workers: Annotated[
        int,
        typer.Option(
            "--workers", help="Worker processes (the server's --workers), one probe in each.", min=1
        ),
    ] = 1,
    server: Annotated[
        str,
        typer.Option(
            "--server",
            help="uvicorn, or gunicorn (its arbiter over uvicorn's worker class).",
        ),
    ] = "uvicorn",
    queue_ms: Annotated[
        float,
        typer.Option(
            "--queue-ms",
            help="Sample the kernel's accept queue every this many ms (0: do not).",
            min=0.0,
        ),
    ] = DEFAULT_PERIOD_MS,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help=f"Thread-pool tokens (default: anyio's {ANYIO_DEFAULT_TOKENS}).",
            min=1,
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write the trace to this JSON file.", dir_okay=False),
    ] = None,
    html: HtmlOption = DEFAULT_HTML,
    no_html: NoHtmlOption = False,
    warmup: WarmupOption = True,
    warmup_unsafe: WarmupUnsafeOption = False,
    allow_errors: AllowErrorsOption = False,
    start_timeout: Annotated[
        float,
        typer.Option(
            "--start-timeout", help="Seconds the app may take to start answering.", min=0.1
        ),
    ] = 30.0,
) -> None:
    """Trace any ASGI app under the probe: send the hits, then say what ran where."""
    loop_name = _choice("--loop", loop, LOOP_NAMES)
    http_name = _choice("--http", http, HTTP_NAMES)
    server_name = _choice("--server", server, TRACE_SERVERS)
    if app_dir is not None and not app_dir.is_dir():
        raise UsageError(f"--app-dir {app_dir} is not a directory.")
    # Checked before the run, not after it: a typo must not cost the measurement.
    if json_path is not None:
        check_writable(json_path, "--json")
    if not no_html:
        check_writable(html, "--html")
    scenario = uniform_scenario([parse_hit(h) for h in hits], users, rounds)
    settings = ServerSettings(
        app=app_path,
        server=server_name,
        app_dir=str(app_dir) if app_dir else None,
        factory=factory,
        loop=loop_name,
        http=http_name,
        workers=workers,
        threads=threads,
        probe=True,
        block_ms=block_ms,
        start_timeout_s=start_timeout,
    )
    run = describe_run(settings, scenario, mode="trace")
    with progress_bar() as bar:
        progress, stage = progress_callbacks(bar, "trace", scenario.total_requests)
        failures: list[Failure] = []
        died: ServerDiedError | None = None
        try:
            result = measure(
                settings,
                scenario,
                run,
                progress=progress,
                stage=stage,
                warmup=warmup,
                warmup_unsafe=warmup_unsafe,
                failures=failures,
                queue_period_ms=queue_ms or None,
            )
        except ServerDiedError as exc:
            # What was measured before the crash is written and shown, then the error.
            if exc.partial is None:
                raise
            result, died = exc.partial, exc

    # The files first: a measurement is worth keeping even if rendering it fails; the summary
    # is printed whatever happened to them.
    def write_json(path: Path) -> None:
        dump_trace(result, path)
        console.print(f"Wrote {path}")

    error = write_outputs(
        (json_path, write_json),
        (
            None if no_html else html,
            lambda path: write_html([result], path, f"loopscope trace: {app_path}", [failures]),
        ),
    )
    for part in trace_summary(result, failures):
        console.print(part)
    if died is not None:
        raise died
    if error is not None:
        raise typer.Exit(error.exit_code)
    exit_on_failures([result], allow_errors)
