"""The words for simulated runs: their assumptions, fitted recipes, and prediction tables.

A simulated trace records its assumptions as `sim:KEY=VALUE` notes (`loopscope.sim.run`); here
they become sentences. The tables compare a measured run, the model fitted to it, and a
prediction, from figures the analysis computes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from loopscope.report.words import format_duration
from loopscope.trace import analysis
from loopscope.trace.model import Trace

PREFIX = "sim:"

_SETTINGS = {
    "workers": "{} worker process(es), each with its own event loop and GIL",
    "threads": "{} thread-pool tokens per worker (anyio's limiter)",
    "executor_threads": "{} threads in each loop's default executor",
    "cores": "{} CPU cores, shared by the loops, the worker threads and the database",
    "steal": "other processes take a share {} of the cores (each CPU step runs that much "
    "longer: 1 / (1 - share))",
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
        "makespan": format_duration(analysis.makespan_ns(trace)),
        "p50": format_duration(analysis.percentile(latencies, 50)),
        "p90": format_duration(analysis.percentile(latencies, 90)),
        "max": format_duration(latencies[-1]),
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


SEED_CLOSE = 0.25
"""A diagram's end agrees with the seed's when within this many DML units of it."""


_SEED_READINGS = {
    "async-db-cpu": "if the DB computes for the whole DML, two cores run two DMLs at once and "
    "the third waits: T2, not T1.5",
    "fastapi": "FastAPI sends a def route's response validation through the pool too: each "
    "request's second trip queues behind the others' first, so all three end together",
}


def seed_table(rows: Sequence[tuple[str, str, str, float | None, Sequence[float]]]) -> Table:
    """The seed's diagrams, simulated: `(key, name, recipe, seed's end, finish times)` per row,
    in units of the 1 s DML from the first send."""
    table = Table(
        title="The seed's diagrams under its assumptions: 1 process, 1 worker thread W, "
        "2 cores, a DB doing each 1 s DML",
        title_justify="left",
    )
    for column in ("diagram", "recipe", "finished at", "seed says", "reading"):
        table.add_column(column)
    for key, name, recipe, seed_end, finish in rows:
        end = max(finish)
        times = ", ".join(f"T{t:.2f}" for t in finish)
        if seed_end is None:
            seed, reading = "–", _SEED_READINGS.get(key, "")
        elif abs(end - seed_end) <= SEED_CLOSE:
            seed, reading = f"≈T{seed_end:g}", "follows from the seed's assumptions"
        else:
            seed = f"≈T{seed_end:g}"
            reading = f"does not follow from the seed's assumptions, which give T{end:.2f}"
            if key == "blocking":
                reading += (
                    ": three 1 s DMLs one after another end 3 s after the first send (T4 only "
                    "if the first DML starts at T1)"
                )
            elif key == "async":
                reading += (
                    ": the loop is free during every await, so the three waits overlap "
                    "completely; only CPU work on the loop or in the DB could stretch it"
                )
        table.add_row(escape(name), escape(recipe), times, seed, escape(reading))
    return table
