"""`loopscope bench`: server models side by side under open-loop load at fixed rates."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from loopscope.cli._shared import (
    NoHtmlOption,
    check_writable,
    console,
    progress_bar,
    progress_callbacks,
    write_json,
    write_outputs,
)
from loopscope.errors import UsageError
from loopscope.load.arrivals import ARRIVALS
from loopscope.load.driver import Progress as LoadProgress
from loopscope.measure.bench import (
    BenchOptions,
    bench_record,
    check_modes,
    run_bench,
)
from loopscope.report.bench_console import bench_summary
from loopscope.report.bench_traces import (
    PointKey,
    PointTrace,
    traces_folder,
    write_point_traces,
)
from loopscope.server.models import parse_models

DEFAULT_BENCH_HTML = Path("loopscope-bench.html")


def _numbers(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise UsageError(f"{option} takes numbers separated by commas, not {text!r}.") from exc


def _cpus(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    if not re.fullmatch(r"\d+(,\d+)*", text):
        raise UsageError(f"{option} takes CPU numbers separated by commas, e.g. 0 or 0,1.")
    return tuple(int(cpu) for cpu in text.split(","))


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def bench(
    servers: Annotated[
        str,
        typer.Option(
            "--servers",
            help="Server models: uvicorn:W, gunicorn-uvicorn:W, gunicorn-sync:W, "
            "gunicorn-gthread:WxT, comma-separated.",
        ),
    ] = "uvicorn:1,gunicorn-sync:4",
    modes: Annotated[
        str,
        typer.Option("--modes", help="Demo modes for ASGI models (WSGI ones serve 'blocking')."),
    ] = "blocking,async",
    rates: Annotated[
        str, typer.Option("--rates", help="Offered rates in req/s, comma-separated.")
    ] = "50,100,200",
    duration: Annotated[
        float, typer.Option("--duration", help="Seconds of load per point.", min=0.1, max=3600)
    ] = 10.0,
    io_ms: Annotated[
        float, typer.Option("--io-ms", help="The seed's DML time per request, in ms.", min=0)
    ] = 50.0,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe/--no-probe",
            help="Run the probe in every worker (ASGI and WSGI; not granian) and keep each "
            "point's trace and timeline (in a folder beside the HTML, else the JSON).",
        ),
    ] = False,
    arrivals: Annotated[
        str, typer.Option("--arrivals", help=f"Arrival shape: {', '.join(ARRIVALS)}.")
    ] = "constant",
    seed: Annotated[int, typer.Option("--seed", help="Seed of Poisson arrivals.")] = 0,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds a request may take.", min=0.1)
    ] = 30.0,
    drivers: Annotated[
        int, typer.Option("--drivers", help="Load driver processes.", min=1, max=32)
    ] = 1,
    connections: Annotated[
        int, typer.Option("--connections", help="Most connections per driver.", min=1)
    ] = 512,
    server_cpus: Annotated[
        str | None, typer.Option("--server-cpus", help="Pin the server to these CPUs (taskset).")
    ] = None,
    driver_cpus: Annotated[
        str | None, typer.Option("--driver-cpus", help="Pin the driver to these CPUs (taskset).")
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write every point's numbers to this JSON file.", dir_okay=False
        ),
    ] = None,
    html: Annotated[
        Path, typer.Option("--html", help="Where to write the HTML report.", dir_okay=False)
    ] = DEFAULT_BENCH_HTML,
    no_html: NoHtmlOption = False,
    png: Annotated[
        Path | None,
        typer.Option("--png", help="Also save the report as a PNG (Chromium).", dir_okay=False),
    ] = None,
) -> None:
    """Compare server models under open-loop load: latency against offered rate."""
    models = parse_models(servers)
    chosen_modes = check_modes([m.strip() for m in modes.split(",") if m.strip()])
    options = BenchOptions(
        rates=_numbers(rates, "--rates"),
        duration_s=duration,
        io_ms=io_ms,
        probe=probe,
        arrivals=arrivals,
        seed=seed,
        timeout_s=timeout,
        processes=drivers,
        connections=connections,
        server_cpus=_cpus(server_cpus, "--server-cpus"),
        driver_cpus=_cpus(driver_cpus, "--driver-cpus"),
    )
    if arrivals not in ARRIVALS:
        raise UsageError(f"Unknown --arrivals {arrivals!r}; use one of {', '.join(ARRIVALS)}.")
    for path, option in (
        (json_path, "--json"),
        (None if no_html else html, "--html"),
        (png, "--png"),
    ):
        if path is not None:
            check_writable(path, option)
    if png is not None and no_html:
        raise UsageError("--png is taken of the HTML report; drop --no-html.")
    with progress_bar() as bar:

        def on_point(server: str, mode: str, rate: float) -> LoadProgress:
            progress, _stage = progress_callbacks(bar, f"{server} {mode} {rate:g}/s", 1)
            return progress

        result = run_bench(models, chosen_modes, options, on_point)

    # The points' traces go beside the report (else beside the JSON), before either is
    # written, so both can point at them.
    traces: dict[PointKey, PointTrace] = {}
    beside = json_path if no_html and json_path is not None else html

    def write_traces(folder: Path) -> None:
        traces.update(write_point_traces(result, folder))
        if traces:
            console.print(f"Traces: {folder.resolve()}")

    def write_report(path: Path) -> None:
        from loopscope.report.bench_html import write_bench_html

        write_bench_html(result, path, traces)
        console.print(f"Report: {path.resolve()}")
        if png is not None:
            from loopscope.report.png import screenshot

            screenshot(path, png)
            console.print(f"PNG: {png.resolve()}")

    def write_record(path: Path) -> None:
        where = {key: _relative(t.trace, path.parent) for key, t in traces.items()}
        write_json(path, bench_record(result, where))
        console.print(f"Wrote {path}")

    error = write_outputs(
        (traces_folder(beside) if probe else None, write_traces),
        (json_path, write_record),
        (None if no_html else html, write_report),
    )
    console.print(bench_summary(result))
    if error is not None:
        raise typer.Exit(error.exit_code)
