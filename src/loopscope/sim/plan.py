"""From the command's options to a model and a load: built-in mode, own routes, or a fit.

`plan()` is everything `loopscope sim` decides before the model runs: where the recipes come
from (`--mode`, `--route`/`--routes`, `--from`), which scenario is sent, and what is changed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from loopscope.errors import UsageError
from loopscope.sim.builtin import MODES, mode_model
from loopscope.sim.calibrate import Calibration, calibrate
from loopscope.sim.change import apply_change
from loopscope.sim.recipe import Recipe, parse_route
from loopscope.sim.settings import Load, ServerModel
from loopscope.trace.io import load_traces
from loopscope.trace.model import Trace


@dataclass(frozen=True, slots=True)
class SimOptions:
    """The options of `loopscope sim`; `None` means "as the mode or the trace has it"."""

    mode: str | None = None
    routes: tuple[str, ...] = ()
    routes_file: Path | None = None
    trace_path: Path | None = None
    users: int | None = None
    rounds: int | None = None
    rate: float | None = None
    duration_s: float | None = None
    io_ms: float | None = None
    threads: int | None = None
    workers: int | None = None
    cores: int | None = None
    steal: float | None = None
    changes: tuple[str, ...] = ()
    seed: int = 0


@dataclass(slots=True)
class Plan:
    """What to simulate, and, for `--from`, the measured run and the fit it was built from."""

    server: ServerModel
    load: Load
    mode: str
    app: str
    baseline: Trace | None = None
    fit: Calibration | None = None
    changed: list[str] = field(default_factory=list)


def read_routes_file(path: Path) -> list[Recipe]:
    """Recipes from a TOML file: a `[routes]` table of `"/orders/{id}" = "cpu:2, io:50"`."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}.") from exc
    routes = data.get("routes")
    if not isinstance(routes, dict) or not routes:
        raise UsageError(f'{path} needs a [routes] table, e.g. "/orders/{{id}}" = "cpu:2, io:50".')
    return [parse_route(f"{route}={recipe}") for route, recipe in routes.items()]


def _measured(options: SimOptions) -> Trace:
    assert options.trace_path is not None
    traces = load_traces(options.trace_path)
    if options.mode is not None:
        traces = [t for t in traces if t.run.mode == options.mode]
    if len(traces) != 1:
        modes = ", ".join(t.run.mode for t in load_traces(options.trace_path))
        raise UsageError(
            f"{options.trace_path} holds runs of {modes or 'no mode'}; pick one with --mode."
        )
    trace = traces[0]
    if trace.run.source != "measured":
        raise UsageError(f"{options.trace_path} is a simulated run; calibrate from a measured one.")
    return trace


def plan(options: SimOptions) -> Plan:
    """Decide the model and load for `options`; conflicting or missing sources are a
    `UsageError`."""
    own = bool(options.routes) or options.routes_file is not None
    sources = [options.mode is not None and options.trace_path is None, own]
    sources.append(options.trace_path is not None)
    if sum(sources) != 1:
        raise UsageError(
            "Say what to simulate with exactly one of --mode, --route (or --routes FILE) "
            "and --from TRACE.json."
        )
    if options.io_ms is not None and (options.mode is None or options.trace_path is not None):
        raise UsageError("--io-ms sets the demo's DML time and goes with --mode only.")
    if options.trace_path is not None:
        baseline = _measured(options)
        fit = calibrate(baseline, cores=options.cores or 2)
        if not fit.load.recipes:
            raise UsageError(f"No route of {options.trace_path} could be fitted.")
        result = Plan(fit.server, fit.load, f"{baseline.run.mode} (fitted)", baseline.run.app)
        result.baseline, result.fit = baseline, fit
    elif options.mode is not None:
        if options.mode not in MODES:
            raise UsageError(f"Unknown mode {options.mode!r}; use one of {', '.join(MODES)}.")
        server, load = mode_model(
            options.mode,
            users=options.users or 3,
            io_ms=1000.0 if options.io_ms is None else options.io_ms,
            threads=options.threads or 40,
        )
        result = Plan(server, load, options.mode, "loopscope.demo:create_app")
    else:
        recipes = [parse_route(text) for text in options.routes]
        if options.routes_file is not None:
            recipes += read_routes_file(options.routes_file)
        table = {r.route: r for r in recipes}
        load = Load(recipes=table, hits_by_user=(tuple(table),))
        result = Plan(ServerModel(), load, "routes", "recipes")
    return _override(result, options)


def _override(result: Plan, options: SimOptions) -> Plan:
    server, load = result.server, result.load
    for name in ("threads", "workers", "cores", "steal"):
        value = getattr(options, name)
        if value is not None:
            server = replace(server, **{name: value})
    hits = load.hits_by_user
    if options.users is not None:
        if options.users < 1:
            raise UsageError(f"--users must be at least 1, not {options.users}.")
        hits = tuple(hits[i % len(hits)] for i in range(options.users))
    recipes = load.recipes
    for text in options.changes:
        recipes = apply_change(recipes, text)
        result.changed.append(text)
    load = replace(
        load,
        recipes=recipes,
        hits_by_user=hits,
        rounds=load.rounds if options.rounds is None else options.rounds,
        rate=options.rate,
        duration_s=options.duration_s,
        seed=options.seed,
    )
    result.server, result.load = server, load
    return result
