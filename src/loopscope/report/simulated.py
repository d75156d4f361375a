"""The words for simulated runs: their assumptions, fitted recipes, and prediction tables.

A simulated trace records its assumptions as `sim:KEY=VALUE` notes (`loopscope.sim.run`); here
they become sentences. The tables compare a measured run, the model fitted to it, and a
prediction, from figures the analysis computes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from loopscope.trace import analysis
from loopscope.trace.model import Trace

PREFIX = "sim:"

_SETTINGS = {
    "workers": "{} worker process(es), each with its own event loop and GIL",
    "threads": "{} thread-pool tokens per worker (anyio's limiter)",
    "executor_threads": "{} threads in each loop's default executor",
    "cores": "{} CPU cores, shared by the loops, the worker threads and the database",
    "switch_ms": "Python code of one worker never runs in parallel (the GIL); a thread that "
    "wants it waits at most {} ms for the holder to let go",
    "client_ms": "the client is one thread that spends {} ms of CPU sending each request",
    "send_ms": "{} ms from a client's send to the request being ready for the server's loop",
    "reply_ms": "the client spends {} ms of CPU reading each answer",
    "times": "step times are {}",
    "arrivals": "arrivals: {}",
}


def describe_note(note: str) -> str:
    """A run note as a sentence: `sim:cores=2` → `Assumed: 2 CPU cores, ...`; others unchanged."""
    if not note.startswith(PREFIX):
        return note
    key, _, value = note[len(PREFIX) :].partition("=")
    if key.startswith("recipe "):
        return f"Assumed recipe for {key[len('recipe ') :]}: {value}"
    template = _SETTINGS.get(key)
    return f"Assumed: {template.format(value)}." if template else f"Assumed: {key} = {value}."


def is_simulated(trace: Trace) -> bool:
    """Whether `trace` came from the model."""
    return trace.run.source == "simulated"


def recipes_table(recipes: dict[str, str], title: str = "Fitted recipes") -> Table:
    """Each route and its recipe, as the simulator reads it back from `--route`."""
    table = Table(title=title, title_justify="left")
    table.add_column("route", style="bold")
    table.add_column("recipe")
    for route, recipe in recipes.items():
        table.add_row(escape(route), escape(recipe))
    return table


def _figures(trace: Trace) -> dict[str, str]:
    latencies = sorted(r.latency_ns for r in trace.requests)
    if not latencies:
        return {"requests": "0", "makespan": "–", "p50": "–", "p90": "–", "max": "–"}
    return {
        "requests": str(len(latencies)),
        "makespan": analysis.format_duration(analysis.makespan_ns(trace)),
        "p50": analysis.format_duration(analysis.percentile(latencies, 50)),
        "p90": analysis.format_duration(analysis.percentile(latencies, 90)),
        "max": analysis.format_duration(latencies[-1]),
    }


def comparison_table(columns: Sequence[tuple[str, Trace]], title: str) -> Table:
    """Runs side by side (`(heading, trace)` each): requests, makespan and latencies."""
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for heading, _ in columns:
        table.add_column(escape(heading), justify="right")
    figures = [_figures(trace) for _, trace in columns]
    for key in ("requests", "makespan", "p50", "p90", "max"):
        table.add_row(key, *(f[key] for f in figures))
    return table


def ratio(predicted: int, measured: int) -> str:
    """`predicted / measured` as `×1.03`, or `–` without a measurement."""
    return f"×{predicted / measured:.2f}" if measured else "–"
