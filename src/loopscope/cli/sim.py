"""`loopscope sim`: predict how the server schedules a load, from a model instead of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopscope.cli._shared import DEFAULT_HTML, HtmlOption, NoHtmlOption, console, write_html
from loopscope.report.console import trace_summary
from loopscope.report.simulated import comparison_table, recipes_table, seed_table
from loopscope.sim import SimOptions, plan, simulate
from loopscope.sim.seed import seed_diagrams
from loopscope.trace import dump_trace


def sim(
    mode: Annotated[
        str | None, typer.Option("--mode", help="A demo mode: blocking, async, offload, ...")
    ] = None,
    routes: Annotated[
        list[str] | None,
        typer.Option("--route", help="A route's recipe: '/orders/{id}=cpu:2,io:50'."),
    ] = None,
    routes_file: Annotated[
        Path | None, typer.Option("--routes", help="A TOML file with a [routes] table.")
    ] = None,
    trace_path: Annotated[
        Path | None, typer.Option("--from", help="Fit the model to this measured trace.")
    ] = None,
    users: Annotated[int | None, typer.Option("--users", help="Closed-loop users.")] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", help="Rounds per user.")] = None,
    rate: Annotated[float | None, typer.Option("--rate", help="Open-loop requests/s.")] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Open-loop duration in s.")
    ] = None,
    io_ms: Annotated[float | None, typer.Option("--io-ms", help="The demo's DML time.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Pool tokens.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes.")] = None,
    cores: Annotated[int | None, typer.Option("--cores", help="CPU cores (default 2).")] = None,
    steal: Annotated[
        float | None,
        typer.Option(
            "--steal",
            help="Share of the cores other processes take (default: as measured in --from's "
            "trace, else 0; 0 is a machine that runs only the server).",
        ),
    ] = None,
    changes: Annotated[
        list[str] | None,
        typer.Option("--change", help="'/route=offload' or '/route=async' (what if?)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random draws.")] = 0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the simulated trace here.", dir_okay=False)
    ] = None,
    html: HtmlOption = DEFAULT_HTML,
    no_html: NoHtmlOption = False,
    diagrams: Annotated[
        bool, typer.Option("--seed-diagrams", help="Reproduce the seed's two diagrams.")
    ] = False,
) -> None:
    """Simulate the server: built-in demo modes, your own recipes, or a fit of your trace."""
    if diagrams:
        rows = [(d.key, d.name, d.recipe, d.seed_end, d.finish) for d in seed_diagrams()]
        console.print(seed_table(rows))
        return
    options = SimOptions(
        mode=mode,
        routes=tuple(routes or ()),
        routes_file=routes_file,
        trace_path=trace_path,
        users=users,
        rounds=rounds,
        rate=rate,
        duration_s=duration,
        io_ms=io_ms,
        threads=threads,
        workers=workers,
        cores=cores,
        steal=steal,
        changes=tuple(changes or ()),
        seed=seed,
    )
    chosen = plan(options)
    predicted = simulate(chosen.server, chosen.load, mode=chosen.mode, app=chosen.app)
    if json_path is not None:
        dump_trace(predicted, json_path)
    traces = [predicted]
    if chosen.baseline is not None and chosen.fit is not None:
        recipes = {route: str(r) for route, r in chosen.fit.load.recipes.items()}
        console.print(recipes_table(recipes))
        refit = simulate(chosen.fit.server, chosen.fit.load, mode="model of the measured run")
        columns = [("measured", chosen.baseline), ("model, as measured", refit)]
        columns.append(("prediction" + (" (changed)" if chosen.changed else ""), predicted))
        console.print(comparison_table(columns, "Measured baseline, its model, and the prediction"))
        traces = [chosen.baseline, predicted]
    for part in trace_summary(predicted):
        console.print(part)
    if not no_html:
        write_html(traces, html, "loopscope sim: predicted by the model")
    if json_path is not None:
        console.print(f"Wrote {json_path}")
